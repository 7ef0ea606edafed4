// The server's own browser client (faye/client/client.js), in headless Chromium, against the
// chat server and against the reference Faye server (npm faye 1.4.3), through the same tests:
// what holds for one holds for the other, so the client is interchangeable with the official
// bundle. On the chat server the page loads it from /faye/client.js as a widget does (no
// bundle configured); the reference serves the official bundle there, so the page loads ours
// from the page's own server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { close, fayeClient, freePort, launchBrowser, publish, repoRoot, startServer, subscribe, token } from './lib.mjs';

const OUR_CLIENT = fs.readFileSync(path.join(repoRoot, 'faye', 'client', 'client.js'), 'utf8');
const ORG = 'clientjs';

// The page: a harness around the client that records what it sees for the test to read.
const harness = `
window.T = { events: [], out: [], meta: [], inbox: [], clients: [] };
T.start = function (endpoint, token, disable) {
  var client = new Faye.Client(endpoint, { retry: 0.5, timeout: 20 });
  disable.forEach(function (f) { client.disable(f); });
  // A header both servers allow across origins; the HTTP transports must carry it.
  client.setHeader('Authorization', 'Bearer set-header');
  // Extensions run in order and may answer later: the first adds the token asynchronously, the
  // second must see it.
  client.addExtension({ outgoing: function (m, cb) {
    setTimeout(function () { if (token) m.ext = Object.assign({}, m.ext, { token: token }); cb(m); }, 1);
  } });
  client.addExtension({
    outgoing: function (m, cb) { T.out.push(JSON.parse(JSON.stringify(m))); cb(m); },
    incoming: function (m, cb) {
      if (m.channel.indexOf('/meta/') === 0) T.meta.push(m);
      if (m.data !== undefined) m.data.seen = true;
      cb(m);
    },
  });
  client.on('transport:up', function () { T.events.push('up'); });
  client.on('transport:down', function () { T.events.push('down'); });
  T.client = client;
  T.clients.push(client);
};
// stop disconnects every client, as a page does when it unloads.
T.stop = function () {
  return Promise.all(T.clients.map(function (c) {
    return Promise.race([c.disconnect(), new Promise(function (r) { setTimeout(r, 3000); })]).catch(function () {});
  }));
};
T.subscribe = function (channel, tag) {
  var sub = T.client.subscribe(channel, function (data) { T.inbox.push({ tag: tag || channel, data: data }); });
  T[tag || channel] = sub;
  return sub.then(function () { return 'ok'; }, function (e) { return { code: e.code, params: e.params, message: e.message }; });
};
T.publish = function (channel, data) {
  return T.client.publish(channel, data).then(function () { return 'ok'; },
    function (e) { return { code: e.code, params: e.params, message: e.message, text: String(e) }; });
};
T.received = function (tag) { return T.inbox.filter(function (m) { return m.tag === tag; }).map(function (m) { return m.data; }); };
T.transport = function () { return T.client._dispatcher.connectionType; };
`;

function pageHTML(clientSrc) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>client.js</title></head><body>
<script src="${clientSrc}"></script><script>${harness}</script></body></html>`;
}

// Seconds both servers hold a /meta/connect. Short, because when a websocket opens only after
// the handshake, the client (like Faye's) moves to it once the connect held on long-polling
// returns.
const HOLD = 5;

// startReference runs the reference Faye server (faye-reference.mjs) on port (0: a free one).
async function startReference(port = 0) {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'e2e', 'node', 'faye-reference.mjs'), String(port), String(HOLD)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const listening = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('reference server did not start within 20s')), 20000);
    exited.then((code) => reject(new Error(`reference server exited with ${code}`)));
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /^listening (\d+)/.exec(line);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
  });
  return {
    base: `http://127.0.0.1:${listening}`,
    // Killed, not closed: a graceful close would wait for the browser's open connections.
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
  };
}

const portOf = (base) => Number(new URL(base).port);

// The two servers, each with what differs between them: how to start and restart it, what a
// client may do there and which refusals it gives.
const servers = [
  {
    name: 'chat server',
    async start(pageOrigin) {
      const env = { CHAT_HTTP_ALLOWED_ORIGINS: pageOrigin, CHAT_FAYE_CLIENT_JS_PATH: '', CHAT_FAYE_TIMEOUT: `${HOLD}s`, CHAT_FAYE_PING: '2s' };
      let srv = await startServer({ env });
      return {
        get base() { return srv.base; },
        clientSrc: () => `${srv.base}/faye/client.js`,
        servesClient: true,
        stop: () => srv.stop(),
        async restart(between) {
          await srv.stop();
          await between();
          srv = await startServer({ env, dataDir: srv.dataDir, httpPort: portOf(srv.base) });
        },
      };
    },
    // The page's token is a service of the organisation: it may use any channel of it.
    token: () => token('service', ORG, 'page'),
    // A visitor may not publish to another visitor's service channel, nor subscribe to it.
    refusals: {
      token: () => token('visitor', ORG, 'v1'),
      publish: { channel: '/service/v2', code: 403, params: ['/service/v2'], message: 'Forbidden channel' },
      subscribe: { channel: '/service/v2', code: 403 },
    },
    // Without the token extension every subscribe is refused: the extension is what works.
    requiresToken: true,
  },
  {
    name: 'reference Faye server',
    async start(pageOrigin) {
      let ref = await startReference();
      return {
        get base() { return ref.base; },
        clientSrc: () => `${pageOrigin}/client.js`,
        stop: () => ref.stop(),
        async restart(between) {
          await ref.stop();
          await between();
          ref = await startReference(portOf(ref.base));
        },
      };
    },
    token: () => token('service', ORG, 'page'), // ignored by stock Faye
    // Stock Faye has no ACL: it refuses publishing to a wildcard and subscribing to /service.
    refusals: {
      token: () => undefined,
      publish: { channel: '/room/*', code: 405, params: ['/room/*'], message: 'Invalid channel' },
      subscribe: { channel: '/service/v2', code: 403 },
    },
    requiresToken: false,
  },
];

// How the page reaches the server: same origin or another (the shop's), with some transports
// disabled, and what the client must end up using.
const modes = [
  { name: 'same-origin websocket', cross: false, disable: [], transport: 'websocket', handshake: 'POST' },
  { name: 'same-origin long-polling', cross: false, disable: ['websocket'], transport: 'long-polling', handshake: 'POST' },
  { name: 'cross-origin websocket', cross: true, disable: [], transport: 'websocket', handshake: 'JSONP' },
  { name: 'cross-origin CORS long-polling', cross: true, disable: ['websocket'], transport: 'cross-origin-long-polling', handshake: 'JSONP' },
  {
    name: 'cross-origin callback-polling', cross: true, disable: ['websocket', 'cross-origin-long-polling'],
    transport: 'callback-polling', handshake: 'JSONP',
  },
];

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); });

// What the page's client sent and got, for failure messages.
const trace = (page) => page.evaluate(() => JSON.stringify({ events: T.events, out: T.out, meta: T.meta }))
  .catch((err) => `(no trace: ${err.message})`);

// waitFor waits for fn to be true in the page, and fails with the client's trace.
const waitFor = (page, fn, arg, what) => page.waitForFunction(fn, arg, { timeout: 20000 }).catch(async (err) => {
  throw new Error(`${what}: ${err.message}\n${await trace(page)}`);
});

// run evaluates fn in the page, failing with the client's trace rather than waiting forever on a
// promise that never settles.
async function run(page, fn, arg) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(async () => reject(new Error(`page did not answer within 20s\n${await trace(page)}`)), 20000);
  });
  try {
    return await Promise.race([page.evaluate(fn, arg), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

for (const server of servers) {
  describe(`our client.js against the ${server.name}`, () => {
    let srv, pageServer, pageOrigin;

    before(async () => {
      const pagePort = await freePort();
      pageOrigin = `http://127.0.0.1:${pagePort}`;
      srv = await server.start(pageOrigin);
      // The shop's site: the page, and our client for servers that do not serve it.
      pageServer = http.createServer((req, res) => {
        if (req.url === '/client.js') {
          res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
          return res.end(OUR_CLIENT);
        }
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(pageHTML(srv.clientSrc()));
      });
      await new Promise((r) => pageServer.listen(pagePort, '127.0.0.1', r));
    });

    after(async () => {
      pageServer?.close();
      await srv?.stop();
    });

    // openPage opens the harness on the server's origin or on the shop's, and records how the
    // client talks.
    async function openPage(mode) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const wire = { jsonp: [], posts: [], authorization: [], sockets: [] };
      page.on('request', (req) => {
        const url = req.url();
        if (!url.startsWith(srv.base + '/faye')) return;
        if (url.includes('jsonp=')) wire.jsonp.push(decodeURIComponent(url));
        else if (req.method() === 'POST') {
          wire.posts.push(req.postData() || '');
          wire.authorization.push(req.headers().authorization);
        }
      });
      page.on('websocket', (ws) => wire.sockets.push(ws.url()));
      page.on('pageerror', (err) => wire.pageError = err);
      if (mode.cross) {
        await page.goto(`${pageOrigin}/widget.html`);
      } else {
        // The servers have no page of their own: any document of their origin will do (a 404),
        // with the scripts added to it. (A page faked with a route would count as public to
        // Chromium, which then refuses it the loopback websocket.)
        await page.goto(`${srv.base}/widget.html`);
        await page.addScriptTag(srv.servesClient ? { url: srv.clientSrc() } : { content: OUR_CLIENT });
        await page.addScriptTag({ content: harness });
      }
      await waitFor(page, () => typeof Faye !== 'undefined' && typeof T !== 'undefined', null, 'client.js did not load');
      return { context, page, wire };
    }

    // closePage disconnects the page's clients before closing it: the reference server (Faye
    // 1.4.3's NodeAdapter, with the official bundle just the same) crashes with
    // ERR_HTTP_HEADERS_SENT some time after a page goes away during a held callback-polling
    // connect.
    async function closePage({ page, context }) {
      await run(page, () => T.stop()).catch(() => {});
      await context.close();
    }

    for (const mode of modes) {
      test(`${mode.name}: subscribe, publish, receive, extensions`, async () => {
        const opened = await openPage(mode);
        const { page, wire } = opened;
        const tok = server.token();
        const node = fayeClient(srv.base, tok);
        try {
          const channel = `/room/${mode.transport}`;
          await run(page, ([e, t, d]) => T.start(e, t, d), [`${srv.base}/faye`, tok, mode.disable]);
          assert.equal(await run(page, (c) => T.subscribe(c), channel), 'ok');
          // The client moves to a websocket once one is open, which may be after the subscribe.
          await waitFor(page, (t) => T.transport() === t && T.out.some((m) => m.channel === '/meta/connect' && m.connectionType === t),
            mode.transport, `transport is not ${mode.transport}`);

          // The page's own publish is acknowledged and comes back through its subscription;
          // the official Node client's publish reaches it too.
          assert.equal(await run(page, (c) => T.publish(c, { text: 'from the page' }), channel), 'ok');
          await publish(node, channel, { text: 'from node' });
          await waitFor(page, (c) => T.received(c).length >= 2, channel, 'messages not received');
          assert.deepEqual(await run(page, (c) => T.received(c), channel), [
            { text: 'from the page', seen: true }, { text: 'from node', seen: true },
          ]);

          // Both extensions saw every outgoing message in order: the second with the token the
          // first added asynchronously; ids count up like Faye's.
          const out = await run(page, () => T.out);
          assert.deepEqual(out.slice(0, 1).map((m) => [m.channel, m.version, m.id]), [['/meta/handshake', '1.0', '1']]);
          assert.ok(out.every((m) => m.ext && m.ext.token === tok || !server.requiresToken), JSON.stringify(out));
          assert.ok(out.some((m) => m.channel === '/meta/subscribe' && m.subscription === channel));

          // The handshake went over JSONP across origins and over a POST on the same origin.
          const jsonpHandshake = wire.jsonp.some((u) => u.includes('"channel":"/meta/handshake"'));
          const postHandshake = wire.posts.some((b) => b.includes('/meta/handshake'));
          assert.equal(jsonpHandshake, mode.handshake === 'JSONP', JSON.stringify(wire));
          assert.equal(postHandshake, mode.handshake === 'POST', JSON.stringify(wire));
          assert.ok(wire.authorization.every((h) => h === 'Bearer set-header'), JSON.stringify(wire.authorization));
          if (mode.transport === 'websocket') assert.ok(wire.sockets.length > 0, 'no websocket');
          if (mode.transport === 'cross-origin-long-polling') {
            assert.ok(wire.posts.some((b) => b.startsWith('message=')), 'no CORS post');
          }
          if (mode.transport === 'callback-polling') {
            assert.equal(wire.posts.length, 0, 'callback-polling posted');
            assert.ok(wire.jsonp.some((u) => u.includes('/meta/connect')), 'no JSONP connect');
          }
          assert.deepEqual(await run(page, () => T.events), ['up']);
          assert.equal(wire.pageError, undefined);
        } finally {
          await closePage(opened);
          await close(node);
        }
      });
    }

    test('publish and subscribe reject with Faye errors; cancel stops delivery', async () => {
      const opened = await openPage(modes[2]);
      const { page } = opened;
      const node = fayeClient(srv.base, server.token());
      try {
        const { refusals } = server;
        await run(page, ([e, t]) => T.start(e, t, []), [`${srv.base}/faye`, refusals.token()]);
        const err = await run(page, (c) => T.publish(c, { text: 'no' }), refusals.publish.channel);
        assert.deepEqual(err, {
          code: refusals.publish.code, params: refusals.publish.params, message: refusals.publish.message,
          text: `${refusals.publish.code}:${refusals.publish.params.join(',')}:${refusals.publish.message}`,
        });
        const subErr = await run(page, (c) => T.subscribe(c), refusals.subscribe.channel);
        assert.equal(subErr.code, refusals.subscribe.code, JSON.stringify(subErr));

        // Two subscriptions to one channel: cancelling one sends no unsubscribe and the other
        // keeps receiving; cancelling the last one unsubscribes.
        // Not checked: the chat server may close the socket before the disconnect's reply is
        // written, and the resent disconnect then meets "401 Unknown client".
        await run(page, () => T.client.disconnect().catch(() => {}));
        await run(page, ([e, t]) => T.start(e, t, []), [`${srv.base}/faye`, server.token()]);
        assert.equal(await run(page, () => T.subscribe('/room/cancel', 'a')), 'ok');
        assert.equal(await run(page, () => T.subscribe('/room/cancel', 'b')), 'ok');
        await run(page, () => T.a.cancel());
        await publish(node, '/room/cancel', { n: 1 });
        await waitFor(page, () => T.received('b').length === 1, null, 'b did not receive');
        assert.deepEqual(await run(page, () => T.received('a')), []);
        const unsubscribes = () => run(page, () => T.out.filter((m) => m.channel === '/meta/unsubscribe').length);
        assert.equal(await unsubscribes(), 0);
        await run(page, () => T.client.unsubscribe('/room/cancel', T.b));
        await waitFor(page, () => T.out.some((m) => m.channel === '/meta/unsubscribe' && m.subscription === '/room/cancel'), null, 'no unsubscribe');
      } finally {
        await closePage(opened);
        await close(node);
      }
    });

    test('Faye.Error parsing and option checks are Faye\'s', async () => {
      const opened = await openPage(modes[0]);
      const { page } = opened;
      try {
        // The cases of the reference client in the wire captures (13_client_duplicate_...).
        const parsed = await run(page, () => ['403::Authentication required', '401:abc:Unknown client',
          'custom failure text', '403:x:needs: colon', '405:/foo/*:Invalid channel']
          .map((s) => { const e = Faye.Error.parse(s); return [e.code, e.params, e.message]; }));
        assert.deepEqual(parsed, [
          [403, [''], 'Authentication required'], [401, ['abc'], 'Unknown client'],
          [null, [], 'custom failure text'], [null, [], '403:x:needs: colon'], [405, ['/foo/*'], 'Invalid channel'],
        ]);
        const thrown = await run(page, () => {
          try { new Faye.Client('/faye', { nonsense: 1 }); } catch (e) { return e.message; }
          return 'accepted';
        });
        assert.equal(thrown, 'Unrecognized option: nonsense');
      } finally {
        await closePage(opened);
      }
    });

    if (server.requiresToken) {
      test('a refused handshake with advice reconnect none is not retried', async () => {
        const opened = await openPage(modes[1]);
        const { page } = opened;
        try {
          await run(page, ([e]) => { T.start(e, 'not-a-token', ['websocket']); T.subscribe('/room/x'); }, [`${srv.base}/faye`]);
          await waitFor(page, () => T.meta.some((m) => m.channel === '/meta/handshake'), null, 'no handshake reply');
          const reply = await run(page, () => T.meta[0]);
          assert.equal(reply.successful, false);
          assert.equal(reply.advice && reply.advice.reconnect, 'none', JSON.stringify(reply));
          // Several retry intervals (0.5 s) later it has still not tried again.
          await new Promise((r) => setTimeout(r, 2000));
          assert.equal(await run(page, () => T.out.filter((m) => m.channel === '/meta/handshake').length), 1);
        } finally {
          await closePage(opened);
        }
      });


      test('without the token extension the server refuses the subscribe', async () => {
        const opened = await openPage(modes[0]);
        const { page } = opened;
        try {
          await run(page, ([e]) => T.start(e, undefined, []), [`${srv.base}/faye`]);
          const err = await run(page, () => T.subscribe('/room/x'));
          assert.equal(err.code, 403, JSON.stringify(err));
        } finally {
          await closePage(opened);
        }
      });
    }

    for (const mode of [modes[2], modes[3]]) {
      test(`${mode.name}: transport:down and up across a server restart, then resubscribed`, async () => {
        const opened = await openPage(mode);
        const { page } = opened;
        try {
          await run(page, ([e, t, d]) => T.start(e, t, d), [`${srv.base}/faye`, server.token(), mode.disable]);
          assert.equal(await run(page, () => T.subscribe('/room/restart')), 'ok');
          await srv.restart(() => waitFor(page, () => T.events.includes('down'), null, 'no transport:down'));
          await waitFor(page, () => T.events.filter((e) => e === 'up').length >= 2, null, 'no transport:up after the restart');
          // The server forgot the client: it handshook again and resubscribed by itself.
          await waitFor(page, () => T.meta.filter((m) => m.channel === '/meta/handshake' && m.successful).length >= 2 &&
            T.meta.filter((m) => m.channel === '/meta/subscribe' && m.successful && m.subscription === '/room/restart').length >= 2,
          null, 'no re-handshake and resubscribe');
          const node = fayeClient(srv.base, server.token());
          try {
            await publish(node, '/room/restart', { text: 'after the restart' });
            await waitFor(page, () => T.received('/room/restart').length > 0, null, 'nothing received after the restart');
          } finally {
            await close(node);
          }
          await waitFor(page, (t) => T.transport() === t, mode.transport, `transport is not back to ${mode.transport}`);
        } finally {
          await closePage(opened);
        }
      });
    }
  });
}
