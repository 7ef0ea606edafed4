// The manager console: sign in with a token, go on or off duty (holding /service/*), see the
// conversations assigned to you arrive live, chat in them, close them.
import { Api, claims, connect, el, pageToken, remembered, subscribe } from './api.js';
import { Conversation } from './chat.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'console-token';

let session = null;

function start() {
  const token = pageToken(TOKEN_KEY);
  $('signin').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });
  $('signout').addEventListener('click', signOut);
  if (token) {
    $('token').value = token;
    signIn(token);
  } else {
    showSignIn('');
  }
}

function showSignIn(error) {
  $('signin').hidden = false;
  $('desk').hidden = true;
  $('session').hidden = true;
  $('signin-error').textContent = error;
  $('token').focus();
}

function signIn(token) {
  const me = claims(token);
  if (!me || me.role !== 'manager') {
    showSignIn(me ? `This is a ${me.role} token; the console needs a manager token.` : 'This is not a token the server issues.');
    return;
  }
  if (typeof me.exp === 'number' && me.exp * 1000 < Date.now()) {
    showSignIn('This token has expired; ask for a new one.');
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    session = new Session(token, me);
  } catch (err) {
    showSignIn(err.message);
    return;
  }
  $('signin').hidden = true;
  $('desk').hidden = false;
  $('session').hidden = false;
  $('who').textContent = `${me.sub} · ${me.org}`;
}

function signOut() {
  session?.end();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('token').value = '';
  showSignIn('');
}

const SYNC_EVERY = 15000; // read the lists and the managers on duty again this often

class Session {
  constructor(token, me) {
    this.me = me;
    this.api = new Api(token);
    this.ups = 0;
    this.client = connect(token, (state) => this.connection(state));
    this.threads = new Map(); // visitor id → { view, item, visitor }
    this.selected = null;
    this.duty = null;
    this.onDuty = [];
    this.listeners = [
      [$('duty'), 'change', () => this.setDuty($('duty').checked)],
      [$('close'), 'click', () => this.closeSelected()],
      [$('claim'), 'click', () => this.claimSelected()],
      [$('transfer'), 'submit', (e) => { e.preventDefault(); this.transferSelected($('transfer-to').value); }],
      [$('transfer-to'), 'focus', () => this.refreshDuty()],
      [$('composer'), 'submit', (e) => { e.preventDefault(); this.send(); }],
      [$('message'), 'keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); this.send(); }
      }],
      [$('message'), 'input', () => this.selected?.view.keyPressed()],
      [$('start'), 'submit', (e) => { e.preventDefault(); this.startWith($('start-visitor').value.trim()); }],
      [document, 'visibilitychange', () => {
        this.selected?.view.markRead();
        if (document.visibilityState === 'visible') this.sync().catch(() => {}); // back to this tab
      }],
    ];
    for (const [node, type, fn] of this.listeners) node.addEventListener(type, fn);
    // Per tab: the conversation on screen and the duty switch, so that a reload keeps them.
    // The conversations themselves come from the server.
    this.memory = `console:${me.org}:${me.sub}`;
    const kept = remembered.get(this.memory) || {};
    $('duty').checked = false;
    $('conversations').replaceChildren();
    $('waiting').replaceChildren();
    this.select(null);
    this.connection('idle');
    this.syncTimer = setInterval(() => { this.refreshDuty(); this.sync().catch(() => {}); }, SYNC_EVERY);
    this.refreshDuty();
    this.load(kept.selected);
    if (kept.duty) { $('duty').checked = true; this.setDuty(true); }
  }

  remember(change) {
    remembered.set(this.memory, Object.assign({}, remembered.get(this.memory), change));
  }

  // load shows the manager's open conversations and the organisation's waiting ones.
  async load(selected) {
    this.loading = true;
    $('inbox-status').textContent = 'Loading conversations…';
    try {
      await this.sync();
    } catch (err) {
      $('inbox-status').textContent = `Could not load the conversations: ${err.message}`;
    } finally {
      this.loading = false;
    }
    if (!this.selected) this.select(this.threads.get(selected) || this.mine()[0] || null);
  }

  // sync makes the lists the server's: it joins the conversations missing here and reads again
  // those that left the server's lists. Live events cover the rest, but they are at most once,
  // and a conversation taken from this manager stops delivering (to its other tabs too).
  async sync() {
    if (this.ended) return;
    const [mine, waiting] = await Promise.all([this.api.conversations(), this.api.conversations({ status: 'pending' })]);
    const items = [...waiting, ...mine];
    const listed = new Set(items.map((i) => i.conversation.id));
    for (const t of [...this.threads.values()]) if (t.view.id && !t.view.closed && !listed.has(t.view.id)) this.refresh(t);
    // Oldest first: each new one goes on top, so the lists keep the server's order.
    const joined = await Promise.allSettled(items.reverse().map((i) => this.add(i.conversation, i.unread_count)));
    const failed = joined.filter((r) => r.status === 'rejected').length;
    $('inbox-status').textContent = failed ? `${failed} of the conversations could not be followed live.` : '';
  }

  mine() {
    return [...this.threads.values()].filter((t) => t.item.parentNode === $('conversations'));
  }

  end() {
    for (const [node, type, fn] of this.listeners) node.removeEventListener(type, fn);
    for (const t of this.threads.values()) t.view.detach();
    clearInterval(this.syncTimer);
    this.ended = true;
    this.client.disconnect();
  }

  connection(state) {
    const label = { idle: 'Not connected yet', up: 'Connected', down: 'Reconnecting…' }[state];
    $('connection').dataset.state = state;
    $('connection').textContent = label;
    // Back after a cut: fetch what was posted meanwhile (live delivery is at most once).
    if (state === 'up' && this.ups++ > 0) {
      for (const t of this.threads.values()) t.view.catchUp().catch(() => {});
      this.sync().catch(() => {});
    }
  }

  async setDuty(on) {
    $('duty').disabled = true;
    try {
      if (on && !this.duty) {
        this.duty = await subscribe(this.client, '/service/*', (d) => this.announced(d));
        $('duty-help').textContent = 'On duty: new conversations are assigned to you.';
      } else if (!on && this.duty) {
        this.duty.cancel();
        this.duty = null;
        $('duty-help').textContent = 'Off duty: no new conversations are assigned to you.';
      }
      this.remember({ duty: !!this.duty });
    } catch (err) {
      $('duty').checked = false;
      this.duty = null;
      $('duty-help').textContent = `Could not go on duty: ${err && err.message ? err.message : err}`;
    } finally {
      $('duty').disabled = false;
    }
    this.refreshDuty();
    setTimeout(() => this.refreshDuty(), 1500); // presence may take a moment to reach every node
  }

  // refreshDuty lists the organisation's managers on duty (all tabs and nodes), and offers the
  // others as transfer targets.
  async refreshDuty() {
    if (this.ended) return;
    try {
      const { on_duty: ids = [] } = await this.api.duty();
      this.onDuty = ids;
    } catch {
      return; // the list stays as it was; the next refresh tries again
    }
    if (this.ended) return;
    $('on-duty').replaceChildren(...this.onDuty.map((id) =>
      el('li', { class: id === this.me.sub ? 'me' : '' }, id === this.me.sub ? `${id} (you)` : id)));
    const others = this.onDuty.filter((id) => id !== this.me.sub);
    const chosen = $('transfer-to').value;
    $('transfer-to').replaceChildren(...(others.length
      ? others.map((id) => el('option', { value: id, selected: id === chosen }, id))
      : [el('option', { value: '' }, 'nobody else on duty')]));
    if (this.selected) this.header();
  }

  // announced receives /service/* events: a conversation opened, assigned or transferred in
  // the organisation. Mine and waiting ones join the lists; one that went to another manager
  // leaves them.
  announced(d) {
    if (!d || d.entity !== 'conversation' || !d.conversation) return;
    const c = d.conversation;
    const t = this.threads.get(c.visitor_id);
    if (c.manager_id === this.me.sub || c.status === 'pending') this.add(c).catch((err) => this.error(err));
    else if (t && t.view.id === c.id) t.view.update(c);
  }

  async add(conv, unread) {
    let t = this.threads.get(conv.visitor_id);
    if (!t) {
      const list = this.listOf(conv);
      if (!list) return;
      const view = new Conversation({
        client: this.client, api: this.api, me: { type: 'manager', id: this.me.sub },
        names: { visitor: 'Visitor', manager: 'Manager' },
        onChange: (v) => this.changed(v),
      });
      const item = el('li', {}, el('button', { type: 'button', class: 'thread', onclick: () => this.select(t) },
        el('span', { class: 'visitor' }, conv.visitor_id),
        el('span', { class: 'badge', 'aria-hidden': 'true' }),
        el('span', { class: 'unread visually-hidden' }),
        el('span', { class: 'preview' })));
      t = { view, item, visitor: conv.visitor_id };
      this.threads.set(conv.visitor_id, t);
      if (!this.loading) item.classList.add('new'); // arrived live, not yet looked at
      list.prepend(item);
    }
    await t.view.attach(conv, unread);
    if (!this.selected && !this.loading && this.threads.get(conv.visitor_id) === t && conv.status !== 'pending') this.select(t);
  }

  // listOf is the list of a conversation: mine (open, or closed by me), waiting (pending), or
  // none (another manager's).
  listOf(c) {
    if (c.status === 'pending') return $('waiting');
    return c.manager_id === this.me.sub ? $('conversations') : null;
  }

  // place moves a thread to the list of its conversation, or drops it.
  place(t) {
    const list = this.listOf(t.view.conv);
    if (!list) this.drop(t);
    else if (t.item.parentNode !== list) list.prepend(t.item);
    return !!list;
  }

  drop(t) {
    t.view.detach();
    t.item.remove();
    if (this.threads.get(t.visitor) === t) this.threads.delete(t.visitor);
    if (this.selected === t) this.select(null);
  }

  changed(view) {
    const t = [...this.threads.values()].find((x) => x.view === view);
    if (!t || !this.place(t)) return;
    const last = [...view.messages.values()].pop();
    t.item.querySelector('.preview').textContent = last ? last.message.content : 'No messages yet';
    t.item.querySelector('.badge').textContent = view.unread > 0 ? String(view.unread) : '';
    t.item.querySelector('.unread').textContent = view.unread > 0 ? ` (${view.unread} unread)` : '';
    t.item.classList.toggle('closed', view.closed);
    t.item.dataset.conversation = view.id || '';
    if (t === this.selected) this.header();
    const unread = [...this.threads.values()].reduce((n, x) => n + x.view.unread, 0);
    document.title = unread > 0 ? `(${unread}) Chat console` : 'Chat console';
  }

  select(t) {
    if (this.selected) {
      this.selected.view.setActive(false);
      this.selected.item.classList.remove('selected');
      this.selected.item.firstChild.removeAttribute('aria-current');
    }
    this.selected = t;
    this.remember({ selected: t?.visitor });
    $('chat').hidden = !t;
    $('empty').hidden = !!t;
    if (!t) return;
    t.item.classList.remove('new');
    t.item.classList.add('selected');
    t.item.firstChild.setAttribute('aria-current', 'true');
    $('chat-body').replaceChildren(t.view.node);
    $('chat-error').textContent = '';
    t.view.setActive(true);
    this.header();
    $('message').focus();
  }

  header() {
    const v = this.selected.view;
    const status = v.conv?.status || 'open';
    const pending = status === 'pending';
    $('chat-title').textContent = `Visitor ${this.selected.visitor}`;
    $('chat-status').textContent = status;
    $('chat-status').dataset.status = status;
    $('claim').hidden = !pending;
    $('transfer').hidden = pending || v.closed;
    $('transfer').querySelector('button').disabled = !$('transfer-to').value;
    $('close').disabled = v.closed || pending;
    $('message').disabled = v.closed || pending;
    $('composer').querySelector('button').disabled = v.closed || pending;
  }

  async send() {
    const t = this.selected;
    const content = $('message').value;
    if (!t || !content.trim()) return;
    $('message').value = '';
    try {
      await t.view.send(content);
      $('chat-error').textContent = '';
    } catch (err) {
      $('message').value = content;
      if (err.code === 'conversation_closed') t.view.update({ status: 'closed' });
      this.error(err);
    }
  }

  async closeSelected() {
    const t = this.selected;
    if (!t) return;
    try {
      const { conversation } = await this.api.close(t.view.id);
      t.view.update(conversation);
    } catch (err) {
      this.error(err);
    }
  }

  async claimSelected() {
    const t = this.selected;
    if (!t) return;
    try {
      const { conversation } = await this.api.claim(t.view.id);
      t.view.update(conversation); // now mine: it moves to my list
    } catch (err) {
      if (err.code === 'conversation_not_pending') this.refresh(t);
      this.error(err);
    }
  }

  async transferSelected(managerId) {
    const t = this.selected;
    if (!t || !managerId) return;
    try {
      const { conversation } = await this.api.transfer(t.view.id, managerId);
      t.view.update(conversation); // another manager's: it leaves my list
    } catch (err) {
      this.error(err);
    }
  }

  // refresh reads a conversation again (someone else changed it): the visitor's open one tells
  // who has it now; otherwise it was closed. One this manager may no longer read leaves the lists.
  async refresh(t) {
    const id = t.view.id;
    const open = await this.api.conversations({ visitor_id: t.visitor, status: 'open' }, 1).catch(() => []);
    const item = open.find((i) => i.conversation.id === id) || await this.api.conversation(id).catch(() => null);
    if (t.view.id !== id) return;
    if (item) t.view.update(item.conversation); else this.drop(t);
  }

  async startWith(visitorId) {
    $('start-error').textContent = '';
    try {
      const { conversation } = await this.api.open(visitorId);
      await this.add(conversation);
      this.select(this.threads.get(visitorId));
      $('start-visitor').value = '';
    } catch (err) {
      $('start-error').textContent = err.message;
    }
  }

  error(err) {
    $('chat-error').textContent = err && err.message ? err.message : String(err);
  }
}

start();
