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

class Session {
  constructor(token, me) {
    this.me = me;
    this.api = new Api(token);
    this.ups = 0;
    this.client = connect(token, (state) => this.connection(state));
    this.threads = new Map(); // visitor id → { view, item }
    this.selected = null;
    this.duty = null;
    this.listeners = [
      [$('duty'), 'change', () => this.setDuty($('duty').checked)],
      [$('close'), 'click', () => this.closeSelected()],
      [$('composer'), 'submit', (e) => { e.preventDefault(); this.send(); }],
      [$('message'), 'keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); this.send(); }
      }],
      [$('message'), 'input', () => this.selected?.view.keyPressed()],
      [$('start'), 'submit', (e) => { e.preventDefault(); this.startWith($('start-visitor').value.trim()); }],
      [document, 'visibilitychange', () => this.selected?.view.markRead()],
    ];
    for (const [node, type, fn] of this.listeners) node.addEventListener(type, fn);
    $('duty').checked = false;
    $('conversations').replaceChildren();
    this.select(null);
    this.connection('idle');
    // The conversations this tab showed before a reload come back, oldest first.
    this.memory = `console-threads:${me.org}:${me.sub}`;
    for (const conv of (remembered.get(this.memory) || []).reverse()) this.add(conv).catch((err) => this.error(err));
  }

  remember() {
    const convs = [...this.threads.values()].filter((t) => t.view.conv).map((t) => t.view.conv);
    remembered.set(this.memory, convs.reverse().slice(0, 30));
  }

  end() {
    for (const [node, type, fn] of this.listeners) node.removeEventListener(type, fn);
    for (const t of this.threads.values()) t.view.detach();
    this.client.disconnect();
  }

  connection(state) {
    const label = { idle: 'Not connected yet', up: 'Connected', down: 'Reconnecting…' }[state];
    $('connection').dataset.state = state;
    $('connection').textContent = label;
    // Back after a cut: fetch what was posted meanwhile (live delivery is at most once).
    if (state === 'up' && this.ups++ > 0) for (const t of this.threads.values()) t.view.catchUp().catch(() => {});
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
    } catch (err) {
      $('duty').checked = false;
      this.duty = null;
      $('duty-help').textContent = `Could not go on duty: ${err && err.message ? err.message : err}`;
    } finally {
      $('duty').disabled = false;
    }
  }

  // announced receives /service/* events: a conversation opened (or re-opened) in the
  // organisation; the ones assigned to this manager join the list.
  announced(d) {
    if (!d || d.entity !== 'conversation' || !d.conversation) return;
    if (d.conversation.manager_id === this.me.sub) this.add(d.conversation).catch((err) => this.error(err));
  }

  async add(conv) {
    let t = this.threads.get(conv.visitor_id);
    if (!t) {
      const view = new Conversation({
        client: this.client, api: this.api, me: { type: 'manager', id: this.me.sub },
        names: { visitor: 'Visitor', manager: 'Manager' },
        onChange: (v) => this.changed(v),
      });
      const item = el('li', {}, el('button', { type: 'button', class: 'thread', onclick: () => this.select(t) },
        el('span', { class: 'visitor' }, conv.visitor_id),
        el('span', { class: 'badge' }),
        el('span', { class: 'preview' })));
      t = { view, item, visitor: conv.visitor_id };
      this.threads.set(conv.visitor_id, t);
      $('conversations').prepend(item);
      item.classList.add('new');
    }
    await t.view.attach(conv);
    if (!this.selected) this.select(t);
  }

  changed(view) {
    const t = [...this.threads.values()].find((x) => x.view === view);
    if (!t) return;
    const last = [...view.messages.values()].pop();
    t.item.querySelector('.preview').textContent = last ? last.message.content : 'No messages yet';
    t.item.querySelector('.badge').textContent = view.unread > 0 ? String(view.unread) : '';
    t.item.classList.toggle('closed', view.closed);
    t.item.dataset.conversation = view.id || '';
    if (t === this.selected) this.header();
    const unread = [...this.threads.values()].reduce((n, x) => n + x.view.unread, 0);
    document.title = unread > 0 ? `(${unread}) Chat console` : 'Chat console';
    this.remember();
  }

  select(t) {
    if (this.selected) {
      this.selected.view.setActive(false);
      this.selected.item.classList.remove('selected');
      this.selected.item.firstChild.removeAttribute('aria-current');
    }
    this.selected = t;
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
    $('chat-title').textContent = `Visitor ${this.selected.visitor}`;
    $('chat-status').textContent = v.closed ? 'closed' : 'open';
    $('chat-status').dataset.status = v.closed ? 'closed' : 'open';
    $('close').disabled = v.closed;
    $('message').disabled = v.closed;
    $('composer').querySelector('button').disabled = v.closed;
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
