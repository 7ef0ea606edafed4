// Conversation is one conversation on screen: its history, live messages, read receipts,
// typing in both directions and its closed state. The console and the demo page share it.
import { clientMessageId, el, subscribe, timeOf } from './api.js';

const TYPING_EVERY = 2000; // resend "typing" at most this often while keys are pressed
const TYPING_IDLE = 3000; // "stopped typing" after this long without a key
const TYPING_SHOWN = 6000; // hide the other side's indicator if no "stopped" arrives

export class Conversation {
  // me is {type, id} of this side; names maps a sender type to a display name;
  // onChange(this) is called when a message arrives or the status changes.
  constructor({ client, api, me, names, onChange = () => {} }) {
    Object.assign(this, { client, api, me, names, onChange });
    this.conv = null;
    this.messages = new Map(); // id → { message, node }
    this.subs = [];
    this.lastSeen = null; // id of the newest message shown, for the catch-up
    this.unread = 0;
    this.active = false; // on screen: incoming messages get marked read
    this.typingSent = 0;
    this.typingTimer = null;
    this.theirTypingTimer = null;

    this.list = el('ol', { class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
    this.typing = el('p', { class: 'typing', 'aria-live': 'polite' });
    this.notice = el('p', { class: 'notice', role: 'status' });
    this.node = el('div', { class: 'conversation' }, this.list, this.typing, this.notice);
  }

  get id() { return this.conv && this.conv.id; }
  get closed() { return !!this.conv && this.conv.status === 'closed'; }

  // attach follows conv: its channels live, then its history (a message arriving in between is
  // shown once: messages are de-duplicated by id). unread, when given, is the server's count of
  // the other side's unread messages (the history is only its last page).
  async attach(conv, unread) {
    if (this.id === conv.id) { this.update(conv); return; }
    this.detach();
    this.conv = conv;
    const attaching = this.attaching = {};
    const base = `/conversations/${conv.id}`;
    const subs = await Promise.all([
      subscribe(this.client, base, (d) => d.entity === 'message' && this.show(d.message)),
      subscribe(this.client, `${base}/receipts`, (d) => d.entity === 'receipt' && this.show(d.message)),
      subscribe(this.client, `${base}/status`, (d) => d.entity === 'conversation' && this.update(d.conversation)),
      subscribe(this.client, `${base}/typing`, (d) => this.theirTyping(d)),
    ]);
    if (this.attaching !== attaching) { for (const s of subs) s.cancel(); return; } // detached meanwhile
    this.subs = subs;
    const { messages } = await this.api.history(conv.id, {});
    for (const m of messages.reverse()) this.show(m);
    if (typeof unread === 'number') { this.unread = unread; this.markRead(); }
    this.update(conv);
  }

  detach() {
    for (const s of this.subs) s.cancel();
    this.subs = [];
    this.attaching = null;
  }

  update(conv) {
    this.conv = Object.assign({}, this.conv, conv);
    this.notice.textContent = this.closed ? 'The conversation was closed.' : '';
    this.node.classList.toggle('closed', this.closed);
    this.onChange(this);
    this.list.scrollTop = this.list.scrollHeight; // the notice took room from the list
    this.markRead(); // a pending conversation that became ours
  }

  // show adds or updates a message (history, live, receipt or catch-up alike).
  show(m) {
    if (!m || !m.id) return;
    const known = this.messages.get(m.id);
    if (known) {
      // Copies of a message arrive in any order (the post's reply, the live event, a receipt):
      // the only change a message sees is being read, so an older copy changes nothing.
      if (known.message.read || !m.read) return;
      known.message = m;
      known.node.replaceWith(known.node = this.render(m));
      // Theirs, read here or in another tab of this side: one unread less.
      if (!this.mine(m) && this.unread > 0) { this.unread--; this.onChange(this); }
    } else {
      const node = this.render(m);
      // History may arrive after a live message: keep the list in time order.
      const at = Date.parse(m.created_at);
      const later = [...this.messages.values()].find((x) => Date.parse(x.message.created_at) > at);
      if (later) later.node.before(node); else this.list.append(node);
      this.messages.set(m.id, { message: m, node });
      if (!this.lastSeen || at >= Date.parse(this.messageOf(this.lastSeen).created_at)) this.lastSeen = m.id;
      if (!this.mine(m)) {
        this.setTheirTyping(false);
        if (!m.read) this.unread++;
      }
      this.onChange(this);
    }
    this.list.scrollTop = this.list.scrollHeight;
    this.markRead();
  }

  messageOf(id) { return this.messages.get(id).message; }
  mine(m) { return m.sender && m.sender.type === this.me.type && m.sender.id === this.me.id; }

  render(m) {
    const mine = this.mine(m);
    const who = this.names[m.sender && m.sender.type] || (m.sender && m.sender.id) || '';
    return el('li', { class: mine ? 'message mine' : 'message theirs', 'data-id': m.id },
      el('span', { class: 'who' }, mine ? 'You' : who),
      el('p', { class: 'content' }, m.content),
      el('span', { class: 'meta' },
        el('time', { datetime: m.created_at }, timeOf(m.created_at)),
        mine ? el('span', { class: m.read ? 'receipt read' : 'receipt', title: m.read ? 'Read' : 'Sent', 'aria-label': m.read ? 'Read' : 'Sent' }, m.read ? '✓✓' : '✓') : null));
  }

  // markRead marks the other side's unread messages of this conversation once they are on
  // screen (the conversation is active and the tab visible). A pending conversation has no
  // recipient yet: its messages wait for the manager who takes it.
  markRead() {
    if (!this.active || document.visibilityState !== 'visible' || this.conv?.status === 'pending') return;
    for (const { message: m } of this.messages.values()) {
      if (this.mine(m) || m.read || m.conversation_id !== this.id || m.marking) continue;
      m.marking = true;
      this.api.markRead(this.id, m.id).then((r) => this.show(r.message), () => { m.marking = false; });
    }
    this.unread = 0;
    this.onChange(this);
  }

  setActive(active) {
    this.active = active;
    this.markRead();
  }

  async send(content) {
    const { message } = await this.api.post(this.id, content, clientMessageId());
    this.show(message);
    this.typingStopped();
    return message;
  }

  // keyPressed tells the other side we are typing, at most every TYPING_EVERY.
  keyPressed() {
    if (!this.id || this.closed) return;
    const now = Date.now();
    if (now - this.typingSent > TYPING_EVERY) {
      this.typingSent = now;
      this.publishTyping(true);
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.typingStopped(), TYPING_IDLE);
  }

  typingStopped() {
    clearTimeout(this.typingTimer);
    if (this.typingSent) {
      this.typingSent = 0;
      this.publishTyping(false);
    }
  }

  publishTyping(typing) {
    // Typing is a courtesy: a lost or refused event changes nothing.
    this.client.publish(`/conversations/${this.id}/typing`, { typing, sender: this.me }).then(null, () => {});
  }

  theirTyping(d) {
    if (!d || typeof d !== 'object' || !d.sender || (d.sender.type === this.me.type && d.sender.id === this.me.id)) return;
    this.setTheirTyping(d.typing === true, this.names[d.sender.type] || 'The other side');
  }

  setTheirTyping(on, who) {
    clearTimeout(this.theirTypingTimer);
    this.typing.textContent = on ? `${who} is typing…` : '';
    if (on) this.theirTypingTimer = setTimeout(() => this.setTheirTyping(false), TYPING_SHOWN);
  }

  // catchUp asks for what came after the newest message shown: the reconnect recipe.
  async catchUp() {
    if (!this.id || !this.lastSeen) return;
    for (let page = 0; page < 20; page++) { // bounded: a page is up to api.max_messages_count
      const before = this.lastSeen;
      const { messages } = await this.api.history(this.id, { after_id: before });
      for (const m of messages) this.show(m);
      if (messages.length === 0 || this.lastSeen === before) return;
    }
  }
}
