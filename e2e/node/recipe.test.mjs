// The README's reconnect recipe, with the official Faye client: the widget's network goes away
// long enough for the server to end its session (its queue overflows), messages are posted
// meanwhile; when the network returns, the client re-handshakes and re-subscribes by itself,
// and the recipe's catch-up brings exactly the missed messages, once, in order.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { api, close, fayeClient, freePort, startServer, subscribe, token } from './lib.mjs';

// A loopback TCP proxy that can cut every connection and refuse new ones, like a lost network.
async function proxy(target) {
  const [host, port] = target.replace('http://', '').split(':');
  const sockets = new Set();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) return client.destroy();
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  const listenPort = await freePort();
  await new Promise((r) => server.listen(listenPort, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${listenPort}`,
    cut() { up = false; for (const s of sockets) s.destroy(); },
    restore() { up = true; },
    close() { server.close(); for (const s of sockets) s.destroy(); },
  };
}

describe('reconnect recipe', () => {
  let srv, net$;
  before(async () => {
    srv = await startServer({ env: { CHAT_LIMITS_QUEUE_PER_CLIENT: '4' } });
    net$ = await proxy(srv.base);
  });
  after(async () => { net$.close(); await srv.stop(); });

  for (const websocket of [true, false]) {
    test(`no message is missed across a network loss (${websocket ? 'websocket' : 'long-polling'})`, async () => {
      const org = `recipe-${websocket}`;
      const vTok = token('visitor', org, 'v1');
      const mTok = token('manager', org, 'm1');
      const conv = (await api(srv.base, '/chat/service/v1', mTok)).body.conversation;
      const widget = fayeClient(net$.base, vTok, { websocket });

      // The recipe, as the README gives it.
      const shown = [];
      const seen = new Set();
      let lastSeen = null;
      const show = (m) => { if (!seen.has(m.id)) { seen.add(m.id); shown.push(m.content); lastSeen = m.id; } };
      let handshakes = 0;
      let catchUps = 0;
      const catchUp = async () => {
        if (!lastSeen) return;
        catchUps++;
        const res = await api(net$.base, `/chat/conversation/${conv.id}/messages`, vTok, { after_id: lastSeen });
        for (const m of res.body.messages) show(m);
      };
      widget.on('transport:up', catchUp);
      widget.addExtension({ incoming(message, callback) {
        if (message.channel === '/meta/handshake' && message.successful && handshakes++ > 0) catchUp();
        callback(message);
      } });
      try {
        const live = await subscribe(widget, `/conversations/${conv.id}`);
        await api(srv.base, `/chat/conversation/${conv.id}`, mTok, { content: 'm0' });
        show((await live.next()).message);

        net$.cut();
        await widget.events.next(15000, 'transport:down');
        for (let i = 1; i <= 10; i++) {   // more than the queue of 4: the server ends the session
          assert.equal((await api(srv.base, `/chat/conversation/${conv.id}`, mTok, { content: `m${i}` })).status, 201);
        }
        net$.restore();
        const want = Array.from({ length: 11 }, (_, i) => `m${i}`);
        for (let i = 0; i < 200 && shown.length < want.length; i++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(shown, want);
        assert.ok(catchUps > 0, 'the recipe never ran');
        // Live delivery works again after the re-subscription.
        await api(srv.base, `/chat/conversation/${conv.id}`, mTok, { content: 'after' });
        for (let i = 0; i < 100 && !shown.includes('after'); i++) {
          const m = await live.next(200).catch(() => undefined);
          if (m) show(m.message);
        }
        assert.equal(shown.at(-1), 'after');
      } finally {
        await close(widget);
      }
    });
  }
});
