// Helpers of the Node end-to-end suite: run the real server binary, sign tokens, call the REST
// API, make official Faye clients, and launch the headless browser.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import faye from 'faye';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const SECRET = 'node-e2e-secret-node-e2e-secret-0001';
export const FAYE_BUNDLE = path.join(here, 'node_modules', 'faye', 'client', 'faye-browser-min.js');

let builtBinary;

// serverBinary returns CHAT_SERVER_BIN, or builds the server once for this run.
export function serverBinary() {
  if (process.env.CHAT_SERVER_BIN) return process.env.CHAT_SERVER_BIN;
  if (!builtBinary) {
    builtBinary = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-bin-')), 'chat-server');
    execFileSync('go', ['build', '-o', builtBinary, './cmd/chat-server'], { cwd: repoRoot, stdio: 'inherit' });
  }
  return builtBinary;
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// token signs an HS256 JWT the server accepts.
export function token(role, org, sub, ttlSeconds = 3600, secret = SECRET) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ sub, role, org, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// startServer runs the server binary on loopback and resolves once both listeners are up.
export async function startServer({ env = {}, dataDir, httpPort = 0, mqttPort = 0 } = {}) {
  dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-data-'));
  const proc = spawn(serverBinary(), [], {
    env: {
      ...process.env,
      CHAT_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      CHAT_MQTT_ADDR: `127.0.0.1:${mqttPort}`,
      CHAT_DATA_DIR: dataDir,
      CHAT_AUTH_JWT_SECRET: SECRET,
      CHAT_FAYE_CLIENT_JS_PATH: FAYE_BUNDLE,
      CHAT_FAYE_TIMEOUT: '10s',
      CHAT_FAYE_PING: '4s',
      CHAT_FAYE_IDLE_TIMEOUT: '30s',
      CHAT_SHUTDOWN_TIMEOUT: '5s',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const logs = new Inbox(); // every JSON log line, in order
  const addrs = await new Promise((resolve, reject) => {
    const found = {};
    const timer = setTimeout(() => reject(new Error('server did not start within 20s')), 20000);
    exited.then(({ code }) => reject(new Error(`server exited with ${code} before it listened`)));
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      let entry;
      try { entry = JSON.parse(line); } catch { return; }
      logs.push(entry);
      if (entry.msg === 'http listening') found.http = entry.addr;
      if (entry.msg === 'mqtt listening') found.mqtt = entry.addr;
      if (found.http && found.mqtt) { clearTimeout(timer); resolve(found); }
    });
  });
  return {
    base: `http://${addrs.http}`,
    mqttURL: `mqtt://${addrs.mqtt}`,
    dataDir,
    proc,
    logs,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// api calls the REST API with a bearer token and a JSON body.
export async function api(base, route, tok, body) {
  const res = await fetch(base + route, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(tok ? { Authorization: `Bearer ${tok}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

// Inbox collects messages and hands them out in order.
export class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push(item) {
    const w = this.waiters.shift();
    if (w) { clearTimeout(w.timer); w.resolve(item); } else this.items.push(item);
  }
  next(ms = 10000, what = 'a message') {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const w = { resolve, timer: setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); reject(new Error(`no ${what} within ${ms}ms`)); }, ms) };
      this.waiters.push(w);
    });
  }
  // none resolves if nothing arrives for ms (used after a positive check proved delivery).
  async none(ms) {
    await new Promise((r) => setTimeout(r, ms));
    if (this.items.length) throw new Error(`unexpected message: ${JSON.stringify(this.items[0])}`);
  }
}

// fayeClient is the official Faye client with the one extension a widget adds: its token in
// message.ext. raw collects every incoming message as the client saw it on the wire.
export function fayeClient(base, tok, { websocket = true, retry = 0.5 } = {}) {
  const client = new faye.Client(`${base}/faye`, { retry, timeout: 15 });
  if (!websocket) client.disable('websocket');
  const raw = new Inbox();
  const meta = new Inbox();
  client.addExtension({
    outgoing(message, callback) {
      if (tok) message.ext = { ...(message.ext || {}), token: tok };
      callback(message);
    },
    incoming(message, callback) {
      (message.channel.startsWith('/meta/') ? meta : raw).push(message);
      callback(message);
    },
  });
  client.raw = raw;
  client.meta = meta;
  client.events = new Inbox();
  client.on('transport:up', () => client.events.push('up'));
  client.on('transport:down', () => client.events.push('down'));
  return client;
}

// subscribe resolves with an inbox of the channel's messages once the server acknowledged it.
export async function subscribe(client, channel) {
  const inbox = new Inbox();
  await client.subscribe(channel, (msg) => inbox.push(msg));
  return inbox;
}

// refused resolves with the error of a subscription the server refuses, and fails otherwise.
export async function refused(client, channel) {
  try {
    await client.subscribe(channel, () => {});
  } catch (err) {
    return err;
  }
  throw new Error(`subscribe ${channel} was accepted`);
}

export function transportOf(client) {
  return client._dispatcher._transport && client._dispatcher._transport.connectionType;
}

// publish turns Faye's thenable publication into a real promise.
export function publish(client, channel, data) {
  return new Promise((resolve, reject) => client.publish(channel, data).then(resolve, reject));
}

// close disconnects clients without waiting on a server that may be gone.
export async function close(...clients) {
  await Promise.all(clients.map((c) => Promise.race([
    Promise.resolve(c.disconnect()).catch(() => {}),
    new Promise((r) => setTimeout(r, 2000)),
  ])));
}

// launchBrowser starts headless Chromium (CHROMIUM_PATH, or the system's).
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
