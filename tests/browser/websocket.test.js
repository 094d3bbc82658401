// MQTT.js over WebSocket (ws and wss) in headless Chromium from Debian's `chromium` package,
// driven by playwright-core, against the real service binary.
//
// Run: node --test tests/browser/  (scripts/test does it after `npm ci` in tests/browser).
// The binary is $MQTT_INTEGRATION_BIN or target/debug/mqtt-integration; Chromium is
// $CHROMIUM_BIN or /usr/bin/chromium. Everything listens on 127.0.0.1; certificates are
// made with the openssl CLI in a temp dir; the service is stopped with SIGTERM at the end and
// must exit 0. A screenshot of the page is left in the temp dir (path printed) as evidence.

'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = process.env.MQTT_INTEGRATION_BIN || path.join(REPO, 'target', 'debug', 'mqtt-integration');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const MQTT_JS = path.join(__dirname, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js');
const WAIT = 10_000; // upper bound of any single wait, ms
const SECRET = 'browser-test-secret';
const ISSUER = 'https://sso.example.com/realms/browser';
const OWNER = 'carol';

// ------------------------------------------------------------------------------------------
// Helpers

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

/** An HS256 JWT for `user`, checked by the service against `auth.oauth.hs256_secret`. */
function makeToken(user, { secret = SECRET, expiresIn = 600 } = {}) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({
    iss: ISSUER, exp: Math.floor(Date.now() / 1000) + expiresIn, preferred_username: user,
  }));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${body}`).digest();
  return `${header}.${body}.${b64url(sig)}`;
}

/** A CA and a server certificate for localhost / 127.0.0.1 (EC P-256), with the openssl CLI. */
function makePki(dir) {
  const cnf = path.join(dir, 'openssl.cnf');
  fs.copyFileSync(path.join(__dirname, '..', 'fixtures', 'openssl.cnf'), cnf);
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', '-config', cnf, '-extensions', 'ca', ...ec, '-keyout', 'ca.key',
    '-out', 'ca.crt', '-days', '2', '-subj', '/CN=mqtt-integration browser test CA');
  openssl('req', '-new', '-config', cnf, ...ec, '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-set_serial', '4097', '-days', '2', '-extfile', cnf, '-extensions', 'server', '-out', 'server.crt');
  const cert = new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'server.crt')));
  // SHA-256 of the server's SubjectPublicKeyInfo, for --ignore-certificate-errors-spki-list.
  const spki = crypto.createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  return { crt: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), spki };
}

function config(p, pki) {
  return `
[server]
threads = 2
connect_timeout = "5s"
shutdown_timeout = "5s"

[[listener]]
kind = "mqtt"
bind = "127.0.0.1:${p.mqtt}"

[[listener]]
kind = "ws"
bind = "127.0.0.1:${p.ws}"

[[listener]]
kind = "wss"
bind = "127.0.0.1:${p.wss}"
cert = "${pki.crt}"
key = "${pki.key}"

[http]
bind = "127.0.0.1:${p.http}"

[auth]
allow_anonymous = true
failure_delay = "200ms"

[auth.oauth]
issuer = "${ISSUER}"
hs256_secret = "${SECRET}"

[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" } ]

[[app]]
name = "owned"
owner = "${OWNER}"
devices = [ { name = "device1" } ]
`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function httpRequest(url, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(WAIT) });
  return { status: res.status, text: await res.text() };
}

// ------------------------------------------------------------------------------------------
// The service, the page server and the browser, shared by the tests below

const state = {};

function serviceLog() {
  try {
    return fs.readFileSync(state.stderrPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').slice(-8000);
  } catch {
    return '';
  }
}

async function startService() {
  const ports = { mqtt: await freePort(), ws: await freePort(), wss: await freePort(), http: await freePort() };
  const cfg = path.join(state.dir, 'service.toml');
  fs.writeFileSync(cfg, config(ports, state.pki));
  state.stderrPath = path.join(state.dir, 'service.stderr');
  const stderr = fs.openSync(state.stderrPath, 'w');
  const proc = spawn(BIN, ['--config', cfg], {
    cwd: state.dir, stdio: ['ignore', 'ignore', stderr], env: { RUST_LOG: 'info', ...process.env },
  });
  fs.closeSync(stderr);
  proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.on('error', (e) => { proc.spawnError = e; });
  state.proc = proc;
  state.ports = ports;
  state.http = `http://127.0.0.1:${ports.http}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.spawnError) throw new Error(`cannot start ${BIN}: ${proc.spawnError.message} (run cargo build first)`);
    if (proc.exitCode !== null) throw new Error(`service exited with ${proc.exitCode} before ready:\n${serviceLog()}`);
    try {
      if ((await httpRequest(`${state.http}/readyz`)).status === 200) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`service not ready within 20 s:\n${serviceLog()}`);
    await sleep(50);
  }
}

/** Serves the test page and the MQTT.js browser bundle on 127.0.0.1 (an http:// origin). */
function startPageServer() {
  const files = {
    '/': ['text/html; charset=utf-8', path.join(__dirname, 'index.html')],
    '/mqtt.min.js': ['text/javascript; charset=utf-8', MQTT_JS],
  };
  const server = http.createServer((req, res) => {
    const entry = files[req.url];
    if (!entry) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'Content-Type': entry[0], 'Cache-Control': 'no-store' });
    fs.createReadStream(entry[1]).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function launchChromium() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package (scripts/test does)`);
  }
  state.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-integration-chromium-'));
  try {
    // A fresh user-data dir each run. The wss certificate is accepted by pinning the test
    // server's public key (--ignore-certificate-errors-spki-list, honoured because a
    // user-data dir is given), not with the blanket --ignore-certificate-errors.
    return await chromium.launchPersistentContext(state.profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--ignore-certificate-errors-spki-list=${state.pki.spki}`,
      ],
    });
  } catch (e) {
    throw new Error(`Chromium could not start from ${CHROMIUM}: ${e.message}`);
  }
}

async function ingest(app, nonce, headers = {}) {
  const data = { nonce, temp: 21.5, unit: 'C' };
  const res = await httpRequest(`${state.http}/api/v1/apps/${app}/devices/device1/events/temp`, {
    method: 'POST', body: JSON.stringify(data), headers: { 'Content-Type': 'application/json', ...headers },
  });
  assert.equal(res.status, 202, `ingest into ${app}: ${res.status} ${res.text}`);
  return data;
}

function checkCloudEvent(msg, app, data) {
  assert.ok(msg, `no event with ${data.nonce} arrived`);
  assert.equal(msg.topic, `app/${app}`);
  const ce = JSON.parse(msg.payload);
  assert.equal(ce.specversion, '1.0');
  assert.match(ce.id, /^[0-9a-f-]{36}$/);
  assert.equal(ce.type, 'io.drogue.event.v1');
  assert.equal(ce.source, `drogue://${app}/device1`);
  assert.equal(ce.subject, 'temp');
  assert.equal(ce.datacontenttype, 'application/json');
  assert.equal(ce.application, app);
  assert.equal(ce.device, 'device1');
  assert.deepEqual(ce.data, data);
}

let seq = 0;
const uniqueId = (prefix) => `${prefix}-${process.pid}-${++seq}-${crypto.randomBytes(3).toString('hex')}`;

const connect = (name, url, opts) => state.page.evaluate(
  ([n, u, o, t]) => window.T.connect(n, u, o, t), [name, url, opts, WAIT]);
const subscribe = (name, topic, qos = 1) => state.page.evaluate(
  ([n, tp, q]) => window.T.subscribe(n, tp, q), [name, topic, qos]);
const waitMessage = (name, marker) => state.page.evaluate(
  ([n, m, t]) => window.T.waitMessage(n, m, t), [name, marker, WAIT]);
const end = (name) => state.page.evaluate((n) => window.T.end(n), name);

/** Connect, subscribe `app/<app>`, ingest one event, check it arrives as a CloudEvent. */
async function roundTrip(url, opts, app = 'demo', ingestHeaders = {}) {
  const name = opts.clientId;
  const conn = await connect(name, url, opts);
  assert.deepEqual(conn, { ok: true, reasonCode: 0 }, `CONNACK on ${url}`);
  try {
    assert.deepEqual(await subscribe(name, `app/${app}`, 1), [1]);
    const data = await ingest(app, crypto.randomUUID(), ingestHeaders);
    const { message, all } = await waitMessage(name, data.nonce);
    assert.ok(message, `no event with ${data.nonce} within ${WAIT} ms on ${url}; got ${JSON.stringify(all)}`);
    checkCloudEvent(message, app, data);
  } finally {
    await end(name);
  }
}

// ------------------------------------------------------------------------------------------

describe('MQTT.js over WebSocket in headless Chromium', { timeout: 100_000 }, () => {
  before(async () => {
    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-integration-browser-'));
    state.pki = makePki(state.dir);
    await startService();
    state.pageServer = await startPageServer();
    state.context = await launchChromium();
    state.page = state.context.pages()[0] || await state.context.newPage();
    state.page.setDefaultTimeout(WAIT * 2);
    state.consoleErrors = [];
    state.page.on('pageerror', (e) => state.consoleErrors.push(String(e)));
    const pageUrl = `http://127.0.0.1:${state.pageServer.address().port}/`;
    await state.page.goto(pageUrl, { timeout: WAIT });
    assert.equal(await state.page.evaluate(() => window.T && window.T.ready), true,
      'MQTT.js did not load in the page');
    state.ws = `ws://127.0.0.1:${state.ports.ws}/mqtt`;
    state.wss = `wss://localhost:${state.ports.wss}/mqtt`;
  }, { timeout: 60_000 });

  after(async () => {
    const problems = [];
    if (state.page) {
      const shot = path.join(state.dir, 'page.png');
      await state.page.screenshot({ path: shot, fullPage: true }).then(
        () => console.log(`screenshot of the page: ${shot}`), (e) => console.log(`no screenshot: ${e.message}`));
    }
    if (state.context) await state.context.close().catch((e) => problems.push(`closing Chromium: ${e.message}`));
    if (state.pageServer) state.pageServer.close();
    if (state.profile) fs.rmSync(state.profile, { recursive: true, force: true });
    if (state.proc && state.proc.exitCode !== null) {
      problems.push(`service exited with ${state.proc.exitCode} during the tests:\n${serviceLog()}`);
    } else if (state.proc && !state.proc.spawnError) {
      state.proc.kill('SIGTERM');
      let timer;
      const result = await Promise.race([state.proc.exited,
        new Promise((r) => { timer = setTimeout(() => r(null), 10_000); })]);
      clearTimeout(timer);
      if (result === null) {
        state.proc.kill('SIGKILL');
        problems.push(`service did not stop within 10 s of SIGTERM:\n${serviceLog()}`);
      } else if (result.code !== 0) {
        problems.push(`service exited with ${JSON.stringify(result)} after SIGTERM:\n${serviceLog()}`);
      }
    }
    if (state.consoleErrors && state.consoleErrors.length) problems.push(`page errors: ${state.consoleErrors.join('; ')}`);
    assert.deepEqual(problems, []);
  }, { timeout: 30_000 });

  it('ws: anonymous MQTT 3.1.1 and 5 subscribe app/demo and receive an ingested event', { timeout: 30_000 }, async () => {
    for (const protocolVersion of [4, 5]) {
      await roundTrip(state.ws, { protocolVersion, clientId: uniqueId(`ws-v${protocolVersion}`) });
    }
  });

  it('wss: anonymous MQTT 3.1.1 and 5 subscribe app/demo and receive an ingested event', { timeout: 30_000 }, async () => {
    for (const protocolVersion of [4, 5]) {
      await roundTrip(state.wss, { protocolVersion, clientId: uniqueId(`wss-v${protocolVersion}`) });
    }
  });

  it('anonymous cannot subscribe app/owned (v5 SUBACK 0x87)', { timeout: 30_000 }, async () => {
    const name = uniqueId('anon-owned');
    assert.deepEqual(await connect(name, state.ws, { protocolVersion: 5, clientId: name }), { ok: true, reasonCode: 0 });
    try {
      assert.deepEqual(await subscribe(name, 'app/owned', 1), [0x87]);
    } finally {
      await end(name);
    }
  });

  it('wss, MQTT 5: a token of the owner as user name subscribes app/owned and receives', { timeout: 30_000 }, async () => {
    const token = makeToken(OWNER);
    await roundTrip(state.wss, { protocolVersion: 5, clientId: uniqueId('tok-user'), username: token },
      'owned', { Authorization: `Bearer ${token}` });
  });

  it('browser WebSocket, MQTT 5: a token as password without user name is accepted (CONNACK 0)', { timeout: 30_000 }, async () => {
    // MQTT.js cannot send a password without a user name (mqtt-packet: "Username is required
    // to use password"), so this CONNECT is written by hand in the page.
    const r = await state.page.evaluate(([u, c, p, t]) => window.T.rawConnectPasswordOnly(u, c, p, t),
      [state.wss, uniqueId('raw-pw'), makeToken(OWNER), WAIT]);
    assert.deepEqual(r, { reasonCode: 0 });
  });

  it('MQTT.js, MQTT 5: a token as password (empty user name) subscribes app/owned and receives', { timeout: 30_000 }, async () => {
    // MQTT.js can only send a password together with a user name; an empty user name is how it
    // says "password only", and the service takes it as such.
    const token = makeToken(OWNER);
    await roundTrip(state.wss, { protocolVersion: 5, clientId: uniqueId('tok-pw'), username: '', password: token },
      'owned', { Authorization: `Bearer ${token}` });
  });

  it('MQTT 5: a bad token is refused with CONNACK 0x86 (MQTT.js error event, code 134)', { timeout: 30_000 }, async () => {
    for (const [label, token] of [['forged', makeToken(OWNER, { secret: 'guess' })],
      ['expired', makeToken(OWNER, { expiresIn: -3600 })], ['garbage', 'not-a-token']]) {
      const name = uniqueId(`bad-${label}`);
      const r = await connect(name, state.ws, { protocolVersion: 5, clientId: name, username: token });
      await end(name);
      assert.equal(r.ok, false, `${label} token was accepted`);
      assert.equal(r.code, 134, `${label} token: ${JSON.stringify(r)}`);
    }
  });
});

// Never leave the service behind if this process dies early.
process.on('exit', () => {
  if (state.proc && state.proc.exitCode === null) state.proc.kill('SIGKILL');
});
