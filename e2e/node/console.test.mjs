// The manager console (/console) and the visitor demo page (/demo), served by the binary on
// its embedded defaults, in two Chromium contexts: the newcomer's first minute. The links come
// from the server's log, as a newcomer would copy them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, close, fayeClient, launchBrowser, repoRoot, startServer, subscribe, token } from './lib.mjs';

const artifacts = path.join(repoRoot, 'e2e', 'artifacts');

// demoLinks reads the console and demo URLs the server logs at start.
async function demoLinks(srv) {
  const links = {};
  while (!links.console || !links.demo) {
    const entry = await srv.logs.next(10000, 'the demo links in the log');
    if (entry.msg.startsWith('demo:') && entry.url.includes('/console#token=')) links.console = entry.url;
    if (entry.msg.startsWith('demo:') && entry.url.includes('/demo#token=')) links.demo = entry.url;
  }
  return links;
}

// admin PUTs a setting of org with a service token of it.
async function admin(srv, org, route, body) {
  const res = await fetch(`${srv.base}/admin/orgs/${org}${route}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token('service', org, 'admin')}` },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

// watch records what would show a broken page: script errors, CSP refusals, failed requests.
function watch(page, name, problems) {
  page.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    // The offline answer (422 chat_offline) is expected; Chromium logs every failed status.
    if (msg.type() === 'error' && !msg.text().includes('status of 422')) problems.push(`${name}: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => {
    // A reload aborts what the page was still fetching (net::ERR_ABORTED): not a broken page.
    const error = req.failure()?.errorText || '';
    if (!req.url().includes('/faye') && !error.includes('ERR_ABORTED')) problems.push(`${name}: ${req.url()} ${error}`);
  });
}

describe('console and demo page', () => {
  let srv, browser;

  before(async () => {
    // Only what the tests of this suite always set (loopback ports, a temp data folder, a
    // secret): web.enabled, web.demo and the Faye client (the server's own client.js) keep their
    // embedded defaults, as a newcomer gets them.
    srv = await startServer({ env: { CHAT_FAYE_CLIENT_JS_PATH: '' } });
    browser = await launchBrowser();
    fs.mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  test('the console says so when the token is not accepted', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      // Signed with another key: the page cannot tell, the server refuses the handshake.
      const forged = token('manager', 'demo', 'anna', 3600, 'not-the-server-secret-not-the-server-secret');
      await page.goto(`${srv.base}/console#token=${forged}`);
      await page.getByRole('switch', { name: 'On duty' }).check();
      await page.locator('#duty-help', { hasText: 'Could not go on duty' }).waitFor({ timeout: 20000 });
      assert.equal(await page.getByRole('switch', { name: 'On duty' }).isChecked(), false);
      // A visitor token is refused at once.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Manager token').fill(token('visitor', 'demo', 'v1'));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#signin-error', { hasText: 'needs a manager token' }).waitFor();
    } finally {
      await ctx.close();
    }
  });

  test('a manager and a visitor chat between the console and the demo page', async (t) => {
    const links = await demoLinks(srv);
    assert.ok(links.console.startsWith(srv.base), links.console);
    const problems = [];
    const consoleCtx = await browser.newContext({ viewport: { width: 1100, height: 640 } });
    const demoCtx = await browser.newContext({ viewport: { width: 900, height: 640 } });
    const mgr = await consoleCtx.newPage();
    const vis = await demoCtx.newPage();
    try {
      watch(mgr, 'console', problems);
      watch(vis, 'demo', problems);
      const sockets = [];
      mgr.on('websocket', (ws) => sockets.push(ws.url()));

      // The console signs in from its link; the token leaves the address bar.
      await mgr.goto(links.console);
      await mgr.locator('#desk').waitFor();
      assert.equal(await mgr.locator('#who').textContent(), 'anna · demo');
      assert.ok(!mgr.url().includes('token'), mgr.url());

      // The visitor writes while nobody is on duty: the shop's offline message, text kept.
      await vis.goto(links.demo);
      await vis.getByRole('button', { name: 'Chat with us' }).click();
      await vis.getByLabel('Your message').fill('Hello, is the teapot in stock?');
      await vis.getByLabel('Your message').press('Enter');
      await vis.locator('#offline', { hasText: 'Nobody is on duty' }).waitFor();
      assert.equal(await vis.getByLabel('Your message').inputValue(), 'Hello, is the teapot in stock?');

      // The manager goes on duty (a live /service/* subscription).
      await mgr.getByRole('switch', { name: 'On duty' }).check();
      await mgr.locator('#duty-help', { hasText: 'On duty' }).waitFor();

      // The visitor sends again: the console lists the new conversation within a second. Both
      // moments are taken in the pages (one machine, one clock), free of the driver's delays.
      await mgr.evaluate(() => {
        new MutationObserver((_, obs) => { window.listedAt = Date.now(); obs.disconnect(); })
          .observe(document.getElementById('conversations'), { childList: true });
      });
      await vis.evaluate(() => {
        document.getElementById('composer').addEventListener('submit', () => { window.sentAt = Date.now(); }, { capture: true, once: true });
      });
      await vis.getByRole('button', { name: 'Send' }).click();
      await mgr.locator('#conversations li', { hasText: 'visitor1' }).waitFor();
      const shownAfter = await mgr.evaluate(() => window.listedAt) - await vis.evaluate(() => window.sentAt);
      await mgr.locator('.message.theirs', { hasText: 'Hello, is the teapot in stock?' }).waitFor();

      // The console shows the message, so it is read: the visitor sees ✓✓.
      await vis.locator('.message.mine .receipt.read').waitFor();

      // The manager types: the visitor sees it; then the reply arrives live.
      await mgr.getByLabel('Reply').pressSequentially('Yes, ');
      await vis.locator('.typing', { hasText: 'Shop assistant is typing' }).waitFor();
      await mgr.getByLabel('Reply').pressSequentially('two left. Shall I keep one for you?');
      await mgr.getByLabel('Reply').press('Enter');
      await vis.locator('.message.theirs', { hasText: 'Yes, two left. Shall I keep one for you?' }).waitFor();
      await vis.locator('.typing:empty').waitFor();
      await mgr.locator('.message.mine .receipt.read').waitFor();

      // And the other way round.
      await vis.getByLabel('Your message').pressSequentially('Yes please!');
      await mgr.locator('.typing', { hasText: 'Visitor is typing' }).waitFor();
      await vis.getByLabel('Your message').press('Enter');
      await mgr.locator('.message.theirs', { hasText: 'Yes please!' }).waitFor();
      await vis.getByLabel('Your message').pressSequentially('Blue, if you have it');
      await mgr.locator('.typing', { hasText: 'Visitor is typing' }).waitFor();
      await mgr.screenshot({ path: path.join(artifacts, 'console.png') });
      await vis.screenshot({ path: path.join(artifacts, 'demo.png') });

      // The manager closes: both sides show it, and the console can no longer write.
      await mgr.getByRole('button', { name: 'Close conversation' }).click();
      await vis.locator('.notice', { hasText: 'This conversation was closed' }).waitFor();
      await mgr.locator('#chat-status', { hasText: 'closed' }).waitFor();
      assert.ok(await mgr.getByLabel('Reply').isDisabled());
      await vis.screenshot({ path: path.join(artifacts, 'demo-closed.png') });

      // Writing again opens a new conversation, which reaches the same manager's thread.
      await vis.getByLabel('Your message').press('Enter');
      await mgr.locator('#chat-status', { hasText: 'open' }).waitFor();
      await mgr.locator('.message.theirs', { hasText: 'Blue, if you have it' }).waitFor();

      // A reload keeps the tab's conversations and their history (the token stays in the tab).
      await mgr.reload();
      await mgr.locator('.message.theirs', { hasText: 'Blue, if you have it' }).waitFor();
      await vis.reload();
      await vis.getByRole('button', { name: 'Chat with us' }).click();
      await vis.locator('.message.theirs', { hasText: 'Yes, two left' }).waitFor();

      assert.ok(sockets.some((u) => u.includes('/faye')), `the console did not use a websocket: ${sockets}`);
      assert.equal(await mgr.locator('#chat-error').textContent(), '');
      assert.ok(await vis.locator('#offline').isHidden(), await vis.locator('#offline').textContent());
      assert.deepEqual(problems, []);
      assert.ok(shownAfter >= 0 && shownAfter < 1000, `the conversation showed ${shownAfter}ms after the visitor sent`);
      t.diagnostic(`the console listed the conversation ${shownAfter}ms after the visitor sent`);
    } catch (err) {
      // What each side showed when it failed, and what went wrong in the pages.
      await mgr.screenshot({ path: path.join(artifacts, 'failed-console.png') }).catch(() => {});
      await vis.screenshot({ path: path.join(artifacts, 'failed-demo.png') }).catch(() => {});
      if (problems.length) err.message += `\npage problems: ${problems.join('\n')}`;
      throw err;
    } finally {
      await consoleCtx.close();
      await demoCtx.close();
    }
  });
  // The help desk: the console gets its work from the server, so two tabs (here two browser
  // contexts) of one manager show the same conversations, and a reload loses nothing.
  test('the console shows the same work in two tabs, across a reload, and transfers', async () => {
    const org = 'desk-tabs';
    const anna = token('manager', org, 'anna');
    const problems = [];
    const ctxs = await Promise.all([0, 1].map(() => browser.newContext({ viewport: { width: 1200, height: 700 } })));
    const [a, b] = await Promise.all(ctxs.map((c) => c.newPage()));
    let bob;
    // thread is the visitor's entry in one of the page's lists.
    const thread = (page, list, visitor) => page.getByRole('list', { name: list }).getByRole('button', { name: new RegExp(`^${visitor}`) });
    const say = (conv, vtok, content) => api(srv.base, `/chat/conversation/${conv.id}`, vtok, { content });
    try {
      watch(a, 'tab A', problems);
      watch(b, 'tab B', problems);
      for (const page of [a, b]) {
        await page.goto(`${srv.base}/console#token=${anna}`);
        await page.getByRole('switch', { name: 'On duty' }).check();
        await page.locator('#duty-help', { hasText: 'On duty' }).waitFor();
      }
      await a.getByRole('list', { name: 'Managers on duty' }).getByText('anna (you)').waitFor();

      // A visitor writes: both tabs list the conversation and show the message.
      const v1 = token('visitor', org, 'v1');
      const c1 = (await api(srv.base, '/chat/service/v1', v1)).body.conversation;
      assert.equal(c1.manager_id, 'anna');
      await say(c1, v1, 'First question');
      for (const page of [a, b]) {
        await thread(page, 'Mine', 'v1').waitFor();
        await page.locator('.message.theirs', { hasText: 'First question' }).waitFor();
      }

      // A second visitor: its message is unread in both tabs (each shows v1).
      const v2 = token('visitor', org, 'v2');
      const c2 = (await api(srv.base, '/chat/service/v2', v2)).body.conversation;
      for (const page of [a, b]) await thread(page, 'Mine', 'v2').waitFor();
      await say(c2, v2, 'Second question');
      for (const page of [a, b]) await page.getByRole('button', { name: /^v2.*\(1 unread\)/ }).waitFor();

      // A reload: the list (and its unread count) comes from the server, the tab keeps its
      // open conversation and its duty, and new messages still arrive.
      await a.reload();
      await a.locator('.message.theirs', { hasText: 'First question' }).waitFor();
      await a.getByRole('button', { name: /^v2.*\(1 unread\)/ }).waitFor();
      await a.locator('#duty-help', { hasText: 'On duty' }).waitFor();
      assert.ok(await a.getByRole('switch', { name: 'On duty' }).isChecked());
      await say(c1, v1, 'Still there?');
      await say(c2, v2, 'Hello again');
      for (const page of [a, b]) {
        await page.locator('.message.theirs', { hasText: 'Still there?' }).waitFor();
        await page.getByRole('button', { name: /^v2.*\(2 unread\)/ }).waitFor();
      }

      // Tab B opens v2: its messages are read, and tab A's badge goes too.
      await thread(b, 'Mine', 'v2').click();
      await b.locator('.message.theirs', { hasText: 'Hello again' }).waitFor();
      await a.getByRole('list', { name: 'Mine' }).getByRole('button', { name: /^v2(?!.*unread)/ }).waitFor();
      const read = (await api(srv.base, `/chat/conversation/${c2.id}/messages`, v2, {})).body.messages;
      assert.ok(read.every((m) => m.read), JSON.stringify(read));

      await a.screenshot({ path: path.join(artifacts, 'console-desk.png') });

      // Bob comes on duty elsewhere; tab A transfers v1 to him: it leaves both tabs, tab B off
      // duty too (it hears nothing live of it then: its next sync with the server finds it).
      await b.getByRole('switch', { name: 'On duty' }).uncheck();
      await b.locator('#duty-help', { hasText: 'Off duty' }).waitFor();
      bob = fayeClient(srv.base, token('manager', org, 'bob'));
      const bobSees = await subscribe(bob, '/service/*');
      await a.getByLabel('Transfer to').focus(); // refreshes who is on duty
      await a.getByLabel('Transfer to').selectOption('bob');
      await a.getByRole('button', { name: 'Transfer' }).click();
      await thread(a, 'Mine', 'v1').waitFor({ state: 'detached' });
      await thread(b, 'Mine', 'v1').waitFor({ state: 'detached', timeout: 25000 });
      let moved;
      do moved = await bobSees.next(5000, 'the transferred conversation'); while (moved.conversation?.id !== c1.id);
      assert.equal(moved.conversation.manager_id, 'bob');
      await thread(a, 'Mine', 'v2').waitFor();
      assert.deepEqual(problems, []);
    } catch (err) {
      await a.screenshot({ path: path.join(artifacts, 'failed-desk-a.png') }).catch(() => {});
      await b.screenshot({ path: path.join(artifacts, 'failed-desk-b.png') }).catch(() => {});
      if (problems.length) err.message += `\npage problems: ${problems.join('\n')}`;
      throw err;
    } finally {
      if (bob) await close(bob);
      await Promise.all(ctxs.map((c) => c.close()));
    }
  });

  test('the console lists waiting conversations and claims one', async () => {
    const org = 'desk-queue';
    await admin(srv, org, '', { name: 'Queue shop', offline_mode: 'queue' });
    // Nobody on duty: the conversation waits.
    const w1 = token('visitor', org, 'w1');
    const conv = (await api(srv.base, '/chat/service/w1', w1)).body.conversation;
    assert.equal(conv.status, 'pending');
    await api(srv.base, `/chat/conversation/${conv.id}`, w1, { content: 'Is anyone there?' });

    const problems = [];
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 700 } });
    const page = await ctx.newPage();
    try {
      watch(page, 'console', problems);
      await page.goto(`${srv.base}/console#token=${token('manager', org, 'carol')}`);
      const waiting = page.getByRole('list', { name: 'Waiting' }).getByRole('button', { name: /^w1.*\(1 unread\)/ });
      await waiting.click();
      await page.locator('.message.theirs', { hasText: 'Is anyone there?' }).waitFor();
      await page.locator('#chat-status', { hasText: 'pending' }).waitFor();
      assert.ok(await page.getByLabel('Reply').isDisabled());
      await page.screenshot({ path: path.join(artifacts, 'console-waiting.png') });
      await page.getByRole('button', { name: 'Claim' }).click();
      await page.getByRole('list', { name: 'Mine' }).getByRole('button', { name: /^w1/ }).waitFor();
      await page.locator('#chat-status', { hasText: 'open' }).waitFor();
      assert.equal(await page.getByRole('list', { name: 'Waiting' }).getByRole('button').count(), 0);
      // Now it is carol's: she can answer, and the visitor's message was read.
      await page.getByLabel('Reply').fill('Yes, Carol here.');
      await page.getByLabel('Reply').press('Enter');
      await page.locator('.message.mine', { hasText: 'Carol here' }).waitFor();
      const msgs = (await api(srv.base, `/chat/conversation/${conv.id}/messages`, w1, {})).body.messages;
      assert.ok(msgs.find((m) => m.content === 'Is anyone there?').read, JSON.stringify(msgs));
      assert.deepEqual(problems, []);
    } catch (err) {
      await page.screenshot({ path: path.join(artifacts, 'failed-claim.png') }).catch(() => {});
      if (problems.length) err.message += `\npage problems: ${problems.join('\n')}`;
      throw err;
    } finally {
      await ctx.close();
    }
  });
  test('the console shows a conversation waiting live, then assigned when its manager has room', async () => {
    const org = 'desk-capacity';
    await admin(srv, org, '', { name: 'Busy shop', offline_mode: 'queue' });
    await admin(srv, org, '/managers/dan', { name: 'Dan', capacity: 1 });
    const problems = [];
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 700 } });
    const page = await ctx.newPage();
    const list = (name) => page.getByRole('list', { name });
    try {
      watch(page, 'console', problems);
      await page.goto(`${srv.base}/console#token=${token('manager', org, 'dan')}`);
      await page.getByRole('switch', { name: 'On duty' }).check();
      await page.locator('#duty-help', { hasText: 'On duty' }).waitFor();
      await list('Managers on duty').getByText('dan (you)').waitFor();

      // The first visitor gets Dan; the second waits (Dan is full), live in Waiting.
      const x0 = (await api(srv.base, '/chat/service/x0', token('visitor', org, 'x0'))).body.conversation;
      assert.equal(x0.manager_id, 'dan');
      await list('Mine').getByRole('button', { name: /^x0/ }).waitFor();
      const x1tok = token('visitor', org, 'x1');
      const x1 = (await api(srv.base, '/chat/service/x1', x1tok)).body.conversation;
      assert.equal(x1.status, 'pending');
      await list('Waiting').getByRole('button', { name: /^x1/ }).waitFor();
      await api(srv.base, `/chat/conversation/${x1.id}`, x1tok, { content: 'Queued question' });
      await list('Waiting').getByRole('button', { name: /^x1.*\(1 unread\)/ }).waitFor();

      // Dan closes x0: he has room, x1 is his.
      await list('Mine').getByRole('button', { name: /^x0/ }).click();
      await page.getByRole('button', { name: 'Close conversation' }).click();
      await list('Mine').getByRole('button', { name: /^x1/ }).waitFor();
      assert.equal(await list('Waiting').getByRole('button').count(), 0);
      await list('Mine').getByRole('button', { name: /^x1/ }).click();
      await page.locator('.message.theirs', { hasText: 'Queued question' }).waitFor();
      await page.locator('#chat-status', { hasText: 'open' }).waitFor();
      assert.deepEqual(problems, []);
    } catch (err) {
      await page.screenshot({ path: path.join(artifacts, 'failed-capacity.png') }).catch(() => {});
      if (problems.length) err.message += `\npage problems: ${problems.join('\n')}`;
      throw err;
    } finally {
      await ctx.close();
    }
  });
});
