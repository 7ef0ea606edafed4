// The manager console (/console) and the visitor demo page (/demo), served by the binary on
// its embedded defaults, in two Chromium contexts: the newcomer's first minute. The links come
// from the server's log, as a newcomer would copy them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser, repoRoot, startServer, token } from './lib.mjs';

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

// watch records what would show a broken page: script errors, CSP refusals, failed requests.
function watch(page, name, problems) {
  page.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    // The offline answer (422 chat_offline) is expected; Chromium logs every failed status.
    if (msg.type() === 'error' && !msg.text().includes('status of 422')) problems.push(`${name}: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => {
    if (!req.url().includes('/faye')) problems.push(`${name}: ${req.url()} ${req.failure()?.errorText}`);
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
});
