'use strict';
// Helpers for the hcrelay interop suite: test PKI, relay.ini, spawning the
// relay and reading its log, SAS tokens, free ports.
//
// Everything here talks to loopback only.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const dns = require('node:dns');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { recordKey, saveOutput } = require('./suitelog');

dns.setDefaultResultOrder('ipv4first');

const INTEROP_DIR = path.resolve(__dirname, '..');
const HCRELAY = path.resolve(INTEROP_DIR, process.env.HCRELAY || '../../build/hcrelay');

// Slow builds (ASan) get more time; every wait below is still bounded.
const SLOW = /asan|ubsan|valgrind/i.test(HCRELAY) || !!process.env.HCRELAY_SLOW;
const T = (ms) => (SLOW ? ms * 3 : ms);

const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|ThreadSanitizer/;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Race a promise against a timer; rejects with a message naming `what`.
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function mkTempDir(tag = 'hcrelay-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), tag));
}

function rmTempDir(dir) {
  if (!dir || process.env.HCRELAY_KEEP_TMP) return;
  fs.rmSync(dir, { recursive: true, force: true });
}

// A free TCP port on 127.0.0.1 (the relay itself is normally started with
// port 0; this is for tests that need a port nobody listens on).
// A port is never handed out twice by one test process (the kernel may
// offer a just-closed port again at once).
const givenPorts = new Set();
async function freePort() {
  for (let i = 0; ; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (!givenPorts.has(port) || i >= 50) {
      givenPorts.add(port);
      return port;
    }
  }
}

// ---------------------------------------------------------------- PKI ------

// Test CA plus a server certificate for `localhost` (and 127.0.0.1), written
// into dir. Returns file names and the CA PEM.
function makeCerts(dir) {
  const f = (n) => path.join(dir, n);
  const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.writeFileSync(
    f('ca.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  );
  fs.writeFileSync(
    f('server.ext'),
    'basicConstraints=critical,CA:FALSE\n' +
      'keyUsage=critical,digitalSignature,keyEncipherment\n' +
      'extendedKeyUsage=serverAuth\n' +
      'subjectAltName=DNS:localhost,IP:127.0.0.1\n' +
      'authorityKeyIdentifier=keyid\n',
  );
  ossl(['genrsa', '-out', f('ca.key'), '2048']);
  ossl(['req', '-new', '-key', f('ca.key'), '-subj', '/CN=hcrelay interop test CA', '-out', f('ca.csr')]);
  ossl(['x509', '-req', '-in', f('ca.csr'), '-signkey', f('ca.key'), '-days', '2',
    '-extfile', f('ca.ext'), '-out', f('ca.crt')]);
  ossl(['genrsa', '-out', f('relay.key'), '2048']);
  ossl(['req', '-new', '-key', f('relay.key'), '-subj', '/CN=localhost', '-out', f('relay.csr')]);
  ossl(['x509', '-req', '-in', f('relay.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-days', '2', '-extfile', f('server.ext'), '-out', f('relay.crt')]);
  return {
    caFile: f('ca.crt'),
    certFile: f('relay.crt'),
    keyFile: f('relay.key'),
    ca: fs.readFileSync(f('ca.crt')),
  };
}

// -------------------------------------------------------------- config -----

function newKey() {
  const k = crypto.randomBytes(32).toString('base64');
  recordKey(k);
  return k;
}

// A hybrid connection with the rules "listen" (Listen) and "send" (Send);
// `extra` is merged in (userMetadata, requiresClientAuthorization...).
function hcWithRules(name, extra = {}) {
  return {
    name,
    rules: [
      { name: 'listen', rights: 'Listen' },
      { name: 'send', rights: 'Send' },
    ],
    ...extra,
  };
}

// RootManageSharedAccessKey on the namespace, and hcWithRules(name) for
// each name.
function listenSendEntities(names) {
  return { rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send' }], hcs: names.map((n) => hcWithRules(n)) };
}

// The standard fixture used by most test files.
//   namespace rules: RootManageSharedAccessKey (Manage Listen Send),
//                    nsListen (Listen), nsSend (Send)
//   hybrid connections: hc (auth, metadata, rules hc/listenOnly, hc/sendOnly),
//                       other, open (requires_client_authorization = false)
function standardEntities() {
  return {
    rules: [
      { name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send', secondary: true },
      { name: 'nsListen', rights: 'Listen' },
      { name: 'nsSend', rights: 'Send' },
    ],
    hcs: [
      {
        name: 'hc',
        requiresClientAuthorization: true,
        userMetadata: '[{"key":"endpoint","value":"localhost:6379"},{"key":"note","value":"a<b & c>d"}]',
        rules: [
          { name: 'listenOnly', rights: 'Listen' },
          { name: 'sendOnly', rights: 'Send' },
        ],
      },
      { name: 'other', requiresClientAuthorization: true, rules: [] },
      { name: 'open', requiresClientAuthorization: false, rules: [] },
    ],
  };
}

// Writes relay.ini; fills in keys. Returns { iniFile, keys } where
// keys['RULE'] / keys['hc/RULE'] = { primary, secondary }.
function writeConfig(dir, certs, { relay = {}, rules = [], hcs = [] } = {}) {
  const keys = {};
  const lines = [];
  const r = {
    listen: '127.0.0.1:0',
    cert_file: certs.certFile,
    key_file: certs.keyFile,
    hostname: 'localhost',
    log_level: 'debug',
    handshake_timeout: 10,
    rendezvous_timeout: 30,
    token_grace: 300,
    ...relay,
  };
  lines.push('; generated by test/interop/lib/relay.js', '[relay]');
  for (const [k, v] of Object.entries(r)) lines.push(`${k} = ${v}`);
  const ruleLines = (fullName, rule) => {
    const primary = rule.primary || newKey();
    const secondary = rule.secondary === true ? newKey() : rule.secondary || null;
    keys[fullName] = { primary, secondary };
    recordKey(primary);
    recordKey(secondary);
    lines.push('', `[rule ${fullName}]`, `rights = ${rule.rights}`, `primary_key = ${primary}`);
    if (secondary) lines.push(`secondary_key = ${secondary}`);
  };
  for (const rule of rules) ruleLines(rule.name, rule);
  for (const hc of hcs) {
    lines.push('', `[hybrid-connection ${hc.name}]`);
    lines.push(`requires_client_authorization = ${hc.requiresClientAuthorization === false ? 'false' : 'true'}`);
    if (hc.userMetadata !== undefined) lines.push(`user_metadata = ${hc.userMetadata}`);
    for (const rule of hc.rules || []) ruleLines(`${hc.name}/${rule.name}`, rule);
  }
  const iniFile = path.join(dir, 'relay.ini');
  fs.writeFileSync(iniFile, lines.join('\n') + '\n', { mode: 0o600 });
  fs.chmodSync(iniFile, 0o600); // it holds keys
  return { iniFile, keys };
}

// ---------------------------------------------------------------- relay ----

class Relay {
  constructor(dir, certs, iniFile, keys, entities) {
    this.dir = dir;
    this.certs = certs;
    this.ca = certs.ca;
    this.caFile = certs.caFile;
    this.iniFile = iniFile;
    this.keys = keys;
    this.entities = entities;
    this.port = 0;
    this.host = 'localhost';
    this._stderr = [];
    this._stdout = [];
    this._logWaiters = [];
    this.exit = null; // { code, signal } once exited
  }

  get base() {
    return `wss://localhost:${this.port}`;
  }
  get httpsBase() {
    return `https://localhost:${this.port}`;
  }
  listenUrl(hc, extra = '') {
    return `${this.base}/$hc/${hc}?sb-hc-action=listen${extra}`;
  }
  connectUrl(hc, extra = '') {
    return `${this.base}/$hc/${hc}?sb-hc-action=connect${extra}`;
  }
  key(rule) {
    const k = this.keys[rule];
    if (!k) throw new Error(`no such rule in fixture: ${rule}`);
    return k.primary;
  }

  // hyco-ws createRelayToken for `uri` with rule 'NAME' (namespace) or
  // 'HC/NAME' (entity rule; skn is NAME).
  token(uri, rule, expirySeconds) {
    return hycoToken(uri, rule.split('/').pop(), this.key(rule), expirySeconds);
  }
  // Hand-made token over the unencoded resource URI (see sasToken).
  sas(resourceUri, rule, opts) {
    return sasToken(resourceUri, rule.split('/').pop(), this.key(rule), opts);
  }

  stderr() {
    return this._stderr.join('');
  }
  stdout() {
    return this._stdout.join('');
  }
  // Last n stderr lines, for assertion messages.
  tail(n = 25) {
    return this.stderr().split('\n').slice(-n - 1).join('\n');
  }
  alive() {
    return this.exit === null && this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  _onData(chunk) {
    this._stderr.push(chunk);
    const text = this.stderr();
    this._logWaiters = this._logWaiters.filter((w) => {
      const m = text.slice(w.from).match(w.re);
      if (m) {
        w.resolve(m);
        return false;
      }
      return true;
    });
  }

  // Waits for a stderr line matching re, written after offset `from`
  // (default: anywhere). Resolves with the match.
  waitForLog(re, ms = T(5000), from = 0) {
    const m = this.stderr().slice(from).match(re);
    if (m) return Promise.resolve(m);
    return withTimeout(
      new Promise((resolve, reject) => {
        this._logWaiters.push({ re, from, resolve, reject });
      }),
      ms,
      `relay log line ${re}`,
    );
  }

  async start() {
    if (!fs.existsSync(HCRELAY)) {
      throw new Error(`relay binary not found: ${HCRELAY} (set HCRELAY or run make)`);
    }
    this.proc = spawn(HCRELAY, ['-c', this.iniFile], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1' },
    });
    // never leave a relay behind if this test process dies
    const killOnExit = () => {
      try {
        if (this.alive()) this.proc.kill('SIGKILL');
      } catch {}
    };
    process.once('exit', killOnExit);
    this.proc.once('exit', () => process.removeListener('exit', killOnExit));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.on('data', (c) => this._onData(c));
    this.proc.stdout.on('data', (c) => this._stdout.push(c));
    this._exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        saveOutput('hcrelay', this.stderr());
        for (const w of this._logWaiters) w.reject(new Error(`relay exited (${code}/${signal}) while waiting for ${w.re}\n${this.tail()}`));
        this._logWaiters = [];
        resolve(this.exit);
      });
    });
    let m;
    try {
      m = await Promise.race([
        this.waitForLog(/listening on (\S+):(\d+)/, T(10000)),
        this._exited.then((e) => {
          throw new Error(`relay exited early (${e.code}/${e.signal})`);
        }),
      ]);
    } catch (e) {
      await this.stop();
      e.message += `\nrelay stderr:\n${this.tail(40)}`;
      throw e;
    }
    this.port = Number(m[2]);
    if (!this.port) throw new Error(`bad port in log line: ${m[0]}`);
    return this;
  }

  // With HCRELAY_LOG_DIR set, the relay's stderr is saved there as
  // TESTFILE-PORT.log when it stops (for CI artefacts / bug reports).
  _saveLog() {
    const d = process.env.HCRELAY_LOG_DIR;
    if (!d || this._logSaved) return;
    this._logSaved = true;
    try {
      fs.mkdirSync(d, { recursive: true });
      const name = path.basename(process.argv[1] || 'relay', '.js');
      fs.writeFileSync(path.join(d, `${name}-${this.port}.log`), this.stderr());
    } catch {}
  }

  // SIGTERM, then SIGKILL after a bounded wait. Resolves { code, signal }.
  async stop(ms = T(5000)) {
    if (!this.proc) return null;
    if (this.exit) {
      this._saveLog();
      return this.exit;
    }
    try {
      return await this._stop(ms);
    } finally {
      this._saveLog();
    }
  }

  async _stop(ms) {
    try {
      this.proc.kill('SIGTERM');
    } catch {}
    try {
      return await withTimeout(this._exited, ms, 'relay exit after SIGTERM');
    } catch {
      try {
        this.proc.kill('SIGKILL');
      } catch {}
      await withTimeout(this._exited, 5000, 'relay exit after SIGKILL').catch(() => {});
      return { code: null, signal: 'SIGKILL', forced: true };
    }
  }

  sanitizerReport() {
    const text = this.stderr();
    const i = text.search(SANITIZER_RE);
    return i < 0 ? null : text.slice(Math.max(0, i - 200), i + 3000);
  }

  async cleanup() {
    await this.stop();
    if (this.ownDir !== false) rmTempDir(this.dir);
  }
}

// Starts a relay in a new temp dir. opts: { relay: {...[relay] keys},
// entities: {rules, hcs} (default standardEntities()) }.
//   dir: use this directory (created if missing, never deleted) instead of
//   a fresh temp dir.
async function startRelay(opts = {}) {
  const own = !opts.dir;
  const dir = own ? mkTempDir() : opts.dir;
  if (!own) fs.mkdirSync(dir, { recursive: true });
  try {
    const certs = makeCerts(dir);
    const entities = opts.entities || standardEntities();
    const { iniFile, keys } = writeConfig(dir, certs, { relay: opts.relay || {}, ...entities });
    const relay = new Relay(dir, certs, iniFile, keys, entities);
    relay.ownDir = own;
    await relay.start();
    return relay;
  } catch (e) {
    if (own) rmTempDir(dir);
    throw e;
  }
}

// --------------------------------------------------------------- tokens ----

// Node-client token, exactly as hyco-ws makes it (port kept, no trailing /).
function hycoToken(uri, rule, key, expirySeconds) {
  return require('hyco-ws').createRelayToken(uri, rule, key, expirySeconds);
}

// Generic SAS token over resource URI `uri` (unencoded). Options:
//   se: absolute expiry (seconds); lowerEscapes: use %2f style escapes;
//   order: field order array.
function sasToken(uri, rule, key, { se, ttl = 3600, lowerEscapes = false, order } = {}) {
  const expiry = se !== undefined ? se : Math.floor(Date.now() / 1000) + ttl;
  let sr = encodeURIComponent(uri);
  if (lowerEscapes) sr = sr.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(`${sr}\n${expiry}`).digest('base64');
  const fields = { sr, sig: encodeURIComponent(sig), se: String(expiry), skn: rule };
  const keysInOrder = order || ['sr', 'sig', 'se', 'skn'];
  return 'SharedAccessSignature ' + keysInOrder.map((k) => `${k}=${fields[k]}`).join('&');
}

// .NET-style token: http://{host}/{path}/ (no port, trailing slash).
function dotnetToken(relay, hcPath, rule, key, opts) {
  return sasToken(`http://${relay.host}/${hcPath}/`, rule, key, opts);
}

module.exports = {
  hcWithRules,
  listenSendEntities,
  HCRELAY,
  INTEROP_DIR,
  SLOW,
  T,
  SANITIZER_RE,
  sleep,
  withTimeout,
  mkTempDir,
  rmTempDir,
  freePort,
  makeCerts,
  newKey,
  standardEntities,
  writeConfig,
  Relay,
  startRelay,
  hycoToken,
  sasToken,
  dotnetToken,
};
