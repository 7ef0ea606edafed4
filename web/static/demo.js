// The visitor's chat widget on a shop page: a bubble that opens a chat panel. The conversation
// is opened on the first message (the server assigns an on-duty manager), then both sides
// chat live; a closed conversation is followed by a new one when the visitor writes again.
import { Api, claims, connect, pageToken, remembered, subscribe } from './api.js';
import { Conversation } from './chat.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'demo-token';

let widget = null;

function start() {
  $('bubble').addEventListener('click', () => toggle());
  $('hide').addEventListener('click', () => toggle(false));
  $('signin').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });
  const token = pageToken(TOKEN_KEY);
  if (token) signIn(token); else showSignIn('');
}

function toggle(open = $('panel').hidden) {
  $('panel').hidden = !open;
  $('bubble').setAttribute('aria-expanded', String(open));
  if (!open) { $('bubble').focus(); widget?.setVisible(false); return; }
  widget?.setVisible(true);
  ($('signin').hidden ? $('message') : $('token')).focus();
}

function showSignIn(error) {
  $('signin').hidden = false;
  $('chat').hidden = true;
  $('signin-error').textContent = error;
}

function signIn(token) {
  const me = claims(token);
  if (!me || me.role !== 'visitor') {
    showSignIn(me ? `This is a ${me.role} token; the widget needs a visitor token.` : 'This is not a token the server issues.');
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin').hidden = true;
  $('chat').hidden = false;
  try {
    widget = new Widget(token, me);
  } catch (err) {
    showSignIn(err.message);
  }
}

class Widget {
  constructor(token, me) {
    this.me = me;
    this.api = new Api(token);
    this.ups = 0;
    this.client = connect(token, (state) => this.connection(state));
    this.view = new Conversation({
      client: this.client, api: this.api, me: { type: 'visitor', id: me.sub },
      names: { manager: 'Shop assistant', visitor: 'Visitor' },
      onChange: () => this.changed(),
    });
    $('chat-body').replaceChildren(this.view.node);
    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    $('message').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); this.send(); }
    });
    $('message').addEventListener('input', () => this.view.keyPressed());
    document.addEventListener('visibilitychange', () => this.view.markRead());
    // A manager may open the conversation first, or re-open it: follow its announcements.
    this.ready = subscribe(this.client, `/service/${me.sub}`, (d) => {
      if (d && d.entity === 'conversation' && d.conversation) this.view.attach(d.conversation).catch((err) => this.error(err));
    }).catch((err) => this.error(err));
    this.setVisible(!$('panel').hidden);
    // After a reload, the conversation this tab had comes back with its history.
    this.memory = `demo-conversation:${me.org}:${me.sub}`;
    const conv = remembered.get(this.memory);
    if (conv) this.view.attach(conv).catch(() => remembered.set(this.memory, null));
  }

  setVisible(visible) { this.view.setActive(visible); }

  connection(state) {
    $('connection').dataset.state = state;
    $('connection').textContent = state === 'down' ? 'Reconnecting…' : '';
    if (state === 'up' && this.ups++ > 0) this.view.catchUp().catch(() => {});
  }

  changed() {
    if (this.view.conv) remembered.set(this.memory, this.view.conv);
    $('bubble-badge').textContent = this.view.unread > 0 ? String(this.view.unread) : '';
    if (this.view.closed) this.view.notice.textContent = 'This conversation was closed. Write again to start a new one.';
  }

  // open starts a conversation, or gets the one already open; with nobody on duty the shop's
  // offline message is shown and nothing is sent.
  async open() {
    await this.ready;
    const { conversation } = await this.api.open(this.me.sub);
    await this.view.attach(conversation);
  }

  async send() {
    const content = $('message').value;
    if (!content.trim()) return;
    $('message').value = '';
    $('offline').hidden = true;
    try {
      if (!this.view.id || this.view.closed) await this.open();
      await this.view.send(content);
    } catch (err) {
      $('message').value = content;
      if (err.code === 'conversation_closed') this.view.update({ status: 'closed' });
      this.error(err);
    }
  }

  error(err) {
    $('offline').hidden = false;
    $('offline').textContent = err && err.message ? err.message : String(err);
  }
}

start();
