// The official Faye client (npm faye 1.4.3, Node) against the real server: the chat
// initialisation procedure of the original product over websocket and long-polling, the
// attacks a hostile widget would try, and a server restart under a subscribed client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, close, fayeClient, freePort, publish, refused, startServer, subscribe, token, transportOf } from './lib.mjs';

describe('chat over Faye', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv.stop(); });

  for (const transport of ['websocket', 'long-polling']) {
    test(`chat initialisation procedure over ${transport}`, async () => {
      const org = `shop-${transport}`;
      const visitorId = 'v1';
      const vTok = token('visitor', org, visitorId);
      const mTok = token('manager', org, 'm1');
      const websocket = transport === 'websocket';
      const manager = fayeClient(srv.base, mTok, { websocket });
      const widget = fayeClient(srv.base, vTok, { websocket });
      try {
        // The on-duty manager listens to every visitor service channel of its organisation.
        const managerService = await subscribe(manager, '/service/*');
        // The widget subscribes to its service channel as soon as it has its visitor id.
        const widgetService = await subscribe(widget, `/service/${visitorId}`);
        assert.equal(transportOf(widget), transport);
        assert.equal(transportOf(manager), transport);

        // The visitor opens the chat through the API.
        const open = await api(srv.base, `/chat/service/${visitorId}`, vTok, { sender: { type: 'visitor', id: visitorId } });
        assert.equal(open.status, 201, JSON.stringify(open.body));
        const conv = open.body.conversation;
        assert.equal(conv.manager_id, 'm1');

        // Both sides get the conversation on the service channel and join its channel.
        const seenByWidget = await widgetService.next();
        assert.equal(seenByWidget.entity, 'conversation');
        assert.equal(seenByWidget.conversation.id, conv.id);
        const seenByManager = await managerService.next();
        assert.equal(seenByManager.conversation.id, conv.id);
        const widgetConv = await subscribe(widget, `/conversations/${conv.id}`);
        const managerConv = await subscribe(manager, `/conversations/${conv.id}`);
        const receipts = await subscribe(manager, `/conversations/${conv.id}/receipts`);
        const typing = await subscribe(manager, `/conversations/${conv.id}/typing`);

        // Messages both ways.
        const hello = await api(srv.base, `/chat/conversation/${conv.id}`, vTok, { content: 'Hello, is this in stock?', client_message_id: 'w-1' });
        assert.equal(hello.status, 201);
        for (const inbox of [widgetConv, managerConv]) {
          const m = await inbox.next();
          assert.equal(m.entity, 'message');
          assert.equal(m.message.content, 'Hello, is this in stock?');
          assert.equal(m.message.sender.type, 'visitor');
        }
        const answer = await api(srv.base, `/chat/conversation/${conv.id}`, mTok, { content: 'Yes, two left.' });
        assert.equal(answer.status, 201);
        for (const inbox of [widgetConv, managerConv]) {
          assert.equal((await inbox.next()).message.content, 'Yes, two left.');
        }

        // Typing goes from the widget straight through Faye.
        await publish(widget, `/conversations/${conv.id}/typing`, { typing: true });
        assert.deepEqual(await typing.next(), { typing: true });

        // History and read receipt.
        const history = await api(srv.base, `/chat/conversation/${conv.id}/messages`, vTok, { count: 10 });
        assert.equal(history.status, 200);
        assert.deepEqual(history.body.messages.map((m) => m.content), ['Yes, two left.', 'Hello, is this in stock?']);
        const read = await api(srv.base, `/chat/conversation/${conv.id}/message/${hello.body.message.id}/mark_read`, mTok);
        assert.equal(read.status, 200);
        assert.equal((await receipts.next()).message.read, true);
      } finally {
        await close(manager, widget);
      }
    });
  }

  test('a visitor cannot reach what is not its own', async () => {
    const org = 'shop-attack';
    const vTok = token('visitor', org, 'v1');
    const mTok = token('manager', org, 'm1');
    const manager = fayeClient(srv.base, mTok);
    const widget = fayeClient(srv.base, vTok);
    const otherOrgManager = fayeClient(srv.base, token('manager', 'other-org', 'm1'));
    try {
      await subscribe(manager, '/service/*');
      const otherService = await subscribe(otherOrgManager, '/service/*');
      const own = await subscribe(widget, '/service/v1');
      const conv = (await api(srv.base, '/chat/service/v1', vTok)).body.conversation;
      await own.next();
      const v2conv = (await api(srv.base, '/chat/service/v2', token('visitor', org, 'v2'))).body.conversation;

      for (const channel of ['/service/v2', '/service/*', '/service/**', '/**', '/*', `/conversations/${v2conv.id}`, '/conversations/*', '/notifications/v2']) {
        const err = await refused(widget, channel);
        assert.equal(err.code, 403, `${channel}: ${err.message}`);
      }
      const invalid = await refused(widget, '/bad channel');
      assert.equal(invalid.code, 405);

      // A raw publish into the conversation is refused and creates no message.
      await assert.rejects(publish(widget, `/conversations/${conv.id}`, { entity: 'message', message: { content: 'forged' } }), (err) => err.code === 403);
      const history = await api(srv.base, `/chat/conversation/${conv.id}/messages`, mTok, {});
      assert.deepEqual(history.body.messages, []);

      // The publisher's ext (its token) never reaches a subscriber.
      const typing = await subscribe(manager, `/conversations/${conv.id}/typing`);
      await publish(widget, `/conversations/${conv.id}/typing`, { typing: true });
      await typing.next();
      let wire;
      do wire = await manager.raw.next(5000, 'the raw typing message');
      while (wire.channel !== `/conversations/${conv.id}/typing`);
      assert.equal(wire.ext, undefined);
      assert.equal(wire.clientId, undefined);

      // The other organisation's manager saw none of this.
      await otherService.none(300);
    } finally {
      await close(manager, widget, otherOrgManager);
    }
  });

  test('a bad token is refused at handshake', async () => {
    const client = fayeClient(srv.base, token('visitor', 'shop', 'v1', 3600, 'another-secret-another-secret-xxxx'), { websocket: false });
    try {
      client.subscribe('/service/v1', () => {}); // starts the handshake
      const reply = await client.meta.next(5000, 'the handshake reply');
      assert.equal(reply.channel, '/meta/handshake');
      assert.equal(reply.successful, false);
      assert.equal(reply.error, '401::Authentication failed');
      assert.equal(reply.advice.reconnect, 'none'); // retrying the same token cannot succeed
    } finally {
      await close(client);
    }
  });
});

describe('restart', () => {
  test('a subscribed client re-handshakes, re-subscribes and receives what is published after a restart', async () => {
    const httpPort = await freePort();
    let srv = await startServer({ httpPort });
    const org = 'shop-restart';
    const vTok = token('visitor', org, 'v1');
    const sTok = token('service', org, 'backoffice');
    const widget = fayeClient(srv.base, vTok);
    try {
      const notes = await subscribe(widget, '/notifications/v1');
      assert.equal((await api(srv.base, '/chat/notifications/v1', sTok, { notification: { n: 1 } })).status, 201);
      assert.deepEqual((await notes.next()).notification, { n: 1 });

      await srv.stop();
      await widget.events.next(15000, 'transport:down');
      srv = await startServer({ httpPort, dataDir: srv.dataDir });
      await widget.events.next(30000, 'transport:up');
      // The client re-subscribes on its own after its new handshake; publish until it is back.
      let got;
      for (let i = 2; !got && i < 60; i++) {
        await api(srv.base, '/chat/notifications/v1', sTok, { notification: { n: i } });
        got = await notes.next(500).catch(() => undefined);
      }
      assert.ok(got, 'no notification after the restart');
    } finally {
      await close(widget);
      await srv.stop();
    }
  });
});
