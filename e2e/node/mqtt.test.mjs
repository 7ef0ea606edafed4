// A native app speaking MQTT 5 (npm mqtt) as the on-duty manager, and the widget on the
// official Faye client: the whole chat both ways, the app posting by command topic — over
// MQTT's own port, and over websocket on the HTTP port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { api, close, fayeClient, Inbox, publish, startServer, subscribe, token } from './lib.mjs';

describe('native app (MQTT 5) and widget (Faye)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv.stop(); });

  for (const over of ['tcp', 'websocket']) {
    test(`chat both ways, app over ${over}`, async () => {
      const org = `app-${over}`;
      const mTok = token('manager', org, 'm1');
      const vTok = token('visitor', org, 'v1');
      const url = over === 'tcp' ? srv.mqttURL : `${srv.base.replace('http', 'ws')}/mqtt`;
      const app = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `app-${over}`, username: 'm1', password: mTok, reconnectPeriod: 0 });
      const inbox = {};
      app.on('message', (topic, payload) => {
        (inbox[topic] ??= new Inbox()).push(JSON.parse(payload.toString()));
      });
      const on = (topic) => (inbox[topic] ??= new Inbox());
      const widget = fayeClient(srv.base, vTok);
      try {
        const granted = await app.subscribeAsync([`orgs/${org}/service/+`, `orgs/${org}/replies/manager/m1`], { qos: 1 });
        assert.deepEqual(granted.map((g) => g.qos), [1, 1]);
        const service = await subscribe(widget, '/service/v1');

        const open = await api(srv.base, '/chat/service/v1', vTok);
        assert.equal(open.status, 201);
        const conv = open.body.conversation;
        assert.equal(conv.manager_id, 'm1');
        assert.equal((await on(`orgs/${org}/service/v1`).next()).conversation.id, conv.id);
        assert.equal((await service.next()).conversation.id, conv.id);

        const topic = `orgs/${org}/conversations/${conv.id}`;
        await app.subscribeAsync([topic, `${topic}/typing`], { qos: 1 });
        const widgetConv = await subscribe(widget, `/conversations/${conv.id}`);

        // App → widget, by command topic; the PUBACK comes once the message is stored.
        await app.publishAsync(`${topic}/post`, JSON.stringify({ content: 'Hello from the app', client_message_id: 'app-1' }), { qos: 1 });
        const answer = await on(`orgs/${org}/replies/manager/m1`).next();
        assert.equal(answer.ok, true);
        assert.equal(answer.message.content, 'Hello from the app');
        assert.equal((await widgetConv.next()).message.content, 'Hello from the app');
        assert.equal((await on(topic).next()).message.id, answer.message.id);

        // Widget → app: a message through the API, typing through Faye.
        assert.equal((await api(srv.base, `/chat/conversation/${conv.id}`, vTok, { content: 'Hi app' })).status, 201);
        assert.equal((await on(topic).next()).message.content, 'Hi app');
        await publish(widget, `/conversations/${conv.id}/typing`, { typing: true });
        assert.deepEqual(await on(`${topic}/typing`).next(), { typing: true });

        // The app cannot overstep: a wildcard over the organisation is refused.
        await assert.rejects(app.subscribeAsync(`orgs/${org}/#`, { qos: 1 }), /Not authorized/);
      } finally {
        await close(widget);
        await app.endAsync();
      }
    });
  }
});
