/*
 * Faye-compatible browser client of the Convead chat server, served at /faye/client.js.
 * Part of the Convead chat server and under the same license as the rest of the project.
 *
 * It defines window.Faye with the API of the official Faye 1.4 browser client, so that a page
 * can load either one with <script src=".../faye/client.js"> unchanged:
 *
 *   var client = new Faye.Client('https://chat.example.com/faye', { timeout: 60, retry: 5 });
 *   client.addExtension({ outgoing: function (message, callback) { ...; callback(message); },
 *                         incoming: function (message, callback) { ...; callback(message); } });
 *   client.disable('websocket');            // or 'long-polling', 'autodisconnect', ...
 *   client.setHeader('X-Name', 'value');    // HTTP transports only: websocket cannot carry it
 *   var sub = client.subscribe('/channel', function (data) { ... });   // thenable
 *   sub.then(ok, failed); sub.cancel();    // or client.unsubscribe('/channel', sub)
 *   client.publish('/channel', data).then(ok, function (error) { error.code; error.message; });
 *   client.on('transport:up', fn); client.on('transport:down', fn);
 *   client.disconnect();
 *
 * Transports, as Faye chooses them: the handshake goes over long-polling (XHR POST of JSON)
 * on the same origin, or over callback-polling (JSONP: GET ?message=...&jsonp=...) across
 * origins; after it the client moves to a websocket when one opens, else to long-polling, or
 * across origins to cross-origin-long-polling (CORS XHR) and finally callback-polling.
 * Plain ES2017, no dependencies and no build step.
 */
(function (global) {
  'use strict';

  var BAYEUX_VERSION = '1.0';
  // What a handshake may go over: they need no clientId and work before anything is known.
  var HANDSHAKE_TYPES = ['long-polling', 'callback-polling'];
  // In order of preference, as the official client registers them.
  var CONNECTION_TYPES = ['websocket', 'long-polling', 'cross-origin-long-polling', 'callback-polling'];
  // An encoded HTTP batch is split beyond this size, mostly so that JSONP URLs stay short.
  var MAX_REQUEST_SIZE = 2048;
  var DEFAULT_RETRY = 5; // seconds between attempts to resend a message
  var CONNECTION_TIMEOUT = 60; // seconds, until the server advises its own timeout
  var CLIENT_OPTIONS = ['interval', 'timeout', 'endpoints', 'retry',
    // Accepted for compatibility; they only mean something to the Node client.
    'proxy', 'scheduler', 'websocketExtensions', 'tls', 'ca'];

  var UNCONNECTED = 1, CONNECTING = 2, CONNECTED = 3, DISCONNECTED = 4;
  var noop = function () {};

  function validateOptions(options, allowed) {
    Object.keys(options).forEach(function (key) {
      if (allowed.indexOf(key) < 0) throw new Error('Unrecognized option: ' + key);
    });
  }

  // ---- Events: on/off (alias bind/unbind) and trigger, as Faye's Publisher.

  var Events = {
    on: function (name, fn, context) {
      this._events = this._events || {};
      (this._events[name] = this._events[name] || []).push({ fn: fn, context: context });
      return this;
    },
    off: function (name, fn, context) {
      if (!this._events || !this._events[name]) return this;
      this._events[name] = fn ? this._events[name].filter(function (l) {
        return l.fn !== fn || (context !== undefined && l.context !== context);
      }) : [];
      return this;
    },
    trigger: function (name) {
      var args = Array.prototype.slice.call(arguments, 1);
      var listeners = (this._events && this._events[name] || []).slice();
      listeners.forEach(function (l) { l.fn.apply(l.context, args); });
    }
  };
  Events.bind = Events.on;
  Events.unbind = Events.off;

  // ---- Faye.Error: a Bayeux error string "code:param,param:message" taken apart.

  function FayeError(code, params, message) {
    this.code = code;
    this.params = params;
    this.message = message;
  }
  FayeError.prototype.toString = function () {
    return this.code + ':' + this.params.join(',') + ':' + this.message;
  };
  // Only the characters Bayeux allows in an error; anything else is a plain message.
  var ERROR_GRAMMAR = /^[0-9]{3}:[A-Za-z0-9\-_!~()$@ /*.]*(,[A-Za-z0-9\-_!~()$@ /*.]*)*:[A-Za-z0-9\-_!~()$@ /*.]*$/;
  FayeError.parse = function (text) {
    text = text || '';
    if (!ERROR_GRAMMAR.test(text)) return new FayeError(null, [], text);
    var parts = text.split(':');
    return new FayeError(parseInt(parts[0], 10), parts[1].split(','), parts[2]);
  };

  // ---- Deferred: what subscribe, publish and disconnect return. Like Faye's, a missing
  // callback of then() swallows the outcome, so a page that only calls .then(ok) does not get
  // unhandled rejections; await and .catch see failures.

  function Deferred() {
    var self = this;
    this._promise = new Promise(function (resolve, reject) {
      self._resolve = resolve;
      self._reject = reject;
    });
    this._promise.catch(noop); // an ignored failure is not an unhandled rejection
  }
  Deferred.prototype.then = function (callback, errback) {
    return this._promise.then(callback || noop, errback || noop);
  };
  Deferred.prototype.catch = function (errback) { return this.then(null, errback); };
  Deferred.prototype.callback = function (fn, context) {
    if (fn) this.then(function (value) { fn.call(context, value); });
  };
  Deferred.prototype.errback = function (fn, context) {
    if (fn) this.then(null, function (error) { fn.call(context, error); });
  };
  Deferred.prototype.setDeferredStatus = function (status, value) {
    if (status === 'succeeded') this._resolve(value);
    else if (status === 'failed') this._reject(value);
  };

  // ---- Subscription: a listener on a channel; a thenable for the server's acknowledgement.

  function Subscription(client, channel, callback, context) {
    Deferred.call(this);
    this._client = client;
    this._channel = channel;
    this._callback = callback;
    this._context = context;
    this._cancelled = false;
  }
  Subscription.prototype = Object.create(Deferred.prototype);
  Subscription.prototype.constructor = Subscription;
  Subscription.prototype.withChannel = function (fn, context) {
    this._withChannel = [fn, context];
    return this;
  };
  Subscription.prototype._deliver = function (message) {
    if (typeof this._callback === 'function') this._callback.call(this._context, message.data);
    if (this._withChannel) this._withChannel[0].call(this._withChannel[1], message.channel, message.data);
  };
  Subscription.prototype.cancel = function () {
    if (this._cancelled) return;
    this._client.unsubscribe(this._channel, this);
    this._cancelled = true;
  };
  Subscription.prototype.unsubscribe = Subscription.prototype.cancel;

  // ---- Channels: subscriptions by channel name (or pattern: /a/* one level, /a/** any depth).

  function Channels() { this._subs = new Map(); }
  Channels.prototype.names = function () { return Array.from(this._subs.keys()); };
  Channels.prototype.has = function (name) { return this._subs.has(name); };
  Channels.prototype.add = function (name, sub) {
    if (!this._subs.has(name)) this._subs.set(name, []);
    this._subs.get(name).push(sub);
  };
  // remove drops sub (every subscription when sub is missing) and reports whether the channel
  // has none left, i.e. whether the server must be told.
  Channels.prototype.remove = function (name, sub) {
    var subs = this._subs.get(name);
    if (!subs) return false;
    subs = sub ? subs.filter(function (s) { return s !== sub; }) : [];
    if (subs.length) {
      this._subs.set(name, subs);
      return false;
    }
    this._subs.delete(name);
    return true;
  };
  // deliver hands a message to every subscription whose name or pattern matches its channel.
  Channels.prototype.deliver = function (message) {
    var segments = message.channel.split('/').slice(1);
    var names = [message.channel, '/' + segments.slice(0, -1).concat('*').join('/')];
    for (var i = 0; i < segments.length; i++) names.push('/' + segments.slice(0, i).concat('**').join('/'));
    var subs = this._subs;
    names.forEach(function (name) {
      (subs.get(name) || []).slice().forEach(function (sub) { sub._deliver(message); });
    });
  };

  // ---- Transports. Each sends messages and hands replies to dispatcher.receive and failed
  // messages to dispatcher.fail; the dispatcher owns timeouts and retries.

  function sameOrigin(url) {
    return !global.location || new URL(url).origin === global.location.origin;
  }

  // HTTPTransport batches what is sent in one turn of the event loop into one request, like
  // Faye; a subclass provides encode(messages) (for the size check) and request(messages).
  function HTTPTransport(dispatcher, type, url) {
    this._dispatcher = dispatcher;
    this.connectionType = type;
    this.url = url;
    this._outbox = [];
    this._timer = null;
    this._requests = new Map(); // message id -> request handle, to abort a timed-out message
  }
  HTTPTransport.prototype.send = function (message) {
    this._outbox.push(message);
    if (this._outbox.length > 1 && this.encode(this._outbox).length >= MAX_REQUEST_SIZE) {
      this._outbox.pop();
      this._flush();
      this._outbox.push(message);
    }
    if (!this._timer) {
      var self = this;
      // A handshake waits a little so that what the page does next can share its request.
      var delay = message.channel === '/meta/handshake' ? 10 : 0;
      this._timer = setTimeout(function () { self._flush(); }, delay);
    }
  };
  HTTPTransport.prototype._flush = function () {
    clearTimeout(this._timer);
    this._timer = null;
    var batch = this._outbox, self = this;
    this._outbox = [];
    if (!batch.length) return;
    // A connect sharing a request with other messages asks not to be held, so that their
    // replies come back at once.
    if (batch.length > 1) {
      batch = batch.map(function (m) {
        return m.channel === '/meta/connect' ? Object.assign({}, m, { advice: { timeout: 0 } }) : m;
      });
    }
    var done = function () { batch.forEach(function (m) { self._requests.delete(m.id); }); };
    var handle = this.request(batch, function (replies) {
      done();
      if (replies) self._dispatcher.receive(replies);
      else self._dispatcher.fail(batch);
    });
    batch.forEach(function (m) { self._requests.set(m.id, handle); });
  };
  HTTPTransport.prototype.abort = function (message) {
    var handle = this._requests.get(message.id);
    if (handle) handle.abort();
  };
  HTTPTransport.prototype.close = noop;

  function parseReplies(text) {
    try {
      var replies = JSON.parse(text);
      return Array.isArray(replies) ? replies : [replies];
    } catch (e) {
      return null;
    }
  }

  // XHRTransport is long-polling (same origin, JSON body) and cross-origin-long-polling (CORS
  // with credentials, a message=<JSON> body sent as text/plain like Faye's).
  function XHRTransport(dispatcher, type, url) {
    HTTPTransport.call(this, dispatcher, type, url);
    this._cors = type === 'cross-origin-long-polling';
  }
  XHRTransport.prototype = Object.create(HTTPTransport.prototype);
  XHRTransport.prototype.encode = function (messages) {
    var json = JSON.stringify(messages);
    return this._cors ? 'message=' + encodeURIComponent(json) : json;
  };
  XHRTransport.prototype.request = function (messages, done) {
    var xhr = new XMLHttpRequest(), finished = false;
    var finish = function (replies) {
      if (finished) return;
      finished = true;
      xhr.onload = xhr.onerror = xhr.ontimeout = xhr.onabort = null;
      done(replies);
    };
    xhr.open('POST', this.url, true);
    if (this._cors) {
      xhr.withCredentials = true;
    } else {
      xhr.setRequestHeader('Content-Type', 'application/json');
      xhr.setRequestHeader('X-Requested-With', 'XMLHttpRequest');
    }
    xhr.setRequestHeader('Pragma', 'no-cache');
    var headers = this._dispatcher.headers;
    Object.keys(headers).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
    xhr.onload = function () {
      finish(xhr.status >= 200 && xhr.status < 300 ? parseReplies(xhr.responseText) : null);
    };
    xhr.onerror = xhr.ontimeout = xhr.onabort = function () { finish(null); };
    xhr.send(this.encode(messages));
    return { abort: function () { xhr.abort(); } };
  };

  // JSONPTransport is callback-polling: each request is a <script> whose reply calls a global
  // function. It works across origins where CORS does not; it cannot carry headers.
  var jsonpCount = 0;
  function JSONPTransport(dispatcher, type, url) {
    HTTPTransport.call(this, dispatcher, type, url);
  }
  JSONPTransport.prototype = Object.create(HTTPTransport.prototype);
  JSONPTransport.prototype._url = function (messages, callbackName) {
    var url = new URL(this.url);
    url.searchParams.set('message', JSON.stringify(messages));
    url.searchParams.set('jsonp', callbackName);
    return url.href;
  };
  JSONPTransport.prototype.encode = function (messages) {
    return this._url(messages, '__jsonp' + (jsonpCount + 1) + '__');
  };
  JSONPTransport.prototype.request = function (messages, done) {
    var name = '__jsonp' + (++jsonpCount) + '__';
    var script = document.createElement('script'), finished = false;
    var finish = function (replies) {
      if (finished) return;
      finished = true;
      // A reply that comes after an abort must still find its function, or the page errs.
      global[name] = function () { delete global[name]; };
      if (script.parentNode) script.parentNode.removeChild(script);
      done(replies);
    };
    global[name] = function (replies) {
      delete global[name];
      finish(Array.isArray(replies) ? replies : [replies]);
    };
    script.onerror = function () { finish(null); };
    script.src = this._url(messages, name);
    (document.head || document.documentElement).appendChild(script);
    return { abort: function () { finish(null); } };
  };

  // WebSocketTransport sends each message as a one-element JSON array on one socket and
  // reconnects the socket when a message is sent after it closed. Browsers cannot set headers
  // on a websocket, so setHeader does not apply to it (as with Faye).
  function WebSocketTransport(dispatcher, url) {
    this._dispatcher = dispatcher;
    this.connectionType = 'websocket';
    this.url = url.replace(/^http/, 'ws');
    this._socket = null;
    this._open = false;
    this._everOpen = false;
    this._queue = []; // sent before the socket opened
    this._pending = new Map(); // id -> message sent and not answered yet
    this._probes = []; // callbacks waiting to learn whether a socket opens
  }
  // probe tells callback whether this transport is usable: true once a socket opens, false
  // if the first one fails. After a socket has once been open, a failure leaves the probe
  // waiting for the next socket instead, as Faye does.
  WebSocketTransport.prototype.probe = function (callback) {
    if (this._open) return callback(true);
    this._probes.push(callback);
    this._connect();
  };
  WebSocketTransport.prototype._connect = function () {
    if (this._socket) return;
    var socket, self = this;
    try {
      socket = new WebSocket(this.url);
    } catch (e) { // e.g. a Content-Security-Policy that forbids it
      return this._closed(false);
    }
    this._socket = socket;
    socket.onopen = function () {
      self._open = self._everOpen = true;
      var queue = self._queue, probes = self._probes;
      self._queue = [];
      self._probes = [];
      queue.forEach(function (m) { self._write(m); });
      probes.forEach(function (probe) { probe(true); });
    };
    socket.onclose = socket.onerror = function () {
      if (self._socket !== socket) return;
      socket.onopen = socket.onclose = socket.onerror = socket.onmessage = null;
      self._closed(self._open);
    };
    socket.onmessage = function (event) {
      var replies = parseReplies(event.data);
      if (!replies) return;
      replies.forEach(function (reply) {
        if (reply && reply.successful !== undefined) self._pending.delete(reply.id);
      });
      self._dispatcher.receive(replies);
    };
  };
  WebSocketTransport.prototype._closed = function (wasOpen) {
    this._socket = null;
    this._open = false;
    var failed = Array.from(this._pending.values()).concat(this._queue);
    this._pending.clear();
    this._queue = [];
    if (!wasOpen && !this._everOpen) {
      var probes = this._probes;
      this._probes = [];
      probes.forEach(function (probe) { probe(false); });
    }
    if (failed.length) this._dispatcher.fail(failed);
  };
  WebSocketTransport.prototype._write = function (message) {
    this._pending.set(message.id, message);
    this._socket.send(JSON.stringify([message]));
  };
  WebSocketTransport.prototype.send = function (message) {
    if (this._open) return this._write(message);
    this._queue.push(message);
    this._connect();
  };
  // abort gives up on a socket that let a message time out: closing it fails every message
  // on it, and the next send opens a new one.
  WebSocketTransport.prototype.abort = function () { this.close(); };
  WebSocketTransport.prototype.close = function () {
    if (this._socket) this._socket.close();
  };

  // ---- Dispatcher: picks the transport, sends messages, times them out and resends them
  // every `retry` seconds until they are answered; reports transport:up and transport:down.

  function Dispatcher(client, endpoint, options) {
    this._client = client;
    this.endpoint = new URL(endpoint, global.location && global.location.href).href;
    this._alternates = options.endpoints || {};
    this.retry = options.retry || DEFAULT_RETRY;
    this.headers = {};
    this.clientId = null;
    this.connectionType = null;
    this._transport = null;
    this._disabled = [];
    this._envelopes = new Map(); // message id -> { message, timeout, timer, sent, ... }
    this._websockets = new Map(); // url -> WebSocketTransport, shared by probes and sends
    this._selection = 0;
    this._up = null; // null until the first reply or failure, then true or false
  }
  Dispatcher.prototype.endpointFor = function (type) {
    return this._alternates[type] ? new URL(this._alternates[type], this.endpoint).href : this.endpoint;
  };
  Dispatcher.prototype._websocket = function () {
    var url = this.endpointFor('websocket');
    if (!this._websockets.has(url)) this._websockets.set(url, new WebSocketTransport(this, url));
    return this._websockets.get(url);
  };
  // _usable answers, possibly later, whether a connection type works from this page.
  Dispatcher.prototype._usable = function (type, callback) {
    var url = this.endpointFor(type);
    switch (type) {
      case 'websocket':
        if (typeof WebSocket !== 'function') return callback(false);
        return this._websocket().probe(callback);
      case 'long-polling':
        return callback(typeof XMLHttpRequest === 'function' && sameOrigin(url));
      case 'cross-origin-long-polling':
        return callback(typeof XMLHttpRequest === 'function' && !sameOrigin(url) &&
          'withCredentials' in new XMLHttpRequest());
      case 'callback-polling':
        return callback(typeof document !== 'undefined');
    }
    callback(false);
  };
  Dispatcher.prototype._create = function (type) {
    if (type === 'websocket') return this._websocket();
    if (type === 'callback-polling') return new JSONPTransport(this, type, this.endpointFor(type));
    return new XHRTransport(this, type, this.endpointFor(type));
  };
  // selectTransport takes the first usable connection type among allowed, in order of
  // preference. A websocket is probed even when not allowed yet (during the handshake), so
  // that it is open by the time the handshake reply allows it.
  Dispatcher.prototype.selectTransport = function (allowed) {
    var self = this, selection = ++this._selection, i = 0;
    var types = CONNECTION_TYPES.filter(function (t) { return self._disabled.indexOf(t) < 0; });
    (function next() {
      if (selection !== self._selection) return; // a newer selection superseded this one
      var type = types[i++];
      if (!type) throw new Error('Could not find a usable connection type for ' + self.endpoint);
      if (allowed.indexOf(type) < 0) {
        if (type === 'websocket' && typeof WebSocket === 'function') self._websocket().probe(noop);
        return next();
      }
      self._usable(type, function (usable) {
        if (!usable) return next();
        if (selection !== self._selection) return;
        self._use(type);
      });
    })();
  };
  Dispatcher.prototype._use = function (type) {
    var current = this._transport;
    if (current && current.connectionType === type) return;
    this._transport = this._create(type);
    this.connectionType = type;
    if (current) current.close();
    // Anything that waited for a transport goes now.
    this._envelopes.forEach(this._sendEnvelope, this);
  };
  Dispatcher.prototype.disable = function (feature) { this._disabled.push(feature); };
  Dispatcher.prototype.setHeader = function (name, value) { this.headers[name] = value; };
  Dispatcher.prototype.close = function () {
    var transport = this._transport;
    this._transport = null;
    this._selection++;
    // Envelopes stay: a closing websocket fails its held connect, which reports
    // transport:down as Faye does; with no transport nothing is resent.
    this._envelopes.forEach(function (env) { clearTimeout(env.timer); });
    if (transport) transport.close();
    this._websockets.forEach(function (ws) { ws.close(); }); // probed but never used
  };

  // send delivers message until the server answers it, waiting timeout seconds for each
  // attempt; options.attempts and options.deadline (seconds) bound a publish's attempts.
  Dispatcher.prototype.send = function (message, timeout, options) {
    var env = {
      message: message, timeout: timeout, timer: null, sent: false, waiting: false,
      attempts: options.attempts, deadline: options.deadline && Date.now() + options.deadline * 1000
    };
    this._envelopes.set(message.id, env);
    this._sendEnvelope(env);
  };
  Dispatcher.prototype._sendEnvelope = function (env) {
    var transport = this._transport, self = this;
    if (!transport || env.sent || env.waiting) return;
    if (env.attempts === 0 || (env.deadline && Date.now() > env.deadline)) {
      this._envelopes.delete(env.message.id);
      return;
    }
    if (env.attempts) env.attempts--;
    env.sent = true;
    env.transport = transport;
    env.timer = setTimeout(function () {
      self.fail([env.message]);
      transport.abort(env.message);
    }, env.timeout * 1000);
    transport.send(env.message);
  };
  Dispatcher.prototype.receive = function (replies) {
    var self = this;
    replies.forEach(function (reply) {
      if (!reply || typeof reply !== 'object') return; // not a Bayeux message
      var env = self._envelopes.get(reply.id);
      if (reply.successful !== undefined && env) {
        clearTimeout(env.timer);
        self._envelopes.delete(reply.id);
      }
      self._client._receiveMessage(reply);
    });
    if (this._up !== true) {
      this._up = true;
      this._client.trigger('transport:up');
    }
  };
  // fail schedules messages that got no answer for another attempt in `retry` seconds.
  Dispatcher.prototype.fail = function (messages) {
    var self = this, failed = false;
    messages.forEach(function (message) {
      var env = self._envelopes.get(message.id);
      if (!env || !env.sent) return;
      failed = true;
      clearTimeout(env.timer);
      env.sent = false;
      env.waiting = true;
      env.timer = setTimeout(function () {
        env.waiting = false;
        self._sendEnvelope(env);
      }, self.retry * 1000);
    });
    if (failed && this._up !== false) {
      this._up = false;
      this._client.trigger('transport:down');
    }
  };

  // ---- Faye.Client

  function Client(endpoint, options) {
    options = options || {};
    validateOptions(options, CLIENT_OPTIONS);
    this._channels = new Channels();
    this._dispatcher = new Dispatcher(this, endpoint || '/bayeux', options);
    this._messageId = 0;
    this._state = UNCONNECTED;
    this._callbacks = new Map(); // message id -> callback for its reply
    this._extensions = [];
    this._deferred = []; // actions waiting for a connected client
    this._connectRequest = false;
    this._advice = {
      reconnect: 'retry',
      interval: 1000 * (options.interval || 0),
      timeout: 1000 * (options.timeout || CONNECTION_TIMEOUT)
    };

    var self = this;
    if (global.addEventListener) {
      global.addEventListener('beforeunload', function () {
        if (self._dispatcher._disabled.indexOf('autodisconnect') < 0) self.disconnect();
      });
    }
  }
  Object.assign(Client.prototype, Events);

  Client.prototype.disable = function (feature) { this._dispatcher.disable(feature); };
  Client.prototype.setHeader = function (name, value) { this._dispatcher.setHeader(name, value); };

  Client.prototype.addExtension = function (extension) {
    this._extensions.push(extension);
    if (extension.added) extension.added(this);
  };
  Client.prototype.removeExtension = function (extension) {
    var before = this._extensions.length;
    this._extensions = this._extensions.filter(function (e) { return e !== extension; });
    if (this._extensions.length < before && extension.removed) extension.removed(this);
  };
  // _pipe passes message through every extension's incoming or outgoing hook in turn; each
  // hands the (possibly changed) message on through its callback, or drops it with null.
  Client.prototype._pipe = function (stage, message, done) {
    var extensions = this._extensions.slice();
    var next = function (message) {
      if (!message) return;
      var extension = extensions.shift();
      if (!extension) return done(message);
      var hook = extension[stage];
      if (!hook) return next(message);
      if (hook.length >= 3) hook.call(extension, message, null, next);
      else hook.call(extension, message, next);
    };
    next(message);
  };

  Client.prototype.handshake = function (callback) {
    if (this._advice.reconnect === 'none' || this._state !== UNCONNECTED) return;
    this._state = CONNECTING;
    var self = this;
    this._dispatcher.selectTransport(HANDSHAKE_TYPES);
    this._send({
      channel: '/meta/handshake',
      version: BAYEUX_VERSION,
      supportedConnectionTypes: CONNECTION_TYPES.slice()
    }, {}, function (reply) {
      if (!reply.successful) {
        self._state = UNCONNECTED;
        setTimeout(function () { self.handshake(callback); }, self._dispatcher.retry * 1000);
        return;
      }
      self._state = CONNECTED;
      self._dispatcher.clientId = reply.clientId;
      self._dispatcher.selectTransport(reply.supportedConnectionTypes || []);
      // After a re-handshake the server knows none of our subscriptions: make them again.
      self._channels.names().forEach(function (name) { self.subscribe(name, true); });
      if (callback) Promise.resolve().then(callback);
    });
  };

  // connect keeps one /meta/connect outstanding while connected; the server holds it until
  // it has messages or its timeout passes. Actions given as callback run once connected.
  Client.prototype.connect = function (callback) {
    if (this._advice.reconnect === 'none' || this._state === DISCONNECTED) return;
    var self = this;
    if (this._state === UNCONNECTED) {
      return this.handshake(function () { self.connect(callback); });
    }
    if (callback) this._deferred.push(callback);
    if (this._state !== CONNECTED) return;
    var actions = this._deferred;
    this._deferred = [];
    if (!this._connectRequest) {
      this._connectRequest = true;
      this._send({
        channel: '/meta/connect',
        clientId: this._dispatcher.clientId,
        connectionType: this._dispatcher.connectionType
      }, {}, function () { self._cycleConnection(); });
    }
    if (actions.length) Promise.resolve().then(function () { actions.forEach(function (a) { a(); }); });
  };

  Client.prototype.disconnect = function () {
    var result = new Deferred(), self = this;
    if (this._state !== CONNECTED) {
      result.setDeferredStatus('succeeded');
      return result;
    }
    this._state = DISCONNECTED;
    this._send({ channel: '/meta/disconnect', clientId: this._dispatcher.clientId }, {}, function (reply) {
      // Closed either way: a refusal (e.g. 401, the server forgot us) leaves nothing to keep.
      self._dispatcher.close();
      if (reply.successful) result.setDeferredStatus('succeeded');
      else result.setDeferredStatus('failed', FayeError.parse(reply.error));
    });
    this._channels = new Channels();
    return result;
  };

  // subscribe listens on a channel (or pattern); an array subscribes to each. force (true as
  // the callback) re-sends the subscribe for a channel already listened to.
  Client.prototype.subscribe = function (channel, callback, context) {
    if (Array.isArray(channel)) {
      return channel.map(function (c) { return this.subscribe(c, callback, context); }, this);
    }
    var force = callback === true;
    var subscription = new Subscription(this, channel, force ? null : callback, context);
    var self = this;
    if (this._channels.has(channel) && !force) {
      this._channels.add(channel, subscription);
      subscription.setDeferredStatus('succeeded');
      return subscription;
    }
    this.connect(function () {
      if (!force) self._channels.add(channel, subscription);
      self._send({
        channel: '/meta/subscribe',
        clientId: self._dispatcher.clientId,
        subscription: channel
      }, {}, function (reply) {
        if (reply.successful) return subscription.setDeferredStatus('succeeded');
        subscription.setDeferredStatus('failed', FayeError.parse(reply.error));
        self._channels.remove(channel, subscription);
      });
    });
    return subscription;
  };

  // unsubscribe drops one subscription (all of the channel's without one) and tells the
  // server when none is left.
  Client.prototype.unsubscribe = function (channel, subscription) {
    if (Array.isArray(channel)) {
      return channel.map(function (c) { return this.unsubscribe(c, subscription); }, this);
    }
    if (!this._channels.remove(channel, subscription)) return;
    var self = this;
    this.connect(function () {
      self._send({ channel: '/meta/unsubscribe', clientId: self._dispatcher.clientId, subscription: channel }, {});
    });
  };

  // publish sends data to a channel; the result settles with the server's acknowledgement,
  // failing with a Faye.Error when the server refuses it.
  Client.prototype.publish = function (channel, data, options) {
    options = options || {};
    validateOptions(options, ['attempts', 'deadline']);
    var publication = new Deferred(), self = this;
    this.connect(function () {
      self._send({ channel: channel, data: data, clientId: self._dispatcher.clientId }, options, function (reply) {
        if (reply.successful) publication.setDeferredStatus('succeeded');
        else publication.setDeferredStatus('failed', FayeError.parse(reply.error));
      });
    });
    return publication;
  };

  Client.prototype._send = function (message, options, callback) {
    message.id = (++this._messageId).toString(36);
    // A held connect may take the server's whole timeout; anything else gets as long.
    var timeout = this._advice.timeout ? 1.2 * this._advice.timeout / 1000 : 1.2 * this._dispatcher.retry;
    var self = this;
    this._pipe('outgoing', message, function (message) {
      if (callback) self._callbacks.set(message.id, callback);
      self._dispatcher.send(message, timeout, options);
    });
  };

  Client.prototype._receiveMessage = function (message) {
    var callback;
    if (message.successful !== undefined) {
      callback = this._callbacks.get(message.id);
      this._callbacks.delete(message.id);
    }
    var self = this;
    this._pipe('incoming', message, function (message) {
      if (message.advice) self._handleAdvice(message.advice);
      if (typeof message.channel === 'string' && message.data !== undefined) self._channels.deliver(message);
      if (callback) callback(message);
    });
  };

  Client.prototype._handleAdvice = function (advice) {
    Object.assign(this._advice, advice);
    if (this._advice.reconnect === 'handshake' && this._state !== DISCONNECTED) {
      // The server forgot us (e.g. it restarted): handshake again, then resubscribe.
      this._state = UNCONNECTED;
      this._dispatcher.clientId = null;
      this._cycleConnection();
    }
  };

  Client.prototype._cycleConnection = function () {
    this._connectRequest = false;
    var self = this;
    setTimeout(function () { self.connect(); }, this._advice.interval);
  };

  global.Faye = {
    // The Faye release whose client API this one follows.
    VERSION: '1.4.3',
    Client: Client,
    Error: FayeError,
    Subscription: Subscription
  };
})(typeof window !== 'undefined' ? window : this);
