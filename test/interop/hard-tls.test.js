'use strict';
// Hardening: TLS to the relay fails closed, and the agent dials nothing but
// its configured endpoint and its relay.
//
//   1. hcmd's three relay clients (the listener's control channel, a
//      forward's connection to the relay, `hcmd test`) against servers with
//      an untrusted CA, a certificate for another host, an expired
//      certificate, TLS 1.0 or 1.1 only, and only non-AEAD (CBC) suites with
//      TLS 1.2: no handshake completes, no request byte reaches the server,
//      hcmd keeps running and retrying, and every log line names the cause.
//      The same server with a good certificate and TLS 1.2 AEAD works (the
//      positive control). Servers: Node's tls (OpenSSL) and `openssl
//      s_server`.
//   2. A sender cannot steer the agent: path suffixes, query parameters,
//      Host / X-Forwarded-* / sb-hc-* lookalike headers, sb-hc-id,
//      Sec-WebSocket-Protocol and absolute-form request targets sent through
//      the real hcrelay never make hcmd dial a decoy; every tunnel ends at
//      the configured endpoint. A relay (a fake one, over TLS) whose accept
//      message names a rendezvous on another host (an IP address for the
//      same machine included), or without TLS, is ignored: hcmd dials
//      neither that address nor the endpoint, and keeps serving accepts at
//      the relay's host (on any port: TLS checks the name). A line break in
//      the accept's Sec-WebSocket-Protocol adds no header to hcmd's request.
// The file ends with: every hcmd and the hcrelay exited cleanly and printed
// no sanitizer report.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');
const { startRelay, freePort, mkTempDir, rmTempDir, newKey, withTimeout, sleep } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T, ASAN, senderToken } = require('./lib/agent');
const { closeAll, tcpServer } = require('./lib/endpoints');
const { tryWs, describe, tlsConnect, readHttpHead, upgradeRequest, wsAcceptFor, encodeFrame, FrameReader } = require('./lib/wsclient');
const { withFwdAgents, tcpWatchClose, runHcmd } = require('./lib/forward');
const { until, assertNoSecrets } = require('./lib/ops');

let tmp;
let pki;
let relay; // the hcrelay of 2a
let echo; // for `hcmd test`'s endpoint steps
const agents = []; // every hcmd daemon started here, for the last test
const testRuns = []; // every `hcmd test` run: { what, code, stderr }
const servers = new Set(); // fake servers still open, for after()

// ------------------------------------------------------------------ PKI ----

// A trusted CA and, under it, a leaf for localhost/127.0.0.1 (good), one for
// another host, one that expired in 2020; the same leaf key signed by an
// untrusted CA. `openssl ca` with -startdate/-enddate backdates the expired
// one (openssl x509 -req cannot).
function makePki(dir) {
  const f = (n) => path.join(dir, n);
  const ossl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const leafExt = (san) =>
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
    `extendedKeyUsage=serverAuth\nsubjectAltName=${san}\nauthorityKeyIdentifier=keyid\n`;
  fs.writeFileSync(f('good.ext'), leafExt('DNS:localhost,IP:127.0.0.1'));
  fs.writeFileSync(f('other.ext'), leafExt('DNS:other.example'));
  for (const [name, cn] of [
    ['ca', 'hard-tls trusted CA'],
    ['ca2', 'hard-tls untrusted CA'],
  ]) {
    ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${cn}`, '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', f(`${name}.crt`)]);
  }
  ossl(['genrsa', '-out', f('leaf.key'), '2048']);
  ossl(['req', '-new', '-key', f('leaf.key'), '-subj', '/CN=localhost', '-out', f('leaf.csr')]);
  ossl(['req', '-new', '-key', f('leaf.key'), '-subj', '/CN=other.example', '-out', f('other.csr')]);
  const sign = (csr, ca, serial, ext, out) =>
    ossl(['x509', '-req', '-in', f(csr), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-set_serial', serial, '-days', '2',
      '-extfile', f(ext), '-out', f(out)]);
  sign('leaf.csr', 'ca', '1', 'good.ext', 'good.crt');
  sign('leaf.csr', 'ca2', '2', 'good.ext', 'untrusted.crt');
  sign('other.csr', 'ca', '3', 'other.ext', 'otherhost.crt');
  fs.mkdirSync(f('db'));
  fs.writeFileSync(f('db/index.txt'), '');
  fs.writeFileSync(f('db/serial'), '04\n');
  fs.writeFileSync(
    f('ca.cnf'),
    '[ca]\ndefault_ca = tca\n[tca]\ndir = .\ndatabase = db/index.txt\nserial = db/serial\nnew_certs_dir = db\n' +
      'certificate = ca.crt\nprivate_key = ca.key\ndefault_md = sha256\npolicy = anyp\nunique_subject = no\n' +
      '[anyp]\ncommonName = supplied\n',
  );
  ossl(['ca', '-batch', '-config', f('ca.cnf'), '-in', f('leaf.csr'), '-startdate', '20200101000000Z', '-enddate', '20200102000000Z',
    '-extfile', f('good.ext'), '-notext', '-out', f('expired.crt')]);
  const dates = ossl(['x509', '-in', f('expired.crt'), '-noout', '-enddate']).toString();
  assert.match(dates, /notAfter=Jan\s+2 00:00:00 2020 GMT/, 'the expired certificate is not backdated');
  const read = (n) => fs.readFileSync(f(n));
  return {
    dir,
    caFile: f('ca.crt'),
    ca: read('ca.crt'),
    keyFile: f('leaf.key'),
    key: read('leaf.key'),
    certFile: (name) => f(`${name}.crt`),
    cert: (name) => read(`${name}.crt`),
  };
}

// ------------------------------------------------------- fake servers ------

// A TLS server (Node's OpenSSL) that counts TCP connections, completed
// handshakes and application bytes; it answers any request head with 401
// so that each client finishes quickly. Keeps only request lines (never a
// header: the request carries a token).
class TlsProbe {
  constructor(opts) {
    this.opts = opts;
    this.tcp = 0;
    this.secure = [];
    this.appBytes = 0;
    this.requests = [];
    this.clientErrors = [];
    this.sockets = new Set();
  }
  async start() {
    this.server = tls.createServer(this.opts, (s) => {
      this.secure.push({ protocol: s.getProtocol(), cipher: s.getCipher().name });
      let head = '';
      s.on('error', () => {});
      s.on('data', (d) => {
        this.appBytes += d.length;
        if (head === null) return;
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n')) {
          this.requests.push(head.split('\r\n')[0]);
          head = null;
          s.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        }
      });
    });
    this.server.on('connection', (raw) => {
      this.tcp++;
      this.sockets.add(raw);
      raw.on('close', () => this.sockets.delete(raw));
    });
    this.server.on('tlsClientError', (e) => this.clientErrors.push(e.code || e.message));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    servers.add(this);
    return this;
  }
  summary() {
    return `tcp=${this.tcp} handshakes=${this.secure.length} app_bytes=${this.appBytes} requests=${JSON.stringify(this.requests)} client_errors=${JSON.stringify([...new Set(this.clientErrors)])}`;
  }
  async close() {
    servers.delete(this);
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(() => r()));
  }
}

// `openssl s_server -www` (Debian's openssl): answers a GET with 200 and a
// status page once TLS is up; prints every failed handshake's error.
class SServer {
  constructor(args) {
    this.args = args;
    this.out = '';
  }
  async start() {
    this.proc = spawn(
      'openssl',
      ['s_server', '-accept', '127.0.0.1:0', '-cert', pki.certFile('good'), '-key', pki.keyFile, '-www', ...this.args],
      { stdio: ['pipe', 'pipe', 'pipe'] }, // stdin stays open: EOF would stop it
    );
    servers.add(this);
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => r({ code, signal })));
    const onData = (c) => (this.out += c.toString('latin1'));
    this.proc.stdout.on('data', onData);
    this.proc.stderr.on('data', onData);
    this.proc.stdin.on('error', () => {});
    await withTimeout(until(() => /ACCEPT 127\.0\.0\.1:\d+/.test(this.out) || this.proc.exitCode !== null, T(10000), 's_server'), T(11000), 's_server');
    const m = this.out.match(/ACCEPT 127\.0\.0\.1:(\d+)/);
    assert.ok(m, `openssl s_server did not start:\n${this.out}`);
    this.port = Number(m[1]);
    return this;
  }
  count(re) {
    return this.out.split('\n').filter((l) => re.test(l)).length;
  }
  summary() {
    const errs = [...new Set(this.out.split('\n').filter((l) => /error:/.test(l)).map((l) => l.replace(/^[0-9A-F]+:/, '')))];
    return `s_server errors=${this.count(/error:/)} ${JSON.stringify(errs)}`;
  }
  async close() {
    servers.delete(this);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await withTimeout(this.exited, 5000, 's_server exit').catch(() => this.proc.kill('SIGKILL'));
  }
}

// ----------------------------------------------------------- fixtures ------

before(async () => {
  tmp = mkTempDir('hcmd-hard-tls-');
  fs.mkdirSync(path.join(tmp, 'pki'));
  pki = makePki(path.join(tmp, 'pki'));
  echo = await tcpServer((s) => s.pipe(s));
  console.log(`# ${execFileSync('openssl', ['version']).toString().trim()}; node ${process.version}; ASAN=${ASAN}`);
}, { timeout: T(60000) });

after(async () => {
  await cleanupAll();
  for (const s of [...servers]) await s.close().catch(() => {});
  await closeAll();
  if (relay) await relay.cleanup();
  rmTempDir(tmp);
});

// ------------------------------------------------- 1. TLS fails closed ------

const AEAD = 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305';
const CBC = 'AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:@SECLEVEL=0';
const NO_COMMON = /TLS handshake: the server sent fatal alert 40 \(handshake failure\): no TLS version or cipher suite in common \(TLS 1\.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 is required\)/;

const nodeServer = (cert, extra) => () =>
  new TlsProbe({ key: pki.key, cert: pki.cert(cert), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: AEAD, ...extra }).start();
const sServer = (args) => () => new SServer(args).start();

const CASES = [
  { name: 'untrusted CA', server: nodeServer('untrusted'), why: /certificate verification failed: the certificate is not signed by a trusted CA \(ca_file or the system store\)/ },
  { name: 'certificate for another host', server: nodeServer('otherhost'), why: /certificate verification failed: the certificate is not for host localhost/ },
  { name: 'expired certificate', server: nodeServer('expired'), why: /certificate verification failed: the certificate has expired/ },
  // DEFAULT still has the AEAD suites: only the version keeps them apart.
  { name: 'TLS 1.0 only (node)', server: nodeServer('good', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }), why: NO_COMMON },
  { name: 'TLS 1.1 only (node)', server: nodeServer('good', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }), why: NO_COMMON },
  { name: 'TLS 1.2 with CBC suites only (node)', server: nodeServer('good', { ciphers: CBC }), why: NO_COMMON },
  { name: 'TLS 1.0 only (openssl s_server -tls1)', server: sServer(['-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0']), why: NO_COMMON },
  { name: 'TLS 1.1 only (openssl s_server -tls1_1)', server: sServer(['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']), why: NO_COMMON },
  { name: 'TLS 1.2 with CBC suites only (openssl s_server)', server: sServer(['-tls1_2', '-cipher', CBC]), why: NO_COMMON },
];

// hcmd with a listener and a forward, both for the namespace at `port`.
async function tlsAgentOpts(name, port, keys) {
  const cs = (rule, key) => `Endpoint=sb://localhost:${port}/;SharedAccessKeyName=${rule};SharedAccessKey=${key};EntityPath=hc`;
  return {
    name,
    settings: { ca_file: pki.caFile, retry_max: 1, connect_timeout: 5 },
    connections: [{ name: 'c', connectionString: cs('listen', keys[0]), endpoint: `127.0.0.1:${echo.port}` }],
    forwards: [{ name: 'f', connectionString: cs('send', keys[1]), bind: `127.0.0.1:${await freePort()}` }],
    start: { waitConnected: false },
  };
}

async function forwardPort(agent) {
  const m = await agent.waitForLog(/hcmd info: forward f: listening on 127\.0\.0\.1:(\d+) for /, T(10000));
  return Number(m[1]);
}

async function hcmdTest(agent) {
  const r = await runHcmd(['test', 'c', '-c', agent.iniFile]);
  const out = r.stdout.toString();
  testRuns.push({ what: `hcmd test (${agent.name})`, code: r.code, signal: r.signal, timedOut: r.timedOut, stderr: r.stderr });
  assert.equal(r.timedOut, false, `hcmd test did not finish:\n${out}${r.stderr}`);
  return { code: r.code, out, err: r.stderr, steps: out.split('\n').filter((l) => /^  (ok|FAIL|skip) /.test(l)) };
}

for (const kase of CASES) {
  test(`1. TLS fails closed against a server with ${kase.name}: listener, forward and hcmd test name the cause; hcmd retries`, { timeout: T(60000) }, async () => {
    const srv = await kase.server();
    const keys = [newKey(), newKey()];
    const opts = await tlsAgentOpts(`hcmd-${agents.length}`, srv.port, keys);
    try {
      await withFwdAgents([opts], async (agent) => {
        agents.push(agent);
        const fport = await forwardPort(agent);
        // The cause under test and nothing else: the line ends there.
        const down = new RegExp(`hcmd warning: c: control channel down: ${kase.why.source}$`);
        // The listener fails, says why, and tries again (twice at least).
        const t0 = Date.now();
        await until(() => agent.count(down) >= 2 || !agent.alive(), T(15000), () => `two "${down.source}" lines\n${agent.tail(10)}`);
        assert.ok(agent.alive(), `hcmd exited: ${JSON.stringify(agent.exit)}\n${agent.tail(20)}`);
        const retryMs = Date.now() - t0;
        // A forward's client: closed, nothing received, cause logged.
        const mark = agent.mark();
        const w = await tcpWatchClose('127.0.0.1', fport, { ms: T(10000), send: Buffer.from('hello') });
        assert.equal(w.timedOut, false, `forward client still open\n${agent.tail(10)}`);
        assert.equal(w.received, 0);
        await agent.waitForLog(new RegExp(`hcmd warning: forward f: client 127\\.0\\.0\\.1:${w.localPort}: relay connection failed: ${kase.why.source}\n`), T(5000), mark);
        // hcmd test: the TLS step fails with the same words.
        const r = await hcmdTest(agent);
        const what = `hcmd test output:\n${r.out}${r.err}`;
        assert.equal(r.code, 1, what);
        assert.match(r.steps[r.steps.length - 1] || '', new RegExp(`^  FAIL  namespace TCP\\+TLS\\s+localhost:${srv.port}: ${kase.why.source}$`), what);
        assert.deepEqual(r.steps.slice(0, -1).filter((l) => !/^  ok /.test(l)), [], what);
        // hcmd is still up and still retrying.
        const before = agent.count(down);
        await until(() => agent.count(down) > before || !agent.alive(), T(10000), 'one more attempt');
        assert.ok(agent.alive(), `hcmd exited: ${JSON.stringify(agent.exit)}`);
        // The server: attempts arrived (TCP), no handshake completed, no byte of a request.
        if (srv instanceof TlsProbe) {
          assert.ok(srv.tcp >= 5, `server saw ${srv.tcp} TCP connections: ${srv.summary()}`);
          assert.equal(srv.secure.length, 0, `a handshake completed: ${srv.summary()}`);
          assert.equal(srv.appBytes, 0, `application bytes reached the server: ${srv.summary()}`);
        } else {
          // Its stdout may trail hcmd's log by a moment.
          await until(() => srv.count(/no shared cipher/) >= 5, T(5000), () => `5 failed handshakes at s_server: ${srv.summary()}\n${srv.out.slice(0, 2000)}`);
          assert.equal(srv.count(/error:/), srv.count(/no shared cipher/), srv.summary());
        }
        assert.equal(agent.count(/relay answered/), 0, `hcmd got an HTTP answer:\n${agent.tail(10)}`);
        assert.equal(agent.count(/connected to \S+ as listener/), 0);
        assertNoSecrets({ hcmd: agent.stderr(), 'hcmd test': r.out + r.err }, keys);
        console.log(`# ${kase.name}: ${agent.count(down)} listener attempts, first two within ${retryMs} ms; ${srv.summary()}`);
        console.log(`# log: ${agent.lines(/control channel down/)[0].replace(/^\S+ /, '')}`);
      });
    } finally {
      await srv.close();
    }
  });
}

// The positive controls: the same servers with the good certificate and
// TLS 1.2 with AEAD suites. The requests get through (and are refused).
test('1. positive control: Node TLS 1.2 + AEAD + good certificate: the listen and connect requests reach the server', { timeout: T(60000) }, async () => {
  const srv = await nodeServer('good')();
  const keys = [newKey(), newKey()];
  try {
    await withFwdAgents([await tlsAgentOpts(`hcmd-${agents.length}`, srv.port, keys)], async (agent) => {
      agents.push(agent);
      const fport = await forwardPort(agent);
      await agent.waitForLog(/hcmd warning: c: control channel down: relay answered 401/, T(10000));
      const mark = agent.mark();
      const w = await tcpWatchClose('127.0.0.1', fport, { ms: T(10000) });
      assert.equal(w.timedOut, false);
      await agent.waitForLog(new RegExp(`forward f: client 127\\.0\\.0\\.1:${w.localPort} refused: relay answered 401`), T(5000), mark);
      const r = await hcmdTest(agent);
      const what = `hcmd test output:\n${r.out}${r.err}`;
      assert.match(r.out, new RegExp(`^  ok    namespace TCP\\+TLS\\s+localhost:${srv.port}, TLS-ECDHE-RSA-WITH-\\S+, certificate and name verified`, 'm'), what);
      assert.match(r.steps[r.steps.length - 1] || '', /^  FAIL  listen authorization .*\b401\b/, what);
      assert.ok(srv.requests.some((l) => /^GET \/\$hc\/hc\?sb-hc-action=listen&sb-hc-id=\S+ HTTP\/1\.1$/.test(l)), srv.summary());
      assert.ok(srv.requests.some((l) => /^GET \/\$hc\/hc\?sb-hc-action=connect\S* HTTP\/1\.1$/.test(l)), srv.summary());
      assert.ok(srv.secure.length >= 3, srv.summary());
      for (const s of srv.secure) {
        assert.equal(s.protocol, 'TLSv1.2');
        assert.match(s.cipher, /GCM|CHACHA20/);
      }
      assertNoSecrets({ hcmd: agent.stderr(), 'hcmd test': r.out + r.err }, keys);
      console.log(`# positive (node): ${srv.summary()}; suites ${[...new Set(srv.secure.map((s) => s.cipher))].join(',')}`);
    });
  } finally {
    await srv.close();
  }
});

test('1. positive control: openssl s_server -tls1_2 with its default suites and the good certificate answers hcmd', { timeout: T(60000) }, async () => {
  const srv = await sServer(['-tls1_2'])();
  const keys = [newKey(), newKey()];
  try {
    await withFwdAgents([await tlsAgentOpts(`hcmd-${agents.length}`, srv.port, keys)], async (agent) => {
      agents.push(agent);
      await forwardPort(agent);
      // s_server -www answers the upgrade with its 200 status page.
      await agent.waitForLog(/hcmd warning: c: control channel down: relay answered 200/, T(10000));
      const r = await hcmdTest(agent);
      assert.match(r.out, /^  ok    namespace TCP\+TLS\s+localhost:\d+, TLS-ECDHE-RSA-WITH-\S*(GCM|CHACHA20)\S*, certificate and name verified\n  FAIL  listen authorization /m, r.out);
      assert.equal(srv.count(/error:/), 0, srv.summary());
      console.log(`# positive (s_server): ${srv.summary()}`);
    });
  } finally {
    await srv.close();
  }
});

// ------------------------------------- 2. nothing steers the agent ---------

// A TCP server that greets with `banner` and echoes; counts connections.
const bannerServer = (banner) =>
  tcpServer((s) => {
    s.write(banner);
    s.pipe(s);
  });

// A TLS decoy (the good localhost/127.0.0.1 certificate: hcmd would verify
// it) that counts TCP connections.
async function tlsDecoy() {
  const self = { connections: 0, sockets: new Set() };
  self.server = tls.createServer({ key: pki.key, cert: pki.cert('good') }, (s) => {
    s.on('error', () => {});
    s.end('DECOY\n');
  });
  self.server.on('connection', (raw) => {
    self.connections++;
    self.sockets.add(raw);
    raw.on('close', () => self.sockets.delete(raw));
  });
  self.server.on('tlsClientError', () => {});
  await new Promise((r) => self.server.listen(0, '127.0.0.1', r));
  self.port = self.server.address().port;
  self.close = async () => {
    servers.delete(self);
    for (const s of self.sockets) s.destroy();
    await new Promise((r) => self.server.close(() => r()));
  };
  servers.add(self);
  return self;
}

test('2a. through hcrelay, no sender trick makes hcmd dial anything but its configured endpoint', { timeout: T(90000) }, async () => {
  relay = await startRelay({ relay: { log_level: 'info' } });
  const real = await bannerServer('REAL\n');
  const decoy = await bannerServer('DECOY\n');
  const decoyTls = await tlsDecoy();
  const D = decoy.port;
  const DT = decoyTls.port;
  const token = senderToken(relay, 'hc');
  const base = relay.connectUrl('hc');
  const hostPort = `localhost:${relay.port}`;

  // Steering attempts through ws 8 (the relay may refuse some: fine).
  const wsTries = [
    { name: 'path suffix host:port', url: `${relay.base}/$hc/hc/127.0.0.1:${D}?sb-hc-action=connect` },
    { name: 'path suffix URL', url: `${relay.base}/$hc/hc/wss://127.0.0.1:${DT}/x?sb-hc-action=connect` },
    { name: 'path suffix @host', url: `${relay.base}/$hc/hc/@127.0.0.1:${D}?sb-hc-action=connect` },
    { name: 'path suffix encoded //host', url: `${relay.base}/$hc/hc/%2F%2F127.0.0.1:${D}?sb-hc-action=connect` },
    {
      name: 'query endpoint/host/port/address',
      url: `${base}&endpoint=127.0.0.1:${D}&host=127.0.0.1&port=${D}&address=${encodeURIComponent(`wss://127.0.0.1:${DT}/`)}&sb-hc-endpoint=127.0.0.1:${D}&sb-hc-address=${encodeURIComponent(`ws://127.0.0.1:${D}/`)}`,
    },
    { name: 'sb-hc-id host:port', url: `${base}&sb-hc-id=127.0.0.1:${D}` },
    { name: 'sb-hc-id URL', url: `${base}&sb-hc-id=${encodeURIComponent(`wss://127.0.0.1:${DT}/`)}` },
    { name: 'Host header', url: base, headers: { Host: `127.0.0.1:${D}` } },
    {
      name: 'X-Forwarded-* and Forwarded',
      url: base,
      headers: {
        'X-Forwarded-Host': `127.0.0.1:${D}`,
        'X-Forwarded-For': '127.0.0.1',
        'X-Forwarded-Port': String(D),
        'X-Forwarded-Proto': 'ws',
        Forwarded: `for=127.0.0.1;host="127.0.0.1:${D}";proto=ws`,
        'X-Original-URL': `wss://127.0.0.1:${DT}/`,
        'X-Rewrite-URL': `ws://127.0.0.1:${D}/`,
        'X-Real-IP': '127.0.0.1',
      },
    },
    {
      name: 'sb-hc-* and endpoint lookalike headers',
      url: base,
      headers: {
        'sb-hc-endpoint': `127.0.0.1:${D}`,
        'sb-hc-address': `wss://127.0.0.1:${DT}/`,
        'sb-hc-action': 'accept',
        'Sb-Hc-Id': `127.0.0.1:${D}`,
        Endpoint: `127.0.0.1:${D}`,
        Location: `ws://127.0.0.1:${D}/`,
        Origin: `https://127.0.0.1:${DT}`,
      },
    },
    { name: 'subprotocol', url: base, protocols: ['endpoint', `host-127.0.0.1-${D}`] },
  ];
  // Hand-made requests for what ws 8 will not send.
  const rawTries = [
    { name: 'absolute-form target wss://decoy', target: `wss://127.0.0.1:${DT}/$hc/hc?sb-hc-action=connect` },
    { name: 'absolute-form target https://relay', target: `https://${hostPort}/$hc/hc?sb-hc-action=connect` },
    { name: 'target //decoy/...', target: `//127.0.0.1:${D}/$hc/hc?sb-hc-action=connect` },
    { name: 'two Host headers', target: '/$hc/hc?sb-hc-action=connect', headers: { Host: `127.0.0.1:${D}` } },
    { name: 'Sec-WebSocket-Protocol with a URL', target: '/$hc/hc?sb-hc-action=connect', headers: { 'Sec-WebSocket-Protocol': `ws://127.0.0.1:${D}/, wss://127.0.0.1:${DT}/` } },
    { name: 'X-Forwarded-Host and a path suffix with a port', target: `/$hc/hc/:${D}?sb-hc-action=connect`, headers: { 'X-Forwarded-Host': `127.0.0.1:${D}` } },
  ];

  await withFwdAgents(
    [{ relay, name: `hcmd-${agents.length}`, connections: [{ name: 'hc', hc: 'hc', rule: 'hc/listenOnly', endpoint: `127.0.0.1:${real.port}` }] }],
    async (agent) => {
      agents.push(agent);
      const results = [];
      // One tunnel: the banner of the real endpoint first, then an echo.
      const checkWsTunnel = async (ws) => {
        const got = [];
        ws.on('message', (d) => got.push(Buffer.from(d)));
        await until(() => Buffer.concat(got).length >= 5 || ws.readyState > 1, T(10000), 'banner');
        const nonce = crypto.randomBytes(8).toString('hex');
        ws.send(Buffer.from(nonce));
        await until(() => Buffer.concat(got).length >= 5 + nonce.length || ws.readyState > 1, T(10000), 'echo');
        ws.terminate();
        return Buffer.concat(got).toString('latin1') === `REAL\n${nonce}` ? 'real endpoint' : `unexpected ${JSON.stringify(Buffer.concat(got).toString('latin1'))}`;
      };
      for (const t of wsTries) {
        const r = await tryWs(t.url, { ca: relay.ca, token, headers: t.headers || {}, protocols: t.protocols });
        results.push({ name: t.name, outcome: r.ok ? await checkWsTunnel(r.ws) : `relay refused: ${describe(r)}` });
      }
      for (const t of rawTries) {
        const sock = await tlsConnect(relay);
        const key = crypto.randomBytes(16).toString('base64');
        const headP = readHttpHead(sock);
        const req = upgradeRequest(relay, '/', { ServiceBusAuthorization: token, ...(t.headers || {}) }, { key }).replace(/^GET \/ /, `GET ${t.target} `);
        sock.write(req);
        const head = await headP;
        if (!head || head.status !== 101) {
          results.push({ name: t.name, outcome: `relay refused: ${head ? head.statusLine : 'closed'}` });
          sock.destroy();
          continue;
        }
        assert.equal(head.headers['sec-websocket-accept'], wsAcceptFor(key));
        const fr = new FrameReader(sock, head.rest);
        const f1 = await fr.waitFrame((f) => f.opcode === 2 || f.opcode === 1 || f.opcode === 8, T(10000));
        sock.write(encodeFrame(Buffer.from('ping'), { opcode: 2 }));
        const f2 = await fr.waitFrame((f) => f.opcode === 2 || f.opcode === 8, T(10000), fr.frames.indexOf(f1) + 1);
        const text = [f1, f2].map((f) => (f ? f.payload.toString('latin1') : '<none>')).join('');
        results.push({ name: t.name, outcome: text === 'REAL\nping' ? 'real endpoint' : `unexpected ${JSON.stringify(text)}` });
        sock.destroy();
      }
      for (const r of results) console.log(`# ${r.name}: ${r.outcome}`);
      const tunnels = results.filter((r) => r.outcome === 'real endpoint').length;
      // Wait for the audit lines of every tunnel, then look at them all.
      await until(() => agent.tunnels().length >= tunnels, T(10000), () => `${tunnels} tunnel lines\n${agent.tail(10)}`);
      await sleep(T(300)); // a stray dial would have landed by now
      assert.deepEqual(results.filter((r) => r.outcome !== 'real endpoint' && !/^relay refused/.test(r.outcome)), [], 'a tunnel ended elsewhere');
      assert.equal(decoy.connections, 0, 'hcmd dialled the TCP decoy');
      assert.equal(decoyTls.connections, 0, 'hcmd dialled the TLS decoy');
      assert.equal(real.connections, tunnels, 'endpoint connections != tunnels');
      for (const l of agent.tunnels()) assert.equal(l.endpoint, `127.0.0.1:${real.port}`, l.line);
      assert.doesNotMatch(agent.stderr(), new RegExp(`127\\.0\\.0\\.1:(${D}|${DT})\\b`), 'a decoy address in the hcmd log');
      // The plain requests must have gone through: else this proved nothing.
      const mustTunnel = ['path suffix host:port', 'path suffix @host', 'query endpoint/host/port/address', 'sb-hc-id host:port', 'X-Forwarded-* and Forwarded', 'sb-hc-* and endpoint lookalike headers', 'subprotocol', 'Sec-WebSocket-Protocol with a URL'];
      for (const n of mustTunnel) assert.equal(results.find((r) => r.name === n).outcome, 'real endpoint', n);
      const keys = Object.values(relay.keys).flatMap((k) => [k.primary, k.secondary]);
      assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keys);
      console.log(`# ${tunnels} of ${results.length} attempts tunnelled, all to 127.0.0.1:${real.port}; decoys: 0 connections`);
    },
  );
  await real.close();
  await decoy.close();
  await decoyTls.close();
});

// A fake relay over TLS (the good certificate) that takes hcmd's control
// channel and accepts rendezvous for any id; the test sends accept
// messages of its choosing. Records every upgrade and every TLS error.
class FakeRelay {
  constructor() {
    this.upgrades = []; // { action, id, protocol, injected }
    this.rendezvous = new Map(); // id -> ws
    this.tcp = 0;
    this.clientErrors = [];
    this.ctl = null;
    this.sockets = new Set();
  }
  // Two ports, the same handlers: the relay's host on another port.
  async start() {
    this.wss = new WebSocket.Server({ noServer: true, perMessageDeflate: false });
    this.servers = [this._server(), this._server()];
    for (const srv of this.servers) await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    this.port = this.servers[0].address().port;
    this.port2 = this.servers[1].address().port;
    servers.add(this);
    return this;
  }
  _server() {
    const server = https.createServer({ key: pki.key, cert: pki.cert('good') }, (req, res) => {
      res.writeHead(404);
      res.end();
    });
    server.on('connection', (raw) => {
      this.tcp++;
      this.sockets.add(raw);
      raw.on('close', () => this.sockets.delete(raw));
    });
    server.on('tlsClientError', (e) => this.clientErrors.push(e.code || e.message));
    server.on('upgrade', (req, sock, head) => {
      const u = new URL(req.url, 'https://localhost');
      const action = u.searchParams.get('sb-hc-action');
      const id = u.searchParams.get('sb-hc-id');
      this.upgrades.push({ action, id, port: sock.localPort, protocol: req.headers['sec-websocket-protocol'] || null, injected: req.headers['x-injected'] !== undefined });
      this.wss.handleUpgrade(req, sock, head, (ws) => {
        ws.on('error', () => {});
        ws.got = [];
        ws.on('message', (d) => ws.got.push(Buffer.from(d)));
        if (action === 'listen') this.ctl = ws;
        else this.rendezvous.set(id, ws);
      });
    });
    return server;
  }
  accept(address, id, headers = {}) {
    this.ctl.send(
      JSON.stringify({
        accept: {
          address,
          id,
          connectHeaders: { 'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13', ...headers },
          remoteEndpoint: { address: '127.0.0.1', port: 40000 },
        },
      }),
    );
  }
  async close() {
    servers.delete(this);
    for (const ws of this.rendezvous.values()) ws.terminate();
    if (this.ctl) this.ctl.terminate();
    for (const s of this.sockets) s.destroy();
    for (const srv of this.servers) await new Promise((r) => srv.close(() => r()));
  }
}

test('2b. a relay\'s accept naming another host or no TLS is ignored; accepts naming the relay\'s host (any port) still work', { timeout: T(90000) }, async () => {
  const fake = await new FakeRelay().start();
  const real = await bannerServer('REAL\n');
  const decoy = await bannerServer('DECOY\n');
  const decoyTls = await tlsDecoy();
  const P = fake.port;
  const q = (id) => `/$hc/hc?sb-hc-action=accept&sb-hc-id=${id}`;
  const bad = [
    { id: 'b2', address: `wss://127.0.0.1:${decoyTls.port}${q('b2')}`, what: 'other host and port (TLS would verify)' },
    { id: 'b3', address: `wss://127.0.0.1:${P}${q('b3')}`, what: 'the relay by another name' },
    { id: 'b4', address: `ws://localhost:${decoy.port}${q('b4')}`, what: 'no TLS, other port' },
    { id: 'b5', address: `ws://localhost:${P}${q('b5')}`, what: 'no TLS, the relay host and port' },
    { id: 'b6', address: `wss://localhost:${P}@127.0.0.1:${decoyTls.port}${q('b6')}`, what: 'userinfo that looks like the relay' },
    { id: 'b7', address: `https://localhost:${P}${q('b7')}`, what: 'not a WebSocket URL' },
  ];
  const key = newKey();
  const steer = { Host: `127.0.0.1:${decoy.port}`, 'X-Forwarded-Host': `127.0.0.1:${decoy.port}`, 'sb-hc-endpoint': `127.0.0.1:${decoy.port}` };
  try {
    await withFwdAgents(
      [
        {
          name: `hcmd-${agents.length}`,
          settings: { ca_file: pki.caFile, connect_timeout: 5, drain_timeout: 2 },
          connections: [{ name: 'c', connectionString: `Endpoint=sb://localhost:${P}/;SharedAccessKeyName=listen;SharedAccessKey=${key};EntityPath=hc`, endpoint: `127.0.0.1:${real.port}` }],
        },
      ],
      async (agent) => {
        agents.push(agent);
        assert.ok(fake.ctl, 'no control channel at the fake relay');
        // A good accept first: the fake relay and the path work.
        const good = async (id, address, headers) => {
          fake.accept(address, id, { ...steer, ...headers });
          await until(() => fake.rendezvous.has(id), T(10000), `rendezvous ${id}`);
          const ws = fake.rendezvous.get(id);
          const got = ws.got;
          await until(() => Buffer.concat(got).length >= 5, T(10000), `banner on ${id}`);
          ws.send(Buffer.from(id));
          await until(() => Buffer.concat(got).length >= 5 + id.length, T(10000), `echo on ${id}`);
          assert.equal(Buffer.concat(got).toString(), `REAL\n${id}`);
          ws.close();
        };
        await good('g1', `wss://localhost:${P}${q('g1')}`);
        for (const b of bad) {
          const mark = agent.mark();
          const endpointBefore = real.connections;
          fake.accept(b.address, b.id, steer);
          await agent.waitForLog(/hcmd warning: c: accept (ignored: its rendezvous|with a bad address)[^\n]*\n/, T(5000), mark);
          const line = agent.lines(/ c: accept /, mark)[0];
          console.log(`# ${b.what}: ${line.replace(/^\S+ /, '')}`);
          // Then an accept that names the relay: served, so the one before
          // had its chance to dial and did not.
          await good(`g-${b.id}`, `wss://localhost:${P}${q(`g-${b.id}`)}`);
          assert.equal(real.connections, endpointBefore + 1, `the endpoint was dialled for ${b.id}`);
        }
        // Another port of the relay's host: allowed (TLS checks the name).
        await good('g-port2', `wss://localhost:${fake.port2}${q('g-port2')}`);
        assert.equal(fake.upgrades.find((u) => u.id === 'g-port2').port, fake.port2);
        // Case and the path of a good address do not matter.
        await good('g-case', `wss://LocalHost:${P}/$hc/hc/x?y=1&sb-hc-action=accept&sb-hc-id=g-case`);
        // A protocol with a line break cannot add a header to hcmd's request.
        await good('g-proto', `wss://localhost:${P}${q('g-proto')}`, { 'Sec-WebSocket-Protocol': 'p1\r\nX-Injected:yes' });
        await sleep(T(300));
        const badIds = new Set(bad.map((b) => b.id));
        assert.deepEqual(fake.upgrades.filter((u) => badIds.has(u.id)), [], 'a bad rendezvous reached the fake relay');
        assert.equal(decoy.connections, 0, 'hcmd dialled the TCP decoy');
        assert.equal(decoyTls.connections, 0, 'hcmd dialled the TLS decoy');
        assert.deepEqual(fake.clientErrors, [], 'a TLS error at the fake relay (plain ws to its port?)');
        assert.equal(fake.upgrades.filter((u) => u.action === 'listen').length, 1, 'the control channel was reopened');
        assert.equal(agent.count(/control channel down/), 0, agent.tail(10));
        const goods = fake.upgrades.filter((u) => u.action === 'accept');
        assert.equal(goods.length, bad.length + 4);
        assert.equal(real.connections, goods.length);
        const proto = goods.find((u) => u.id === 'g-proto');
        assert.equal(proto.injected, false, 'a header was injected through Sec-WebSocket-Protocol');
        assert.equal(proto.protocol, 'p1', 'the first protocol name');
        for (const l of agent.tunnels()) assert.equal(l.endpoint, `127.0.0.1:${real.port}`, l.line);
        assertNoSecrets({ hcmd: agent.stderr() }, [key]);
        console.log(`# ${bad.length} bad accepts ignored, ${goods.length} good ones served; decoys 0, endpoint ${real.connections}`);
      },
    );
  } finally {
    await fake.close();
    await real.close();
    await decoy.close();
    await decoyTls.close();
  }
});

// ------------------------------------------------------------ the end ------

test('every hcmd exited 0 on SIGTERM without a sanitizer report; hcmd test runs too', { timeout: T(10000) }, () => {
  assert.ok(agents.length >= CASES.length + 4, `only ${agents.length} hcmd daemons ran`);
  for (const a of agents) {
    assert.deepEqual(a.exit, { code: 0, signal: null }, `${a.name} exit\n${a.tail(20)}`);
    assert.equal(a.sanitizerReport(), null, `${a.name}: ${a.sanitizerReport()}`);
  }
  assert.ok(testRuns.length >= CASES.length + 2, `only ${testRuns.length} hcmd test runs`);
  for (const r of testRuns) {
    assert.equal(r.signal, null, `${r.what} killed by ${r.signal}`);
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error|UndefinedBehaviorSanitizer/, r.what);
  }
});

relayEpilogue(() => relay, 'hcrelay survived, no sanitizer report, exits 0 on SIGTERM');
