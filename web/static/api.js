// Shared helpers of the console and the demo page: the token, the REST API, the Faye client
// and a tiny DOM builder. Plain ES module, no dependencies besides the Faye client script.

// pageToken returns the token of the page's link (#token=…) or the one kept for this tab. The
// fragment is never sent to a server; it is removed from the address bar once read.
export function pageToken(key) {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromLink = params.get('token');
  if (fromLink) {
    sessionStorage.setItem(key, fromLink);
    history.replaceState(null, '', location.pathname + location.search);
    return fromLink;
  }
  return sessionStorage.getItem(key) || '';
}

// claims decodes a JWT's payload for display only; the server is what verifies it.
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(atob(part));
    if (typeof c.sub !== 'string' || typeof c.role !== 'string' || typeof c.org !== 'string') return null;
    return c;
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

// Api calls the REST API of this origin with the bearer token.
export class Api {
  constructor(token) { this.token = token; }

  // call sends a POST with a JSON body, or a GET with query parameters (empty ones left out).
  async call(route, body, method = 'POST') {
    const init = { method, headers: { Authorization: `Bearer ${this.token}` } };
    if (method === 'GET') {
      const q = new URLSearchParams(Object.entries(body || {}).filter(([, v]) => v !== undefined && v !== ''));
      if ([...q].length) route += `?${q}`;
    } else {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(route, init);
    } catch (err) {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = json.error || {};
      throw new ApiError(res.status, e.code, e.message);
    }
    return json;
  }

  // conversations lists every page of GET /chat/conversations (query: status, manager_id,
  // visitor_id), following next_cursor, bounded to `pages` pages of 200.
  async conversations(query = {}, pages = 10) {
    const items = [];
    let cursor = '';
    for (let page = 0; page < pages; page++) {
      const r = await this.call('/chat/conversations', { ...query, limit: 200, cursor }, 'GET');
      items.push(...(r.conversations || []));
      cursor = r.next_cursor || '';
      if (!cursor) break;
    }
    return items;
  }
  conversation(convId) { return this.call(`/chat/conversation/${encodeURIComponent(convId)}`, {}, 'GET'); }
  duty() { return this.call('/chat/duty', {}, 'GET'); }
  transfer(convId, managerId) {
    return this.call(`/chat/conversation/${encodeURIComponent(convId)}/transfer`, { manager_id: managerId });
  }
  claim(convId) { return this.call(`/chat/conversation/${encodeURIComponent(convId)}/claim`); }
  open(visitorId) { return this.call(`/chat/service/${encodeURIComponent(visitorId)}`); }
  post(convId, content, clientMessageId) {
    return this.call(`/chat/conversation/${encodeURIComponent(convId)}`, { content, client_message_id: clientMessageId });
  }
  history(convId, query) { return this.call(`/chat/conversation/${encodeURIComponent(convId)}/messages`, query); }
  markRead(convId, msgId) {
    return this.call(`/chat/conversation/${encodeURIComponent(convId)}/message/${encodeURIComponent(msgId)}/mark_read`);
  }
  close(convId) { return this.call(`/chat/conversation/${encodeURIComponent(convId)}/close`); }
}

// connect makes a Faye client of this origin that sends the token with every message, and
// reports the transport's state ('up' or 'down') to onState.
export function connect(token, onState) {
  const mount = document.querySelector('meta[name="faye-mount"]').content;
  if (typeof Faye === 'undefined') {
    throw new Error(`The Faye client did not load from ${mount}/client.js: is the server's faye.client_js_path set to a missing file?`);
  }
  const client = new Faye.Client(location.origin + mount);
  client.addExtension({
    outgoing(message, callback) {
      message.ext = Object.assign({}, message.ext, { token });
      callback(message);
    },
  });
  client.on('transport:up', () => onState('up'));
  client.on('transport:down', () => onState('down'));
  return client;
}

// subscribe resolves, once the server accepted it, with a handle to cancel the subscription.
// (Not the subscription itself: it is a thenable, which a promise would unwrap.) A client
// whose handshake is refused (a bad token) never hears back: that fails after timeoutMs.
export function subscribe(client, channel, onMessage, timeoutMs = 10000) {
  const sub = client.subscribe(channel, onMessage);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.cancel();
      reject(new Error('the server did not accept the subscription: is the token valid?'));
    }, timeoutMs);
    sub.then(() => { clearTimeout(timer); resolve({ cancel: () => sub.cancel() }); },
      (err) => { clearTimeout(timer); reject(err); });
  });
}

// el builds an element: el('p', { class: 'x', onclick: f }, 'text', child…). Text is always
// set as text, never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function clientMessageId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// remembered keeps a small JSON value per tab (the conversations on screen), so that a
// reload finds them again.
export const remembered = {
  get(key) { try { return JSON.parse(sessionStorage.getItem(key)) || null; } catch { return null; } },
  set(key, value) { sessionStorage.setItem(key, JSON.stringify(value)); },
};

export function timeOf(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
