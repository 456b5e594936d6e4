'use strict';
// Helpers for the operations tests (issue 5): a relay whose relay.ini the
// test rewrites and SIGHUPs, SIGHUP helpers for hcmd, a generic logged
// child process (for env that lib/agent.js and lib/relay.js do not pass,
// such as JOURNAL_STREAM), a systemd notify socket (python3), tinyproxy,
// gated and paced byte streams, and the "no secret in any log" check.
//
// Loopback only. Reuses lib/relay.js, lib/agent.js, lib/forward.js and
// lib/endpoints.js read-only.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { saveOutput } = require('./suitelog');
const assert = require('node:assert/strict');
const relayLib = require('./relay');
const { Relay, makeCerts, writeConfig, freePort, mkTempDir, rmTempDir, withTimeout, sleep, HCRELAY } = relayLib;
const { T, HCMD } = require('./agent');
const { tcpServer, Prng } = require('./endpoints');
const { FwdAgent, reEsc } = require('./forward');

const MiB = 1 << 20;

const asanEnv = () => ({ ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1' });

// ------------------------------------------------------------- relay -------

// A relay on a fixed port whose relay.ini can be rewritten (same keys
// unless told otherwise) and reloaded with SIGHUP.
//   entities: { rules: [...], hcs: [...] } as in lib/relay.js writeConfig,
//   with explicit `primary` / `secondary` keys where the test cares.
class RelayCtl {
  constructor({ relay = {}, entities }) {
    this.dir = mkTempDir('hcmd-ops-relay-');
    this.certs = makeCerts(this.dir);
    this.relayOpts = { log_level: 'info', ...relay };
    this.entities = entities;
    this.relay = null;
  }

  _write(entities, relayOpts) {
    return writeConfig(this.dir, this.certs, {
      relay: { ...relayOpts, listen: `127.0.0.1:${this.port}` },
      ...entities,
    });
  }

  async start() {
    this.port = await freePort();
    // Every key fixed now, so that a rewrite keeps what it does not change.
    const { iniFile, keys } = this._write(this.entities, this.relayOpts);
    this.entities = fixKeys(this.entities, keys);
    this.relay = new Relay(this.dir, this.certs, iniFile, keys, this.entities);
    this.relay.ownDir = false;
    await this.relay.start();
    this.iniFile = iniFile; // as given to -c: hcrelay names it so in errors
    return this.relay;
  }

  // Rewrites relay.ini with new entities / [relay] keys (not yet applied).
  rewrite({ entities = this.entities, relay = this.relayOpts } = {}) {
    const { keys } = this._write(entities, relay);
    this.entities = fixKeys(entities, keys);
    this.relayOpts = relay;
    this.pendingKeys = keys;
  }

  writeRaw(text) {
    fs.writeFileSync(this.iniFile, text, { mode: 0o600 });
    fs.chmodSync(this.iniFile, 0o600); // it holds keys
  }

  iniText() {
    return fs.readFileSync(this.iniFile, 'utf8');
  }

  // SIGHUP; waits for the reload's outcome. ok: expect "configuration
  // reloaded"; else expect "has errors" and resolves the error lines.
  async hup({ ok = true, ms = T(5000) } = {}) {
    const r = this.relay;
    const mark = r.stderr().length;
    r.proc.kill('SIGHUP');
    if (ok) {
      await r.waitForLog(/SIGHUP: configuration reloaded from .*\n/, ms, mark);
      if (this.pendingKeys) r.keys = this.pendingKeys;
      this.pendingKeys = null;
      return mark;
    }
    await r.waitForLog(/SIGHUP: .* has errors; the running configuration stays\n/, ms, mark);
    await sleep(50); // the FILE:LINE lines follow in the same write
    return mark;
  }

  async stop() {
    if (!this.relay) return [];
    const problems = [];
    const e = await this.relay.stop();
    if (e && (e.code !== 0 || e.signal !== null || e.forced)) problems.push(`hcrelay exit ${JSON.stringify(e)}`);
    const rep = this.relay.sanitizerReport();
    if (rep) problems.push(`sanitizer output in hcrelay stderr:\n${rep}`);
    return problems;
  }

  cleanup() {
    rmTempDir(this.dir);
  }
}

// The entities with the keys writeConfig chose written in.
function fixKeys(entities, keys) {
  const fix = (full, rule) => ({ ...rule, primary: keys[full].primary, secondary: keys[full].secondary || undefined });
  return {
    rules: (entities.rules || []).map((r) => fix(r.name, r)),
    hcs: (entities.hcs || []).map((h) => ({ ...h, rules: (h.rules || []).map((r) => fix(`${h.name}/${r.name}`, r)) })),
  };
}

// Runs body(ctl, relay) with a RelayCtl; the relay must exit 0 with no
// sanitizer output when the body passed.
async function withRelayCtl(opts, body) {
  const ctl = new RelayCtl(opts);
  let err = null;
  try {
    await ctl.start();
    await body(ctl, ctl.relay);
  } catch (e) {
    err = e;
  }
  const problems = await ctl.stop();
  const ctx = ctl.relay ? `\n--- hcrelay stderr (last 30 lines) ---\n${ctl.relay.tail(30)}` : '';
  ctl.cleanup();
  if (err) {
    try {
      err.message += (problems.length ? `\n[relay teardown] ${problems.join('\n')}` : '') + ctx;
    } catch {}
    throw err;
  }
  assert.deepEqual(problems, [], `hcrelay teardown${ctx}`);
}

// ----------------------------------------------------------- hcmd ----------

// SIGHUP to an Agent; waits for the outcome (see RelayCtl.hup).
async function hupAgent(agent, { ok = true, ms = T(5000) } = {}) {
  const mark = agent.mark();
  agent.proc.kill('SIGHUP');
  if (ok) await agent.waitForLog(/hcmd info: SIGHUP: configuration reloaded from .*\n/, ms, mark);
  else {
    await agent.waitForLog(/hcmd error: SIGHUP: .* has errors; the running configuration stays\n/, ms, mark);
    await sleep(50);
  }
  return mark;
}

// A FwdAgent whose config file is left readable by everybody (0644).
class LooseAgent extends FwdAgent {
  writeConfig() {
    super.writeConfig();
    fs.chmodSync(this.iniFile, 0o644);
  }
}

// ----------------------------------------------------- child process -------

// A child process whose stderr and stdout are kept and searchable. For
// runs with an environment that lib/agent.js / lib/relay.js do not pass.
class Proc {
  constructor(cmd, args, { env = {}, cwd, name = path.basename(cmd), dropEnv = [] } = {}) {
    const e = { ...process.env, ...asanEnv(), ...env };
    for (const k of dropEnv) delete e[k];
    this.name = name;
    this.text = '';
    this.stdout = '';
    this._waiters = [];
    this.exit = null;
    this.proc = spawn(cmd, args, { cwd, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    liveProcs.add(this);
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.on('data', (c) => this._on(c));
    this.proc.stdout.on('data', (c) => {
      this.stdout += c;
      this._on('');
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        saveOutput(this.name, this.text + this.stdout);
        liveProcs.delete(this);
        for (const w of this._waiters) w.reject(new Error(`${this.name} exited (${code}/${signal}) while waiting for ${w.re}\n${this.tail()}`));
        this._waiters = [];
        resolve(this.exit);
      });
    });
  }
  _on(c) {
    this.text += c;
    this._waiters = this._waiters.filter((w) => {
      const m = (w.stdout ? this.stdout : this.text).slice(w.from).match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }
  mark() {
    return this.text.length;
  }
  tail(n = 30) {
    return this.text.split('\n').slice(-n - 1).join('\n');
  }
  alive() {
    return this.exit === null;
  }
  waitForLog(re, ms = T(5000), from = 0, { stdout = false } = {}) {
    const m = (stdout ? this.stdout : this.text).slice(from).match(re);
    if (m) return Promise.resolve(m);
    if (this.exit) return Promise.reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before logging ${re}\n${this.tail()}`));
    let w;
    return withTimeout(
      new Promise((resolve, reject) => {
        w = { re, from, resolve, reject, stdout };
        this._waiters.push(w);
      }),
      ms,
      `${this.name} output ${re}`,
    ).finally(() => {
      this._waiters = this._waiters.filter((x) => x !== w);
    });
  }
  kill(sig) {
    try {
      this.proc.kill(sig);
    } catch {}
  }
  // SIGTERM, bounded wait, SIGKILL.
  async stop(ms = T(10000)) {
    if (this.exit) return { ...this.exit, forced: false };
    this.kill('SIGTERM');
    try {
      return { ...(await withTimeout(this.exited, ms, `${this.name} exit after SIGTERM`)), forced: false };
    } catch {
      this.kill('SIGKILL');
      await withTimeout(this.exited, 5000, `${this.name} exit after SIGKILL`).catch(() => {});
      return { code: null, signal: 'SIGKILL', forced: true };
    }
  }
}

const liveProcs = new Set();

// For a file's after() hook: SIGKILLs whatever a timed-out test left.
async function killAllProcs() {
  for (const p of [...liveProcs]) {
    p.kill('SIGKILL');
    await withTimeout(p.exited, 5000, 'exit after SIGKILL').catch(() => {});
  }
}

// ------------------------------------------------------ notify socket ------

// Receivers for the notify socket: each prints BOUND once bound, then
// every datagram as one line of hex. python3 when there is one, else perl
// (perl-base is on every Debian system).
const NOTIFY_PY = `
import binascii, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("BOUND", flush=True)
while True:
    print(binascii.hexlify(s.recv(65536)).decode(), flush=True)
`;
const NOTIFY_PL = `
use Socket;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!";
$| = 1;
print "BOUND\\n";
while (1) { my $d; defined(recv($s, $d, 65536, 0)) or die "recv: $!"; print unpack("H*", $d), "\\n"; }
`;

function notifyReceiver(sockPath) {
  const py = require('node:child_process').spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' });
  if (py.status === 0) return ['python3', ['-u', '-c', NOTIFY_PY, sockPath]];
  return ['perl', ['-e', NOTIFY_PL, sockPath]];
}

// A datagram UNIX socket (what systemd gives in NOTIFY_SOCKET), read by a
// small python3 (or perl) program; every datagram becomes { text, at }.
class NotifySink {
  static async open(dir, name = 'notify.sock') {
    const s = new NotifySink();
    s.path = path.join(dir, name);
    s.msgs = [];
    s._waiters = [];
    const [cmd, args] = notifyReceiver(s.path);
    s.proc = new Proc(cmd, args, { name: 'notify-sink' });
    let buf = '';
    s.proc.proc.stdout.on('data', (c) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'BOUND') continue;
        s.msgs.push({ text: Buffer.from(line, 'hex').toString('utf8'), at: Date.now() });
        s._waiters = s._waiters.filter((w) => !w());
      }
    });
    await s.proc.waitForLog(/^BOUND$/m, T(5000), 0, { stdout: true });
    return s;
  }
  mark() {
    return this.msgs.length;
  }
  // Resolves the first datagram after index `from` for which pred(text) is
  // true: { text, at, index }.
  waitFor(pred, what, ms = T(5000), from = 0) {
    const find = () => {
      for (let i = from; i < this.msgs.length; i++) if (pred(this.msgs[i].text)) return { ...this.msgs[i], index: i };
      return null;
    };
    const m = find();
    if (m) return Promise.resolve(m);
    return withTimeout(
      new Promise((resolve) => {
        this._waiters.push(() => {
          const x = find();
          if (x) resolve(x);
          return !!x;
        });
      }),
      ms,
      `notify datagram ${what} (have: ${JSON.stringify(this.msgs.slice(from).map((x) => x.text))})`,
    );
  }
  texts(from = 0) {
    return this.msgs.slice(from).map((m) => m.text);
  }
  async close() {
    await this.proc.stop(3000);
  }
}

// ---------------------------------------------------------- tinyproxy ------

// tinyproxy in the foreground on a free loopback port, with BasicAuth when
// user is given. Its log (stdout with -d) is kept.
async function startTinyproxy(dir, { user, pass } = {}) {
  const port = await freePort();
  const conf = path.join(dir, `tinyproxy-${port}.conf`);
  const lines = [`Port ${port}`, 'Listen 127.0.0.1', 'Allow 127.0.0.1', 'Timeout 600', 'MaxClients 100', 'LogLevel Connect'];
  if (user) lines.push(`BasicAuth ${user} ${pass}`);
  fs.writeFileSync(conf, lines.join('\n') + '\n');
  const p = new Proc('tinyproxy', ['-d', '-c', conf], { name: 'tinyproxy' });
  const t0 = Date.now();
  for (;;) {
    if (!p.alive()) throw new Error(`tinyproxy exited: ${JSON.stringify(p.exit)}\n${p.stdout}\n${p.text}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() - t0 > T(5000)) {
      await p.stop();
      throw new Error(`tinyproxy did not listen on ${port}:\n${p.stdout}\n${p.text}`);
    }
    await sleep(30);
  }
  return {
    port,
    proc: p,
    log: () => p.stdout + p.text,
    mark: () => (p.stdout + p.text).length,
    // CONNECT request lines logged after `from`.
    connects: (from = 0) => (p.stdout + p.text).slice(from).split('\n').filter((l) => /Request \(file descriptor \d+\): CONNECT /.test(l)),
    stop: () => p.stop(3000),
  };
}

// ------------------------------------------------------------ streams ------

// Lets a stream go on in steps: limit() is the number of bytes that may
// be sent so far: total*(k+1)/(steps+1) after k calls of advance().
class Gate {
  constructor(total, steps) {
    this.total = total;
    this.steps = steps;
    this.k = 0;
    this._waiters = [];
  }
  limit() {
    return this.k >= this.steps ? this.total : Math.floor((this.total * (this.k + 1)) / (this.steps + 1));
  }
  advance() {
    this.k++;
    const w = this._waiters;
    this._waiters = [];
    for (const f of w) f();
  }
  open() {
    this.k = this.steps;
    this.advance();
  }
  wait() {
    return new Promise((r) => this._waiters.push(r));
  }
}

// Writes `total` bytes of prng to sock, never more than gate.limit() so
// far, honouring backpressure. Resolves { sent, hash }.
function gatedWrite(sock, total, prng, gate, { chunk = 256 * 1024, progress } = {}) {
  const h = crypto.createHash('sha256');
  let sent = 0;
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (why) => {
      if (!done) {
        done = true;
        reject(new Error(`write stopped after ${sent} of ${total} bytes: ${why}`));
      }
    };
    sock.once('close', () => fail('socket closed'));
    const pump = () => {
      while (!done && sent < total) {
        const room = gate.limit() - sent;
        if (room <= 0) {
          gate.wait().then(pump);
          return;
        }
        const n = Math.min(chunk, total - sent, room);
        const b = prng.next(n);
        h.update(b);
        sent += n;
        if (progress) progress.sent = sent;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      if (!done && sent >= total) {
        done = true;
        resolve({ sent, hash: h.digest('hex') });
      }
    };
    pump();
  });
}

// An endpoint for one big two-way stream: connection #0 hashes what it
// receives and writes `total` bytes of Prng(seed) under `gate`, then FIN
// once it also saw the peer's FIN; any later connection is an echo.
async function gatedEndpoint(total, gate, seed) {
  const big = { received: 0, hash: null, sent: null, sentHash: null, eof: false };
  let resolveDone;
  big.done = new Promise((r) => (resolveDone = r));
  const srv = await tcpServer((sock, { index }) => {
    if (index > 0) {
      sock.pipe(sock);
      return;
    }
    const h = crypto.createHash('sha256');
    let wrote = false;
    const maybeEnd = () => {
      if (wrote && big.eof) sock.end();
    };
    sock.on('data', (c) => {
      big.received += c.length;
      h.update(c);
    });
    sock.on('end', () => {
      big.eof = true;
      big.hash = h.digest('hex');
      maybeEnd();
    });
    sock.on('close', () => {
      if (big.hash === null) big.hash = h.digest('hex');
      resolveDone(big);
    });
    gatedWrite(sock, total, new Prng(seed), gate, { progress: big }).then(
      (r) => {
        big.sentHash = r.hash;
        wrote = true;
        maybeEnd();
      },
      (e) => (big.writeError = e.message),
    );
  });
  return Object.assign(srv, { big });
}

// The client side of that stream: connects, writes `total` bytes of
// Prng(seed) under `gate`, half-closes, reads to EOF. Returns a record
// whose `done` resolves { sent, sentHash, received, recvHash, eof, error }.
async function gatedClient(host, port, total, gate, seed) {
  const sock = net.connect({ host, port, allowHalfOpen: true });
  await withTimeout(new Promise((res, rej) => sock.once('connect', res).once('error', rej)), T(5000), `connect to ${host}:${port}`);
  const rec = { sock, sent: 0, received: 0, eof: false, error: null };
  const h = crypto.createHash('sha256');
  sock.on('data', (c) => {
    rec.received += c.length;
    h.update(c);
  });
  sock.on('error', (e) => (rec.error = e));
  const closed = new Promise((r) => sock.on('close', r));
  sock.on('end', () => (rec.eof = true));
  rec.done = (async () => {
    let w;
    try {
      w = await gatedWrite(sock, total, new Prng(seed), gate, { progress: rec });
      sock.end();
    } catch (e) {
      rec.writeError = e.message;
    }
    await closed;
    rec.recvHash = h.digest('hex');
    rec.sentHash = w ? w.hash : null;
    return rec;
  })();
  return rec;
}

// Waits until cond() is true (polling); throws with what() after ms.
async function until(cond, ms, what) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(10);
  }
  return Date.now() - t0;
}

// A TCP client that sends `chunks` pieces of `size` bytes of Prng(seed),
// one every `everyMs`, half-closes, and reads the echo to EOF.
// rec.done resolves { sent, sentHash, received, recvHash, eof, error }.
// rec.stop() ends the sending early (then the half-close and the read).
// With hold (a promise), the first piece goes at once and the rest only
// once hold has resolved.
async function pacedEchoClient(host, port, { chunks = Infinity, size, everyMs, seed, hold = null }) {
  const sock = net.connect({ host, port, allowHalfOpen: true });
  await withTimeout(new Promise((res, rej) => sock.once('connect', res).once('error', rej)), T(5000), `connect to ${host}:${port}`);
  const rec = { sock, localPort: sock.localPort, sent: 0, received: 0, eof: false, error: null, closedAt: null };
  const hs = crypto.createHash('sha256');
  const hr = crypto.createHash('sha256');
  const prng = new Prng(seed);
  sock.on('data', (c) => {
    rec.received += c.length;
    hr.update(c);
  });
  sock.on('end', () => (rec.eof = true));
  sock.on('error', (e) => (rec.error = e));
  const closed = new Promise((r) =>
    sock.on('close', () => {
      rec.closedAt = Date.now();
      r();
    }),
  );
  let stopped = false;
  rec.stop = () => (stopped = true);
  rec.done = (async () => {
    for (let i = 0; i < chunks && !stopped && !sock.destroyed && !rec.eof; i++) {
      const b = prng.next(size);
      hs.update(b);
      rec.sent += size;
      sock.write(b);
      if (i === 0 && hold) await hold;
      else await sleep(everyMs);
    }
    if (!sock.destroyed) sock.end();
    rec.wroteAllAt = Date.now();
    await closed;
    rec.sentHash = hs.digest('hex');
    rec.recvHash = hr.digest('hex');
    return rec;
  })();
  return rec;
}

// ------------------------------------------------------------ secrets ------

// No key (raw or percent-encoded) and no "sig=" in any of the logs.
//   logs: { name: text }
function assertNoSecrets(logs, keys) {
  const found = [];
  for (const [name, text] of Object.entries(logs)) {
    if (/sig=/i.test(text)) found.push(`${name}: "sig=" in: ${text.split('\n').find((l) => /sig=/i.test(l))}`);
    for (const k of keys) {
      if (!k) continue;
      for (const form of new Set([k, encodeURIComponent(k)])) {
        if (text.includes(form)) found.push(`${name}: a key (${form.slice(0, 6)}...) in: ${text.split('\n').find((l) => l.includes(form))}`);
      }
    }
  }
  assert.deepEqual(found, [], `secrets in the logs:\n${found.join('\n')}`);
}

// Every key of a RelayCtl's entities (primary and secondary).
function keysOf(entities) {
  const out = [];
  for (const r of entities.rules || []) out.push(r.primary, r.secondary);
  for (const h of entities.hcs || []) for (const r of h.rules || []) out.push(r.primary, r.secondary);
  return out.filter(Boolean);
}

// The 1-based line of the first line of text that starts with needle.
function lineOf(text, needle) {
  const i = text.split('\n').findIndex((l) => l.startsWith(needle));
  if (i < 0) throw new Error(`no line starting with ${JSON.stringify(needle)}`);
  return i + 1;
}

module.exports = {
  MiB,
  HCMD,
  HCRELAY,
  RelayCtl,
  withRelayCtl,
  hupAgent,
  LooseAgent,
  Proc,
  killAllProcs,
  NotifySink,
  startTinyproxy,
  Gate,
  gatedWrite,
  gatedEndpoint,
  gatedClient,
  pacedEchoClient,
  until,
  assertNoSecrets,
  keysOf,
  lineOf,
  reEsc,
};
