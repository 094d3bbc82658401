// The status page (GET /, issue #16) in headless Chromium from Debian's `chromium` package,
// driven by playwright-core, against the real service binary.
//
// Run: node --test tests/browser/  (scripts/test does it after `npm ci` in tests/browser).
// The binary is $MQTT_INTEGRATION_BIN or target/debug/mqtt-integration; Chromium is
// $CHROMIUM_BIN or /usr/bin/chromium. The page must show what GET /api/v1/status says, and its
// counters and chart must move when events flow. A screenshot is saved as target/status-page.png.

'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const mqtt = require('mqtt');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = process.env.MQTT_INTEGRATION_BIN || path.join(REPO, 'target', 'debug', 'mqtt-integration');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SCREENSHOT = path.join(REPO, 'target', 'status-page.png');
const WAIT = 10_000; // upper bound of any single wait, ms
const SECRET = 'status-page-browser-secret';
const ISSUER = 'https://sso.example.com/realms/status';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT for `user` with the admin role (`drogue-admin`, the default admin_role). */
function adminToken(user) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({
    iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 600, preferred_username: user,
    realm_access: { roles: ['drogue-admin'] },
  }));
  const sig = crypto.createHmac('sha256', SECRET).update(`${header}.${body}`).digest();
  return `${header}.${body}.${b64url(sig)}`;
}

/** A new API key for `user` from the binary's own `api-key` command: { key, hash }. */
function apiKey(user) {
  const out = require('node:child_process').execFileSync(BIN, ['api-key', user], { encoding: 'utf8' });
  const [key, hash] = out.trim().split('\n');
  return { key, hash };
}

/** The admin user (`admin = true`) whose name and key the browser test types in. */
const ROOT = apiKey('root');

/** Starts the binary with the status page `access` ("public" | "admin"); resolves when ready. */
async function startService(dir, access) {
  const ports = { mqtt: await freePort(), http: await freePort() };
  const cfg = path.join(dir, `${access}.toml`);
  fs.writeFileSync(cfg, `
[server]
threads = 2
shutdown_timeout = "5s"

[[listener]]
kind = "mqtt"
bind = "127.0.0.1:${ports.mqtt}"

[http]
bind = "127.0.0.1:${ports.http}"
status_page = "${access}"

[auth]
allow_anonymous = true

[auth.oauth]
issuer = "${ISSUER}"
hs256_secret = "${SECRET}"

[[user]]
name = "root"
api_keys = ["${ROOT.hash}"]
admin = true

[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" } ]
`);
  const stderrPath = path.join(dir, `${access}.stderr`);
  const stderr = fs.openSync(stderrPath, 'w');
  const proc = spawn(BIN, ['--config', cfg], {
    cwd: dir, stdio: ['ignore', 'ignore', stderr], env: { RUST_LOG: 'info', ...process.env },
  });
  fs.closeSync(stderr);
  proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.on('error', (e) => { proc.spawnError = e; });
  const svc = {
    proc, ports, http: `http://127.0.0.1:${ports.http}`,
    log: () => { try { return fs.readFileSync(stderrPath, 'utf8').slice(-8000); } catch { return ''; } },
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.spawnError) throw new Error(`cannot start ${BIN}: ${proc.spawnError.message} (run cargo build first)`);
    if (proc.exitCode !== null) throw new Error(`service exited with ${proc.exitCode}:\n${svc.log()}`);
    try {
      const res = await fetch(`${svc.http}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return svc;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`service not ready within 20 s:\n${svc.log()}`);
    await sleep(50);
  }
}

async function stopService(svc) {
  if (!svc || svc.proc.exitCode !== null) return;
  svc.proc.kill('SIGTERM');
  const timer = setTimeout(() => svc.proc.kill('SIGKILL'), 10_000);
  const { code } = await svc.proc.exited;
  clearTimeout(timer);
  assert.equal(code, 0, `service exit code after SIGTERM:\n${svc.log()}`);
}

async function status(svc, headers = {}) {
  const res = await fetch(`${svc.http}/api/v1/status`, { headers, signal: AbortSignal.timeout(WAIT) });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

async function ingest(svc, n) {
  const res = await fetch(`${svc.http}/api/v1/apps/demo/devices/device1/events/temp`, {
    method: 'POST', body: JSON.stringify({ n }), headers: { 'Content-Type': 'application/json' },
    signal: AbortSignal.timeout(WAIT),
  });
  assert.equal(res.status, 202, await res.text());
}

/** A durable MQTT subscriber of `app/demo` (from node: MQTT.js over TCP). */
function subscriber(svc, clientId) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${svc.ports.mqtt}`, {
      clientId, protocolVersion: 5, clean: true, reconnectPeriod: 0, connectTimeout: WAIT,
    });
    client.received = 0;
    client.on('message', () => { client.received += 1; });
    client.once('error', reject);
    client.once('connect', () => client.subscribe('app/demo', { qos: 1 }, (err) => (err ? reject(err) : resolve(client))));
  });
}

/** What the page shows, read from its DOM. */
function shown(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const groups = {};
    for (const row of document.querySelectorAll('#groups tr[data-group]')) {
      groups[row.dataset.group] = Number(row.cells[1].textContent);
    }
    return {
      polls: Number(document.body.dataset.polls || 0),
      connections: Object.fromEntries(['mqtt', 'mqtts', 'ws', 'wss'].map((p) => [p, Number(text(`conn-${p}`))])),
      connections_total: Number(text('conn-total')),
      max_connections: Number(text('max-connections')),
      subscriptions: Number(text('subscriptions')),
      events_in: Number(text('events-in')),
      events_out: Number(text('events-out')),
      rate_in: Number(text('rate-in')),
      backend_kind: text('backend-kind'),
      backend_ready: text('backend-ready'),
      groups,
      error: text('error'),
    };
  });
}

/** The highest point (smallest y, in canvas pixels) of the chart's "in" line, or null. */
function inLineTop(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('chart');
    const { data, width, height } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const i = (y * width + x) * 4;
        // #1f6feb, the "in" colour (anti-aliased edges are lighter; the core is exact enough).
        if (Math.abs(data[i] - 0x1f) < 24 && Math.abs(data[i + 1] - 0x6f) < 24 && Math.abs(data[i + 2] - 0xeb) < 24 && data[i + 3] > 200) return y;
      }
    }
    return null;
  });
}

async function until(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeout} ms (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package (scripts/test does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM, headless: true, timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

describe('status page in headless Chromium', { timeout: 90_000 }, () => {
  const state = {};

  before(async () => {
    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-integration-status-'));
    state.browser = await launch();
  });

  after(async () => {
    if (state.browser) await state.browser.close();
    fs.rmSync(state.dir, { recursive: true, force: true });
  });

  it('shows the JSON route\'s figures and moves when events flow (public)', async () => {
    const svc = await startService(state.dir, 'public');
    let client;
    try {
      client = await subscriber(svc, 'status-page-reader');
      const page = await state.browser.newPage({ viewport: { width: 1200, height: 900 } });
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const res = await page.goto(`${svc.http}/`);
      assert.equal(res.status(), 200);
      await until('two polls', async () => (await shown(page)).polls >= 2);

      // Nothing moves now: the page shows exactly what the JSON route says.
      const json = await status(svc);
      await until('the page matching /api/v1/status', async () => {
        const s = await shown(page);
        return s.connections_total === json.connections_total && s.subscriptions === json.subscriptions;
      });
      const before = await shown(page);
      assert.deepEqual(before.connections, json.connections);
      assert.equal(before.connections.mqtt, 1);
      assert.equal(before.connections_total, json.connections_total);
      assert.equal(before.max_connections, json.max_connections);
      assert.equal(before.subscriptions, json.subscriptions);
      assert.equal(before.subscriptions, 1);
      assert.equal(before.events_in, json.events.in);
      assert.equal(before.events_out, json.events.out);
      assert.equal(before.backend_kind, json.backend.kind);
      assert.equal(before.backend_ready, 'ready');
      assert.deepEqual(before.groups, Object.fromEntries(json.groups.map((g) => [g.group, g.lag])));
      assert.ok('demo.status-page-reader' in before.groups, JSON.stringify(before.groups));
      assert.equal(before.error, '');
      // Before any event the rate is 0: the "in" line (if long enough to show) lies on the
      // chart's baseline, 18 px above the canvas's bottom.
      const baseline = await page.evaluate(() => document.getElementById('chart').height - 18);
      const flatTop = await inLineTop(page);
      assert.ok(flatTop === null || flatTop >= baseline - 3, `"in" line at ${flatTop} before any event (baseline ${baseline})`);

      // Events flow for two seconds: the counters follow the JSON route, the rate and the
      // chart's "in" line rise.
      for (let n = 0; n < 40; n += 1) {
        await ingest(svc, n);
        await sleep(50);
      }
      await until('the subscriber got all 40', async () => client.received >= 40);
      const moved = await until('the page showing the new events', async () => {
        const s = await shown(page);
        return s.events_in === before.events_in + 40 && s.events_out === before.events_out + 40 ? s : null;
      });
      const after = await status(svc);
      assert.equal(moved.events_in, after.events.in);
      assert.equal(moved.events_out, after.events.out);
      // The rate shown is the last poll's, which may be back at 0 by now: the chart keeps the burst.
      await until('the "in" line risen well above its baseline', async () => {
        const top = await inLineTop(page);
        return top !== null && top < baseline - 40;
      });
      assert.deepEqual(errors, []);

      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert.ok(fs.statSync(SCREENSHOT).size > 10_000, 'screenshot written');
      console.log(`status page screenshot: ${SCREENSHOT}`);
      await page.close();
    } finally {
      if (client) client.end(true);
      await stopService(svc);
    }
  });

  it('needs an admin token or an admin user\'s login in admin mode', async () => {
    const svc = await startService(state.dir, 'admin');
    try {
      const refused = await fetch(`${svc.http}/`, { signal: AbortSignal.timeout(WAIT) });
      assert.equal(refused.status, 401);
      // Both challenges (fetch joins repeated headers with ", "); Basic first, so that a browser
      // asks for a login.
      const challenges = refused.headers.get('www-authenticate') || '';
      assert.match(challenges, /^Basic realm="mqtt-integration status"/, challenges);
      assert.match(challenges, /Bearer realm=/, challenges);
      // A browser without a login to give: the prompt is dismissed (playwright: the navigation
      // fails with ERR_INVALID_AUTH_CREDENTIALS) and nothing of the page is shown.
      const anonymous = await state.browser.newPage();
      await assert.rejects(anonymous.goto(`${svc.http}/`), /ERR_INVALID_AUTH_CREDENTIALS/);
      await anonymous.close();

      // A person at a plain browser: answers the login prompt with the admin user's name and API
      // key (playwright answers the Basic challenge as the prompt would); the page's polls reuse
      // the login, as browsers do within the realm.
      const login = await state.browser.newContext({
        httpCredentials: { username: 'root', password: ROOT.key },
      });
      const typed = await login.newPage();
      assert.equal((await typed.goto(`${svc.http}/`)).status(), 200);
      await until('two polls after the login', async () => (await shown(typed)).polls >= 2);
      assert.equal((await shown(typed)).error, '');
      await login.close();

      // A client that sends the token with every request (here: the browser context's headers,
      // as a proxy in front of the page would) sees the page, and the page's polls pass too.
      const authorization = `Bearer ${adminToken('root')}`;
      const context = await state.browser.newContext({ extraHTTPHeaders: { Authorization: authorization } });
      const page = await context.newPage();
      assert.equal((await page.goto(`${svc.http}/`)).status(), 200);
      await until('two polls', async () => (await shown(page)).polls >= 2);
      const s = await shown(page);
      const json = await status(svc, { Authorization: authorization });
      assert.equal(s.error, '');
      assert.equal(s.max_connections, json.max_connections);
      assert.equal(s.backend_kind, 'embedded');
      await context.close();
    } finally {
      await stopService(svc);
    }
  });
});
