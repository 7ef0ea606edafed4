// The official Faye browser bundle, served by the chat server at /faye/client.js, in headless
// Chromium, on a shop page of another origin: the handshake crosses origins over JSONP
// (callback-polling), then the client upgrades to websocket — or, with websocket disabled,
// cross-origin long-polling carries everything.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { api, close, fayeClient, freePort, launchBrowser, repoRoot, startServer, subscribe, token } from './lib.mjs';

const artifacts = path.join(repoRoot, 'e2e', 'artifacts');

// The widget as a shop embeds it: the stock Faye client plus one extension for the token.
const widgetPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>A shop page</h1><ul id="log"></ul>
<script>
window.events = [];
function log(e) {
  window.events.push(e);
  const li = document.createElement('li');
  li.textContent = JSON.stringify(e);
  document.getElementById('log').appendChild(li);
}
window.startWidget = async function (server, token, visitorId, disableWebsocket) {
  const client = new Faye.Client(server + '/faye');
  if (disableWebsocket) client.disable('websocket');
  client.addExtension({ outgoing(m, cb) { m.ext = Object.assign({}, m.ext, { token }); cb(m); } });
  window.client = client;
  await client.subscribe('/service/' + visitorId, (msg) => {
    log({ on: 'service', entity: msg.entity });
    if (msg.entity === 'conversation' && !window.conversation) {
      window.conversation = msg.conversation;
      client.subscribe('/conversations/' + msg.conversation.id, (m) => log({ on: 'conversation', content: m.message.content, sender: m.message.sender.type }))
        .then(() => log({ subscribed: 'conversation' }));
    }
  });
  const res = await fetch(server + '/chat/service/' + visitorId, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ sender: { type: 'visitor', id: visitorId } }),
  });
  log({ opened: res.status });
};
window.say = async function (server, token, content) {
  const res = await fetch(server + '/chat/conversation/' + window.conversation.id, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ content }),
  });
  return res.status;
};
</script></body></html>`;

describe('Faye browser bundle in Chromium', () => {
  let srv, page$, browser, pageServer, pageOrigin;

  before(async () => {
    const pagePort = await freePort();
    pageOrigin = `http://127.0.0.1:${pagePort}`;
    srv = await startServer({ env: { CHAT_HTTP_ALLOWED_ORIGINS: pageOrigin } });
    pageServer = http.createServer((req, res) => {
      const html = widgetPage.replace('<ul id="log">', `<script src="${srv.base}/faye/client.js"></script><ul id="log">`);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    await new Promise((r) => pageServer.listen(pagePort, '127.0.0.1', r));
    browser = await launchBrowser();
    fs.mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    pageServer?.close();
    await srv?.stop();
  });

  for (const disableWebsocket of [false, true]) {
    const mode = disableWebsocket ? 'cross-origin-long-polling' : 'websocket';
    test(`widget on another origin chats over ${mode}`, async () => {
      const org = `browser-${mode}`;
      const visitorId = 'v1';
      const vTok = token('visitor', org, visitorId);
      const mTok = token('manager', org, 'm1');
      const manager = fayeClient(srv.base, mTok);
      const context = await browser.newContext();
      const page = await context.newPage();
      const jsonp = [];
      page.on('request', (req) => { if (req.url().includes('jsonp=')) jsonp.push(req.url()); });
      try {
        await subscribe(manager, '/service/*');
        await page.goto(`${pageOrigin}/widget.html`);
        await page.waitForFunction(() => typeof Faye !== 'undefined');
        await page.evaluate(([s, t, v, d]) => window.startWidget(s, t, v, d), [srv.base, vTok, visitorId, disableWebsocket]);
        await page.waitForFunction(() => window.events.some((e) => e.subscribed === 'conversation'), null, { timeout: 15000 });
        const events = await page.evaluate(() => window.events);
        assert.ok(events.some((e) => e.opened === 201), JSON.stringify(events));
        assert.ok(events.some((e) => e.on === 'service' && e.entity === 'conversation'));

        // Visitor writes from the page; the manager answers through the API.
        assert.equal(await page.evaluate(([s, t]) => window.say(s, t, 'Hi from the page'), [srv.base, vTok]), 201);
        const conv = await page.evaluate(() => window.conversation);
        await api(srv.base, `/chat/conversation/${conv.id}`, mTok, { content: 'Hello from the manager' });
        await page.waitForFunction(() => window.events.filter((e) => e.on === 'conversation').length >= 2, null, { timeout: 15000 });
        const said = (await page.evaluate(() => window.events)).filter((e) => e.on === 'conversation').map((e) => `${e.sender}: ${e.content}`);
        assert.deepEqual(said, ['visitor: Hi from the page', 'manager: Hello from the manager']);

        const transport = await page.evaluate(() => window.client._dispatcher._transport.connectionType);
        assert.equal(transport, mode);
        assert.ok(jsonp.length > 0, 'the cross-origin handshake did not use JSONP (callback-polling)');
        await page.screenshot({ path: path.join(artifacts, `widget-${mode}.png`) });
      } finally {
        await context.close();
        await close(manager);
      }
    });
  }
});
