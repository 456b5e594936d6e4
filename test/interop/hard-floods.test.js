'use strict';
// Floods, offenders and limits against the real hcrelay and hcmd:
//   1. Offenders on hcrelay, many at once: ping floods that never read the
//      pongs (control channels, senders), control messages over 64 KiB
//      (whole and fragmented), a frame length with the top bit set, data
//      frames announcing 1 TiB. Only they are closed, memory stays bounded,
//      real senders keep working.
//   2. Offenders against hcmd: a hand-written relay floods pings on its
//      control channel, a tunnel and a forward connection without reading,
//      sends an oversize control message and a 1 TiB data frame.
//   3. max_tunnels = N with N + 100 senders (listener) and N + 100 local
//      clients (forwarder): exactly N served, the rest refused at once.
//   4. 1,000 slow handshakes on hcrelay's port while real senders keep
//      their round trips short; the relay cuts every one at
//      handshake_timeout; its descriptors come back to the baseline.
//   5. 1,000 slow clients on an hcmd forward (plus clients whose relay
//      handshake never completes) while real clients on the same port keep
//      their round trips short; descriptors back to the baseline.
// The memory checks come first, while the processes are still small. The
// file ends with both daemons stopped: exit 0, no sanitizer report.
//
// Loopback only.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { startRelay, freePort, sleep, withTimeout } = require('./lib/relay');
const { logCtx, relayEpilogue } = require('./lib/suite');
const { Agent, cleanupAll, openSender, withAgents, T, ASAN } = require('./lib/agent');
const { withFwdAgents, tcpOpen } = require('./lib/forward');
const { closeAll, echoServer, hashServer } = require('./lib/endpoints');
const { rawWsOpen, encodeFrame, RawListener, upgradeRequest, wsAcceptFor, tlsConnect, readHttpHead } = require('./lib/wsclient');
const { until } = require('./lib/ops');

const MiB = 1 << 20;
const N_FLOOD = 1000;
const N_STALL = 200; // forward clients whose relay handshake never completes
// relay handshake_timeout, seconds: longer than the 1,000 connections take
// to arrive even on a busy machine, so that all are held at once.
const HS = ASAN ? 25 : 15;
const FWD_CONNECT_TIMEOUT = ASAN ? 8 : 5; // forwarder connect_timeout
// A real round trip (TLS, upgrade, rendezvous, echo) must stay under
// RT_LIMIT while a flood is held; while the 1,000 connections are still
// arriving (every one costs the daemons a TLS handshake or a tunnel, and
// the real ones wait their turn) under RAMP_LIMIT.
const RT_LIMIT = ASAN ? 6000 : 2000;
const RAMP_LIMIT = ASAN ? 15000 : 5000;
const LIMIT_N = 20; // max_tunnels in part 3
if (ASAN) console.log(`# ASan build: handshake_timeout ${HS} s, forward connect_timeout ${FWD_CONNECT_TIMEOUT} s, round-trip bounds ${RT_LIMIT} / ${RAMP_LIMIT} ms (DEV: 15 s, 5 s, 2000 / 5000 ms); ping floods and 1 TiB streams half as long`);

let relay;
let echo; // the endpoint of the long-lived listener
let sink; // reads everything, writes nothing
let lis; // long-lived hcmd listener: hc "echo" -> echo, hc "sink" -> sink

const HCS = ['echo', 'sink', 'other', 'stall', 'lim', 'bgood'];

before(async () => {
  echo = await echoServer();
  sink = await hashServer();
  relay = await startRelay({
    relay: { log_level: 'info', handshake_timeout: HS, rendezvous_timeout: 30 },
    entities: {
      rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send' }],
      hcs: HCS.map((name) => ({ name, requiresClientAuthorization: true, rules: [] })),
    },
  });
  lis = new Agent({
    relay,
    name: 'hcmd-listener',
    settings: { max_tunnels: N_FLOOD + N_STALL + 200 },
    connections: [
      { name: 'echo', hc: 'echo', rule: 'RootManageSharedAccessKey', endpoint: `127.0.0.1:${echo.port}` },
      { name: 'sink', hc: 'sink', rule: 'RootManageSharedAccessKey', endpoint: `127.0.0.1:${sink.port}` },
    ],
  });
  await lis.start();
}, { timeout: T(60000) });

after(async () => {
  for (const sock of liveSocks) sock.destroy();
  await cleanupAll();
  await closeAll();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

// ------------------------------------------------------------ helpers ------

// Sockets a test opened itself, so that a failing test leaves none behind.
const liveSocks = new Set();
function keep(sock) {
  liveSocks.add(sock);
  sock.once('close', () => liveSocks.delete(sock));
  return sock;
}

const fdCount = (pid) => {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
};

// The soft limit on open files of a process (null if unknown).
const fdLimit = (pid) => {
  try {
    const m = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').match(/^Max open files\s+(\d+|unlimited)/m);
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : null;
  } catch {
    return null;
  }
};

const rssKb = (pid) => {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
};

// Samples VmRSS of some processes every everyMs; keeps the maximum.
function rssSampler(procs, everyMs = 50) {
  const s = { max: {}, first: {} };
  for (const [name, pid] of Object.entries(procs)) {
    s.first[name] = rssKb(pid);
    s.max[name] = s.first[name];
  }
  const tick = () => {
    for (const [name, pid] of Object.entries(procs)) {
      const v = rssKb(pid);
      if (v !== null && v > s.max[name]) s.max[name] = v;
    }
  };
  const timer = setInterval(tick, everyMs);
  s.stop = () => {
    clearInterval(timer);
    tick();
    return s.max;
  };
  return s;
}

function stats(list) {
  if (list.length === 0) return { n: 0, p50: null, max: null };
  const s = [...list].sort((a, b) => a - b);
  return { n: s.length, p50: s[Math.floor((s.length - 1) / 2)], max: s[s.length - 1] };
}

// Runs a real operation again and again (one at a time, bounded in count)
// until stop(); keeps each one's duration and start time, and the errors.
function realLoop(op, { gapMs = 50, maxRuns = 2000 } = {}) {
  const rec = { runs: [], errors: [], stopped: false };
  rec.done = (async () => {
    for (let i = 0; i < maxRuns && !rec.stopped; i++) {
      const t0 = Date.now();
      try {
        await op(i);
        rec.runs.push({ at: t0, ms: Date.now() - t0 });
      } catch (e) {
        rec.errors.push(`#${i} after ${Date.now() - t0} ms: ${e.message.split('\n')[0]}`);
      }
      await sleep(gapMs);
    }
  })();
  rec.stop = async () => {
    rec.stopped = true;
    await rec.done;
    return rec;
  };
  // Lets it run on until at least n runs ended (bounded), then stops it.
  rec.stopAfter = async (n, ms = T(30000)) => {
    await until(() => rec.runs.length + rec.errors.length >= n, ms, `${n} real round trips`).catch(() => {});
    return rec.stop();
  };
  rec.between = (from, to) => rec.runs.filter((r) => r.at >= from && r.at + r.ms <= to).map((r) => r.ms);
  return rec;
}

// A real sender: TLS, upgrade, rendezvous through hcmd to the echo
// endpoint, 4 KiB there and back.
async function senderEcho(hc = 'echo') {
  const payload = crypto.randomBytes(4096);
  const s = await openSender(relay, hc, { ms: T(10000) });
  try {
    await s.send(payload);
    await s.waitBytes(payload.length, T(10000));
    if (!s.data().equals(payload)) throw new Error('echo differs');
  } finally {
    s.close();
    s.waitClose(T(5000)).catch(() => s.terminate());
  }
}

// A real forward client: connect, 1 KiB there and back, end.
async function forwardEcho(port) {
  const payload = crypto.randomBytes(1024);
  const { sock } = await tcpOpen('127.0.0.1', port, T(5000));
  keep(sock).on('error', () => {});
  try {
    const data = await withTimeout(
      new Promise((resolve, reject) => {
        const chunks = [];
        let got = 0;
        sock.on('data', (c) => {
          chunks.push(c);
          got += c.length;
          if (got >= payload.length) resolve(Buffer.concat(chunks));
        });
        sock.on('close', () => reject(new Error(`closed after ${got} bytes`)));
        sock.write(payload);
      }),
      T(10000),
      'forward echo',
    );
    if (!data.equals(payload)) throw new Error('forward echo differs');
  } finally {
    sock.destroy();
  }
}

// Whether every process may open `need` files (the forwarder started by
// a test inherits the same limit as the listener); skips the test if not.
function enoughFiles(t, pids, need) {
  const lims = {};
  for (const [name, pid] of Object.entries(pids)) lims[name] = fdLimit(pid);
  console.log(`# open-file limits (ulimit -n) ${JSON.stringify(lims)}; this test needs ${need} per process; hcrelay max_connections 10000 (default), handshake_timeout ${HS} s`);
  const short = Object.entries(lims).filter(([, v]) => v !== null && v < need);
  if (short.length) {
    t.skip(`open-file limit too low for the flood: ${JSON.stringify(Object.fromEntries(short))}, need ${need} (raise ulimit -n)`);
    return false;
  }
  return true;
}

// pid's descriptor count once it has not changed for 500 ms (bounded):
// the baseline, after the connections of earlier steps are gone.
async function fdBaseline(pid, ms = T(5000)) {
  const t0 = Date.now();
  let last = fdCount(pid);
  for (;;) {
    await sleep(500);
    const now = fdCount(pid);
    if (now === last || Date.now() - t0 > ms) return now;
    last = now;
  }
}

// Waits until pid's descriptor count is back to base (bounded), and
// checks that it is exactly that.
async function fdsBack(name, pid, base, ms = T(15000)) {
  let now = fdCount(pid);
  try {
    await until(() => (now = fdCount(pid)) <= base, ms, `${name} descriptors back to ${base}`);
  } catch (e) {
    throw new Error(`${name}: ${now} descriptors ${ms} ms after the flood, baseline ${base}`);
  }
  await sleep(200);
  now = fdCount(pid);
  assert.equal(now, base, `${name}: descriptors after the flood`);
  return now;
}

// The first bytes a real TLS client sends: its ClientHello.
async function captureClientHello() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const got = new Promise((resolve) => srv.once('connection', (s) => s.once('data', (d) => {
      resolve(d);
      s.destroy();
    })));
    const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost', rejectUnauthorized: false });
    c.on('error', () => {});
    const hello = await withTimeout(got, 5000, 'a ClientHello');
    c.destroy();
    return hello;
  } finally {
    srv.close();
  }
}

// The flood runs in a worker thread, so that making 1,000 connections (and
// their TLS handshakes) does not slow down the real clients measured here.
// Kinds: 'hello' (a few bytes of a real ClientHello, then one more byte a
// second), 'head' (TLS, then part of an upgrade head, one more byte a
// second), 'silent' (TCP, nothing), 'bytes' (a few bytes once), 'drip'
// (plain TCP, one byte a second).
function floodWorker() {
  const { parentPort } = require('node:worker_threads');
  const net = require('node:net');
  const tls = require('node:tls');
  const crypto = require('node:crypto');
  const conns = [];
  let dripper = null;
  const open = (kind, port, o) =>
    new Promise((resolve) => {
      const rec = { kind, port, openedAt: null, closedAt: null, received: 0, drip: null, error: null };
      let settled = false;
      const done = () => {
        if (!settled) {
          settled = true;
          resolve(rec);
        }
      };
      const onOpen = () => {
        rec.openedAt = Date.now();
        if (kind === 'hello') {
          const n = 5 + crypto.randomInt(40);
          sock.write(o.hello.subarray(0, n));
          rec.drip = o.hello.subarray(n, o.hello.length - 1);
        } else if (kind === 'head') {
          sock.write(o.head.subarray(0, 20));
          rec.drip = o.head.subarray(20, o.head.length - 4);
        } else if (kind === 'bytes') {
          sock.write('PING\r\n');
        } else if (kind === 'drip') {
          rec.drip = Buffer.alloc(64, 'x');
        }
        done();
      };
      const sock =
        kind === 'head'
          ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: o.ca }, onOpen)
          : net.connect({ host: '127.0.0.1', port }, onOpen);
      rec.sock = sock;
      sock.on('data', (d) => (rec.received += d.length));
      sock.on('error', (e) => {
        rec.error = e.code || e.message;
      });
      sock.on('close', () => {
        rec.closedAt = Date.now();
        done();
      });
      setTimeout(() => {
        if (!settled) {
          rec.error = rec.error || 'connect timed out';
          sock.destroy();
        }
      }, o.connectMs).unref();
      conns.push(rec);
    });
  const plain = (c) => ({ kind: c.kind, port: c.port, openedAt: c.openedAt, closedAt: c.closedAt, received: c.received, error: c.error });
  parentPort.on('message', async (m) => {
    const reply = (v) => parentPort.postMessage({ id: m.id, ...v });
    if (m.cmd === 'open') {
      const o = { hello: Buffer.from(m.hello || []), head: Buffer.from(m.head || []), ca: m.ca, connectMs: m.connectMs };
      const t0 = Date.now();
      let next = 0;
      const worker = async () => {
        while (next < m.n) {
          const i = next++;
          await open(m.kinds[i % m.kinds.length], m.ports[i % m.ports.length], o);
        }
      };
      await Promise.all(Array.from({ length: m.conc }, worker));
      if (!dripper) {
        dripper = setInterval(() => {
          for (const c of conns) {
            if (c.closedAt !== null || !c.drip || c.drip.length === 0) continue;
            c.sock.write(c.drip.subarray(0, 1));
            c.drip = c.drip.subarray(1);
          }
        }, 1000);
      }
      reply({ rampMs: Date.now() - t0, failed: conns.filter((c) => c.openedAt === null).map(plain) });
    } else if (m.cmd === 'state') {
      reply({ total: conns.length, closed: conns.filter((c) => c.closedAt !== null).length });
    } else if (m.cmd === 'report') {
      reply({ conns: conns.map(plain) });
    } else if (m.cmd === 'release') {
      clearInterval(dripper);
      for (const c of conns) c.sock.destroy();
      reply({});
    } else if (m.cmd === 'exit') {
      clearInterval(dripper);
      for (const c of conns) c.sock.destroy();
      reply({});
      setImmediate(() => process.exit(0));
    }
  });
}

class Flood {
  constructor() {
    const { Worker } = require('node:worker_threads');
    this.w = new Worker(`(${floodWorker.toString()})()`, { eval: true });
    this.next = 1;
    this.pending = new Map();
    this.w.on('message', (m) => {
      const p = this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id);
        p(m);
      }
    });
    this.w.on('error', (e) => {
      for (const p of this.pending.values()) p({ error: e.message });
      this.pending.clear();
    });
  }
  call(msg, ms = T(120000)) {
    const id = this.next++;
    return withTimeout(new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.w.postMessage({ id, ...msg });
    }), ms, `flood worker: ${msg.cmd}`).then((m) => {
      if (m.error) throw new Error(`flood worker: ${m.error}`);
      return m;
    });
  }
  // opts: { n, ports, kinds, conc, hello, head, ca }
  open(opts) {
    return this.call({ cmd: 'open', conc: 10, connectMs: T(20000), ...opts });
  }
  state() {
    return this.call({ cmd: 'state' }, T(10000));
  }
  async report() {
    return (await this.call({ cmd: 'report' }, T(10000))).conns;
  }
  release() {
    return this.call({ cmd: 'release' }, T(10000));
  }
  async close() {
    await this.call({ cmd: 'exit' }, T(10000)).catch(() => {});
    await this.w.terminate().catch(() => {});
  }
}

// Reads WebSocket frames from a raw socket without keeping them: counts
// them by opcode, keeps data payloads (unmasked, up to a bound), the close
// code, and whether the peer ended the connection. Answers a Close with a
// Close (masked when `mask`, as a client must).
class FrameScanner {
  constructor(sock, initial = Buffer.alloc(0), { mask = true, keep = 1 << 20 } = {}) {
    this.sock = sock;
    this.mask = mask;
    this.keep = keep;
    this.counts = {};
    this.frames = 0;
    this.data = [];
    this.dataBytes = 0;
    this.closeCode = null;
    this.ended = false;
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    sock.on('data', (c) => this._feed(c));
    const end = () => {
      this.ended = true;
      this._wake();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', () => {});
    if (initial.length) this._feed(initial);
  }
  _feed(c) {
    const b = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    let off = 0;
    for (;;) {
      if (b.length - off < 2) break;
      const op = b[off] & 0x0f;
      let len = b[off + 1] & 0x7f;
      let h = 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        h = 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = Number(b.readBigUInt64BE(off + 2));
        h = 10;
      }
      if (b[off + 1] & 0x80) h += 4;
      if (b.length - off < h + len) break;
      let payload = b.subarray(off + h, off + h + len);
      if (b[off + 1] & 0x80 && (op >= 8 || this.dataBytes < this.keep)) {
        const m = b.subarray(off + h - 4, off + h);
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i++) payload[i] ^= m[i & 3];
      }
      this.counts[op] = (this.counts[op] || 0) + 1;
      this.frames++;
      if (op === 1 || op === 2 || op === 0) {
        if (this.dataBytes < this.keep) this.data.push(Buffer.from(payload));
        this.dataBytes += len;
      } else if (op === 8 && this.closeCode === null) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.sock.destroyed) this.sock.write(encodeFrame(payload.subarray(0, 2), { opcode: 8, mask: this.mask }));
      }
      off += h + len;
    }
    this.buf = off >= b.length ? Buffer.alloc(0) : Buffer.from(b.subarray(off));
    this._wake();
  }
  _wake() {
    this.waiters = this.waiters.filter((w) => !w());
  }
  // Resolves true once cond() holds, false if the connection ends first.
  wait(cond, ms, what) {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          if (cond()) {
            resolve(true);
            return true;
          }
          if (this.ended) {
            resolve(false);
            return true;
          }
          return false;
        };
        if (!check()) this.waiters.push(check);
      }),
      ms,
      what,
    );
  }
  waitEnd(ms) {
    return this.wait(() => this.ended, ms, 'the peer to close the connection');
  }
}

// Writes copies of `unit` (whole ones, up to `total` bytes) to sock while
// it is not paused by the peer for more than stallMs; stops early when the
// socket closes. Resolves { sent, stalled, closed }.
async function pump(sock, unit, total, { stallMs = T(5000), maxMs = T(30000), window = 1 << 20 } = {}) {
  total -= total % unit.length;
  const batch = Buffer.concat(Array(Math.max(1, Math.floor((64 * 1024) / unit.length))).fill(unit));
  let sent = 0;
  let closed = false;
  sock.once('close', () => (closed = true));
  const t0 = Date.now();
  let lastProgress = Date.now();
  while (sent < total && !closed && !sock.destroyed) {
    if (Date.now() - t0 > maxMs) break;
    if (sock.writableLength > window) {
      if (Date.now() - lastProgress > stallMs) return { sent, stalled: true, closed };
      await sleep(2);
      continue;
    }
    const n = Math.min(batch.length, total - sent);
    sock.write(n === batch.length ? batch : batch.subarray(0, n));
    sent += n;
    lastProgress = Date.now();
    if ((sent / batch.length) % 16 === 0) await new Promise((r) => setImmediate(r));
  }
  return { sent, stalled: false, closed };
}

// A frame header announcing `len` bytes of payload (masked, as a client
// sends it, unless mask is false).
function bigFrameHeader(len, { opcode = 2, mask = true } = {}) {
  const h = Buffer.alloc(mask ? 14 : 10);
  h[0] = 0x80 | opcode;
  h[1] = (mask ? 0x80 : 0) | 127;
  h.writeBigUInt64BE(BigInt(len), 2);
  if (mask) crypto.randomFillSync(h, 10, 4);
  return h;
}

// ------------------------------------------------- 1. relay offenders ------

const PING_BYTES = (ASAN ? 16 : 32) * MiB; // per ping flooder
const TIB_BYTES = (ASAN ? 16 : 32) * MiB; // streamed inside a 1 TiB frame
// kB of VmRSS growth; ASan keeps up to 256 MB of freed memory in quarantine.
const RELAY_RSS_BOUND = (ASAN ? 400 : 48) * 1024;
// Real round trips while offenders load both cores: they must all
// succeed; the bound is looser than under the slow-handshake floods.
const OFFENDER_RT_LIMIT = ASAN ? 15000 : 5000;
const AGENT_RSS_BOUND = (ASAN ? 300 : 32) * 1024;
const ping125 = encodeFrame(Buffer.alloc(125, 0x70), { opcode: 9 });

const track = async (p) => {
  const c = await p;
  keep(c.sock);
  return c;
};
const ctlOpen = () =>
  track(rawWsOpen(relay, '/$hc/other?sb-hc-action=listen', { ServiceBusAuthorization: relay.token(relay.listenUrl('other'), 'RootManageSharedAccessKey') }));
const sndOpen = (hc) =>
  track(rawWsOpen(relay, `/$hc/${hc}?sb-hc-action=connect`, { ServiceBusAuthorization: relay.token(relay.connectUrl(hc), 'RootManageSharedAccessKey') }));

// Floods 125-byte pings without reading a single pong, then reads:
// resolves how the peer dealt with it (answered and/or closed).
async function pingFlood(open, tag, { bytes = PING_BYTES, unit = ping125, echoAfter = false } = {}) {
  const c = await open();
  c.sock.on('error', () => {});
  const r = await pump(c.sock, unit, bytes, { stallMs: T(3000) });
  const sc = new FrameScanner(c.sock, c.rest);
  c.sock.resume();
  const answered = await sc.wait(() => (sc.counts[10] || 0) > 0, T(10000), `${tag}: a pong or the end`).catch(() => false);
  let echoed = null;
  if (echoAfter && !sc.ended) {
    const n0 = sc.dataBytes;
    c.sock.write(encodeFrame('after the flood', { opcode: 1 }));
    echoed = await sc.wait(() => sc.dataBytes >= n0 + 15, T(15000), `${tag}: echo after the flood`).catch(() => false);
  }
  const closedByPeer = sc.ended;
  c.sock.destroy();
  return { tag, sent: r.sent, stalled: r.stalled, answered, pongs: sc.counts[10] || 0, closedByPeer, closeCode: sc.closeCode, echoed };
}

test(`1. hcrelay offenders at once — ping floods that never read (control channels and senders, ${PING_BYTES / MiB} MiB each), control messages over 64 KiB (whole and fragmented), a 64-bit length with the top bit set, and data frames announcing 1 TiB (streamed through unbuffered: the relay has no data-frame size limit): only the offenders are closed, memory bounded, real senders keep working`, { timeout: T(150000) }, async () => {
  await senderEcho();
  await sleep(300);
  const pids = { hcrelay: relay.proc.pid, 'hcmd listener': lis.pid };
  const fd0 = { hcrelay: await fdBaseline(relay.proc.pid), 'hcmd listener': await fdBaseline(lis.pid) };
  const rss = rssSampler(pids, 50);
  const lisMark = lis.mark();
  const sink0 = sink.records.length;
  const loop = realLoop(() => senderEcho());
  let results;
  try {
    const oversize = async (tag, frames) => {
      const c = await ctlOpen();
      const sc = new FrameScanner(c.sock, c.rest);
      c.sock.resume();
      for (const f of frames) c.sock.write(f);
      const ended = await sc.waitEnd(T(10000)).catch(() => false);
      c.sock.destroy();
      return { tag, ended, closeCode: sc.closeCode };
    };
    const badLen = async (tag) => {
      const c = await sndOpen('echo');
      const sc = new FrameScanner(c.sock, c.rest);
      c.sock.resume();
      c.sock.write(encodeFrame('before', { opcode: 1 }));
      const echoed = await sc.wait(() => sc.dataBytes >= 6, T(10000), `${tag}: echo`).catch(() => false);
      c.sock.write(Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]));
      const ended = await sc.waitEnd(T(10000)).catch(() => false);
      c.sock.destroy();
      return { tag, echoed, ended, closeCode: sc.closeCode };
    };
    const tib = async (tag) => {
      const c = await sndOpen('sink');
      c.sock.on('error', () => {});
      c.sock.write(bigFrameHeader(2 ** 40));
      const r = await pump(c.sock, crypto.randomBytes(64 * 1024), TIB_BYTES, { stallMs: T(5000) });
      return { tag, c, ...r };
    };
    const big = Buffer.alloc(100 * 1024, 0x61);
    const part = Buffer.alloc(30 * 1024, 0x61);
    const jobs = [];
    for (let i = 0; i < 3; i++) {
      jobs.push(pingFlood(ctlOpen, `control channel ping flood #${i}`));
      jobs.push(pingFlood(() => sndOpen('echo'), `sender ping flood #${i}`, { echoAfter: true }));
      jobs.push(oversize(`100 KiB control message #${i}`, [encodeFrame(big, { opcode: 1 })]));
      jobs.push(oversize(`3 x 30 KiB fragments #${i}`, [
        encodeFrame(part, { opcode: 1, fin: false }),
        encodeFrame(part, { opcode: 0, fin: false }),
        encodeFrame(part, { opcode: 0, fin: true }),
      ]));
      jobs.push(badLen(`64-bit length with the top bit set #${i}`));
    }
    for (let i = 0; i < 2; i++) jobs.push(tib(`1 TiB frame #${i}`));
    results = await Promise.all(jobs);
    // The 1 TiB frames: every byte sent so far reached the endpoint while
    // the frame is still open.
    const tibs = results.filter((r) => /1 TiB/.test(r.tag));
    const sent = tibs.reduce((a, r) => a + r.sent, 0);
    const got = () => sink.records.slice(sink0).reduce((a, r) => a + r.received, 0);
    await until(() => got() >= sent, T(20000), 'the 1 TiB frames\' bytes at the endpoint').catch(() => {});
    const tibGot = got();
    const tibOpen = tibs.map((r) => !r.closed && !r.c.sock.destroyed);
    const tunnelsBefore = lis.tunnels(lisMark).filter((x) => x.name === 'sink').length;
    for (const r of tibs) r.c.sock.destroy(); // mid-frame
    await until(() => lis.tunnels(lisMark).filter((x) => x.name === 'sink').length >= tunnelsBefore + tibs.length, T(10000), 'the 1 TiB tunnels to end at hcmd').catch(() => {});
    const rt = await loop.stopAfter(3);
    const maxRss = rss.stop();
    const all = stats(rt.runs.map((r) => r.ms));
    const growth = { hcrelay: maxRss.hcrelay - rss.first.hcrelay, 'hcmd listener': maxRss['hcmd listener'] - rss.first['hcmd listener'] };
    console.log(`# offenders: ${JSON.stringify(results.map((r) => { const { c, ...x } = r; return x; }))}`);
    console.log(`# offenders: 1 TiB frames: ${sent} bytes sent, ${tibGot} at the endpoint; real round trips n=${all.n} p50=${all.p50} max=${all.max} ms; VmRSS before ${JSON.stringify(rss.first)} max ${JSON.stringify(maxRss)} kB`);
    assert.deepEqual(rt.errors, [], `real senders failed while the offenders ran${logCtx(relay, 10)}`);
    assert.ok(all.n >= 3, `only ${all.n} real round trips`);
    assert.ok(all.max < OFFENDER_RT_LIMIT, `slowest real round trip ${all.max} ms (bound ${OFFENDER_RT_LIMIT})`);
    for (const r of results.filter((x) => /ping flood/.test(x.tag))) {
      assert.equal(r.sent, PING_BYTES - (PING_BYTES % ping125.length), `${r.tag}: the relay stopped reading after ${r.sent} bytes`);
      assert.ok(r.answered || r.closedByPeer, `${r.tag}: neither answered nor closed: ${JSON.stringify(r)}`);
      if (/sender/.test(r.tag) && !r.closedByPeer) assert.ok(r.echoed, `${r.tag}: the tunnel no longer echoes after the flood`);
    }
    for (const r of results.filter((x) => /KiB/.test(x.tag))) {
      assert.ok(r.ended, `${r.tag}: not closed`);
      assert.equal(r.closeCode, 1009, `${r.tag}: close code`);
    }
    for (const r of results.filter((x) => /top bit/.test(x.tag))) {
      assert.ok(r.echoed, `${r.tag}: no echo before the bad frame`);
      assert.ok(r.ended, `${r.tag}: not closed`);
      assert.ok(r.closeCode === null || r.closeCode === 1002, `${r.tag}: close code ${r.closeCode}`);
    }
    assert.deepEqual(tibOpen, tibs.map(() => true), 'the relay closed a sender inside a 1 TiB frame (it streams data frames of any size)');
    assert.equal(tibGot, sent, 'bytes of the 1 TiB frames that reached the endpoint');
    assert.ok(lis.tunnels(lisMark).filter((x) => x.name === 'sink').length >= tibs.length, 'hcmd did not end the tunnels whose sender vanished mid-frame');
    assert.equal(lis.count(/control channel down/, lisMark), 0, `hcmd's control channel dropped:\n${lis.tail(10)}`);
    assert.ok(growth.hcrelay < RELAY_RSS_BOUND, `hcrelay VmRSS grew by ${growth.hcrelay} kB (bound ${RELAY_RSS_BOUND} kB)`);
    assert.ok(growth['hcmd listener'] < AGENT_RSS_BOUND, `hcmd VmRSS grew by ${growth['hcmd listener']} kB (bound ${AGENT_RSS_BOUND} kB)`);
  } finally {
    await loop.stop();
    rss.stop();
    for (const sock of liveSocks) sock.destroy();
  }
  for (const [n, pid] of Object.entries(pids)) await fdsBack(n, pid, fd0[n]);
  await senderEcho();
});

// ----------------------------------------------- 2. offenders vs hcmd ------

// A hand-written relay for hcmd to talk to: TLS with the test relay's
// certificate, answers every WebSocket upgrade with 101 and hands the
// connection to the test, which then misbehaves on it.
class FakeRelay {
  constructor() {
    this.conns = [];
    this.waiters = [];
  }
  async start(certs) {
    this.server = tls.createServer({ cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) });
    this.server.on('secureConnection', (sock) => this._onConn(sock));
    this.server.on('tlsClientError', () => {});
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = this.server.address().port;
    return this;
  }
  connectionString(entity) {
    return `Endpoint=sb://localhost:${this.port}/;SharedAccessKeyName=fake;SharedAccessKey=${crypto.randomBytes(32).toString('base64')};EntityPath=${entity}`;
  }
  _onConn(sock) {
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (c) => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) {
        if (buf.length > 65536) sock.destroy();
        return;
      }
      sock.off('data', onData);
      sock.pause();
      const [line, ...hl] = buf.subarray(0, i).toString('latin1').split('\r\n');
      const headers = {};
      for (const l of hl) {
        const j = l.indexOf(':');
        if (j > 0) headers[l.slice(0, j).trim().toLowerCase()] = l.slice(j + 1).trim();
      }
      const u = new URL(line.split(' ')[1] || '/', 'https://localhost');
      const conn = { sock, rest: buf.subarray(i + 4), action: u.searchParams.get('sb-hc-action'), id: u.searchParams.get('sb-hc-id'), path: u.pathname };
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAcceptFor(headers['sec-websocket-key'] || '')}\r\n\r\n`);
      this.conns.push(conn);
      this.waiters = this.waiters.filter((w) => !w());
    };
    sock.on('data', onData);
  }
  waitConn(pred, ms = T(10000), what = 'a connection to the fake relay') {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          const c = this.conns.find((x) => !x.taken && pred(x));
          if (!c) return false;
          c.taken = true;
          resolve(c);
          return true;
        };
        if (!check()) this.waiters.push(check);
      }),
      ms,
      what,
    );
  }
  async close() {
    for (const c of this.conns) c.sock.destroy();
    if (this.server) await new Promise((r) => this.server.close(() => r()));
  }
}

const B_FLOOD = (ASAN ? 6 : 12) * MiB; // empty pings, 2 bytes each: a pong is 6
const pingEmpty = encodeFrame(Buffer.alloc(0), { opcode: 9, mask: false });

test(`2. hcmd offenders from a hand-written relay (pings from senders never reach hcmd through hcrelay, which answers them itself; 1 covers hcmd's side of a 1 TiB frame): ${B_FLOOD / MiB} MiB of empty pings (each asking for a 6-byte pong) at once on hcmd's control channel, a tunnel and a forward connection without reading, a 100 KiB control message, a 1 TiB data frame whose echo is not read: hcmd drops or answers at bounded memory, its tunnels on the real relay keep working`, { timeout: T(150000) }, async () => {
  const fake = await new FakeRelay().start(relay.certs);
  const ffkPort = await freePort();
  const bOpts = {
    relay,
    name: 'hcmd-offended',
    connections: [
      { name: 'fk', connectionString: fake.connectionString('fk'), endpoint: `127.0.0.1:${echo.port}` },
      { name: 'bgood', hc: 'bgood', rule: 'RootManageSharedAccessKey', endpoint: `127.0.0.1:${echo.port}` },
    ],
    forwards: [{ name: 'ffk', connectionString: fake.connectionString('ffk'), bind: ffkPort }],
  };
  try {
    await withFwdAgents([bOpts], async (b) => {
      const ctl = await fake.waitConn((c) => c.action === 'listen');
      const ctlSc = new FrameScanner(ctl.sock, ctl.rest, { mask: false });
      ctl.sock.resume();
      await senderEcho('bgood');
      // An oversize control message is dropped; the channel stays.
      const mark = b.mark();
      ctl.sock.write(encodeFrame(Buffer.alloc(100 * 1024, 0x61), { opcode: 1, mask: false }));
      await b.waitForLog(/fk: control message over 64 KiB dropped/, T(5000), mark);
      // ... and the next accept still works: a tunnel to the echo endpoint.
      const accept = (id) => JSON.stringify({ accept: { address: `wss://localhost:${fake.port}/$hc/fk?sb-hc-action=accept&sb-hc-id=${id}`, id, connectHeaders: {}, remoteEndpoint: { address: '127.0.0.1', port: 1 } } });
      ctl.sock.write(encodeFrame(accept('rv1'), { opcode: 1, mask: false }));
      const rv = await fake.waitConn((c) => c.action === 'accept' && c.id === 'rv1', T(10000), 'hcmd at the rendezvous');
      const rvSc = new FrameScanner(rv.sock, rv.rest, { mask: false });
      rv.sock.resume();
      rv.sock.write(encodeFrame('through the tunnel', { opcode: 2, mask: false }));
      assert.ok(await rvSc.wait(() => rvSc.dataBytes >= 18, T(10000), 'echo through the fake tunnel'), 'no echo through the tunnel');
      assert.equal(Buffer.concat(rvSc.data).toString(), 'through the tunnel');
      // A forward connection, spliced with a local client.
      const { sock: local } = await tcpOpen('127.0.0.1', ffkPort);
      keep(local).on('error', () => {});
      let localGot = 0;
      local.on('data', (d) => (localGot += d.length));
      const fw = await fake.waitConn((c) => c.action === 'connect', T(10000), 'hcmd forwarding to the fake relay');
      const fwSc = new FrameScanner(fw.sock, fw.rest, { mask: false });
      assert.equal(b.count(/control channel down/, mark), 0, `hcmd dropped its control channel after the oversize message:\n${b.tail(10)}`);

      // The floods, all at once, nobody reading the pongs.
      const rss = rssSampler({ hcmd: b.pid }, 50);
      const loop = realLoop(() => senderEcho('bgood'));
      let fl;
      try {
        rv.sock.pause();
        ctl.sock.pause();
        fl = await Promise.all([ctl, rv, fw].map((c) => pump(c.sock, pingEmpty, B_FLOOD, { stallMs: T(3000) })));
        await sleep(500);
        const peak = rss.stop();
        // Now read: pongs (answered) or the end (closed), per connection.
        const after = [];
        for (const [name, c, sc] of [['control channel', ctl, ctlSc], ['tunnel', rv, rvSc], ['forward connection', fw, fwSc]]) {
          const p0 = sc.counts[10] || 0;
          c.sock.resume();
          const answered = await sc.wait(() => (sc.counts[10] || 0) > p0, T(15000), `${name}: a pong`).catch(() => false);
          after.push({ name, answered, ended: sc.ended, pongs: (sc.counts[10] || 0) - p0 });
        }
        // The tunnel and the forward connection still carry data.
        const d0 = rvSc.dataBytes;
        rv.sock.write(encodeFrame('after the flood', { opcode: 2, mask: false }));
        const rvOk = await rvSc.wait(() => rvSc.dataBytes >= d0 + 15, T(15000), 'echo after the flood').catch(() => false);
        fw.sock.write(encodeFrame('to the local client', { opcode: 2, mask: false }));
        const fwOk = await until(() => localGot >= 19, T(15000), 'data at the local client').then(() => true, () => false);
        const growth = peak.hcmd - rss.first.hcmd;
        console.log(`# hcmd ping floods: sent ${JSON.stringify(fl.map((x) => x.sent))} bytes; afterwards ${JSON.stringify(after)}; VmRSS ${rss.first.hcmd} -> max ${peak.hcmd} kB (+${growth})`);
        for (const [i, x] of fl.entries()) assert.equal(x.sent, B_FLOOD, `flood #${i}: hcmd stopped reading after ${x.sent} bytes (stalled ${x.stalled})`);
        for (const a of after) assert.ok(a.answered || a.ended, `${a.name}: neither a pong nor closed after the flood`);
        assert.ok(rvOk || after[1].ended, 'the flooded tunnel neither echoes nor was closed');
        assert.ok(fwOk || after[2].ended, 'the flooded forward connection neither carries data nor was closed');
        assert.ok(growth < AGENT_RSS_BOUND, `hcmd VmRSS grew by ${growth} kB under the ping floods (bound ${AGENT_RSS_BOUND} kB)`);

        // A 1 TiB data frame into the tunnel, the echo never read.
        const tMark = b.mark();
        const rss2 = rssSampler({ hcmd: b.pid }, 50);
        rv.sock.pause();
        rv.sock.write(bigFrameHeader(2 ** 40, { mask: false }));
        const big = await pump(rv.sock, crypto.randomBytes(64 * 1024), TIB_BYTES, { stallMs: T(2000) });
        const peak2 = rss2.stop();
        rv.sock.destroy(); // mid-frame
        await b.waitForLog(/hcmd info: tunnel fk id=rv1 /, T(10000), tMark);
        console.log(`# hcmd 1 TiB frame: ${big.sent} bytes in (stalled by backpressure: ${big.stalled}); VmRSS ${rss2.first.hcmd} -> max ${peak2.hcmd} kB`);
        assert.ok(peak2.hcmd - rss2.first.hcmd < AGENT_RSS_BOUND, `hcmd VmRSS grew by ${peak2.hcmd - rss2.first.hcmd} kB under a 1 TiB frame whose echo is not read`);
        const rt = await loop.stopAfter(3);
        const all = stats(rt.runs.map((r) => r.ms));
        console.log(`# hcmd offenders: real round trips on the real relay n=${all.n} p50=${all.p50} max=${all.max} ms`);
        assert.deepEqual(rt.errors, [], 'real senders through hcmd failed while it was flooded');
        assert.ok(all.n >= 3, `only ${all.n} real round trips`);
        assert.ok(all.max < OFFENDER_RT_LIMIT, `slowest real round trip ${all.max} ms (bound ${OFFENDER_RT_LIMIT})`);
      } finally {
        rss.stop();
        await loop.stop();
        local.destroy();
      }
      await senderEcho('bgood');
    });
  } finally {
    await fake.close();
  }
});

// ------------------------------------------------------- 3. max_tunnels ----

const REJECT_LIMIT = ASAN ? 4000 : 2000; // ms from the request to the 503
const REFUSE_LIMIT = ASAN ? 3000 : 1000; // ms from the connect to the close

// A raw sender: TLS, then the upgrade request; resolves the relay's answer
// with timings: tls (connect to TLS up) and answer (request to status).
async function rawSender(hc) {
  const t0 = Date.now();
  const sock = keep(await tlsConnect(relay, { ms: T(20000) }));
  sock.on('error', () => {});
  const t1 = Date.now();
  const headP = readHttpHead(sock, T(20000)).catch((e) => ({ error: e.message }));
  sock.write(upgradeRequest(relay, `/$hc/${hc}?sb-hc-action=connect`, { ServiceBusAuthorization: relay.token(relay.connectUrl(hc), 'RootManageSharedAccessKey') }));
  const head = await headP;
  const r = { sock, status: head ? head.status : null, reason: head ? head.reason : null, tlsMs: t1 - t0, answerMs: Date.now() - t1, error: head ? head.error : 'closed' };
  if (r.status === 101) {
    r.sc = new FrameScanner(sock, head.rest);
    sock.resume();
  } else {
    sock.destroy();
  }
  return r;
}

// Opens n raw senders at once; checks that exactly `served` of them got
// 101 and a working echo, and that the others got 503 at once. Returns the
// open ones (to be closed by the caller).
async function senderWave(hc, n, served, tag) {
  const all = await Promise.all(Array.from({ length: n }, () => rawSender(hc)));
  const open = all.filter((r) => r.status === 101);
  const refused = all.filter((r) => r.status !== 101);
  try {
    const echoes = await Promise.all(open.map(async (r, i) => {
      const msg = `${tag} #${i}`;
      r.sock.write(encodeFrame(msg, { opcode: 1 }));
      return r.sc.wait(() => r.sc.dataBytes >= msg.length, T(10000), `${tag}: echo`).then((ok) => ok && Buffer.concat(r.sc.data).toString() === msg, () => false);
    }));
    const answer = stats(refused.map((r) => r.answerMs));
    const total = stats(refused.map((r) => r.tlsMs + r.answerMs));
    console.log(`# ${tag}: ${open.length} served, ${refused.length} refused (${JSON.stringify(countBy(refused.map((r) => r.status)))}); refusal after the request p50=${answer.p50} max=${answer.max} ms, from the connect p50=${total.p50} max=${total.max} ms`);
    assert.equal(open.length, served, `${tag}: senders served (statuses ${JSON.stringify(countBy(all.map((r) => r.status)))})`);
    assert.deepEqual(echoes, open.map(() => true), `${tag}: echo through every served sender`);
    assert.deepEqual(refused.map((r) => r.status), refused.map(() => 503), `${tag}: statuses of the refused senders: ${JSON.stringify(refused.slice(0, 3).map((r) => [r.status, r.reason, r.error]))}`);
    assert.ok(refused.every((r) => /tunnel limit/.test(r.reason)), `${tag}: reasons ${JSON.stringify([...new Set(refused.map((r) => r.reason))])}`);
    assert.ok(answer.max === null || answer.max < REJECT_LIMIT, `${tag}: slowest 503 came ${answer.max} ms after the request (bound ${REJECT_LIMIT})`);
  } catch (e) {
    for (const r of open) r.sock.destroy();
    throw e;
  }
  return open;
}

function countBy(list) {
  const m = {};
  for (const x of list) m[x] = (m[x] || 0) + 1;
  return m;
}

async function closeSenders(open) {
  await Promise.all(open.map(async (r) => {
    r.sock.write(encodeFrame(Buffer.from([0x03, 0xe8]), { opcode: 8 }));
    await r.sc.waitEnd(T(10000)).catch(() => {});
    r.sock.destroy();
  }));
}

test(`3a. hcmd listener, max_tunnels = ${LIMIT_N}: ${LIMIT_N + 100} senders at once (all holding on): exactly ${LIMIT_N} served, 100 refused with 503 within ${REJECT_LIMIT} ms; once those ${LIMIT_N} close, ${LIMIT_N} new ones are served again (and 5 more refused)`, { timeout: T(90000) }, async () => {
  const opts = { relay, name: 'hcmd-limited', settings: { max_tunnels: LIMIT_N }, connections: [{ name: 'lim', hc: 'lim', rule: 'RootManageSharedAccessKey', endpoint: `127.0.0.1:${echo.port}` }] };
  await withAgents([opts], async (l) => {
    const fd0 = await fdBaseline(l.pid);
    const mark = l.mark();
    const open = await senderWave('lim', LIMIT_N + 100, LIMIT_N, 'first wave');
    const rejected = new RegExp(`lim: rejected sender \\S+ \\(503\\): tunnel limit \\(${LIMIT_N}\\) reached`);
    await until(() => l.count(rejected, mark) >= 100, T(10000), 'hcmd to log 100 rejections').catch(() => {});
    assert.equal(l.count(rejected, mark), 100, `hcmd's rejection lines:\n${l.tail(5)}`);
    await closeSenders(open);
    await until(() => l.tunnels(mark).length >= LIMIT_N, T(10000), 'hcmd to end the tunnels').catch(() => assert.fail(`hcmd logged ${l.tunnels(mark).length} tunnel ends of ${LIMIT_N}`));
    await fdsBack('hcmd (max_tunnels)', l.pid, fd0);
    const again = await senderWave('lim', LIMIT_N + 5, LIMIT_N, 'second wave');
    await closeSenders(again);
    await fdsBack('hcmd (max_tunnels)', l.pid, fd0);
  });
});

test(`3b. hcmd forwarder, max_tunnels = ${LIMIT_N}: ${LIMIT_N + 100} local clients at once (all holding on): exactly ${LIMIT_N} get through, 100 are closed within ${REFUSE_LIMIT} ms without a byte; once those ${LIMIT_N} close, ${LIMIT_N} new ones get through again`, { timeout: T(90000) }, async () => {
  const bind = await freePort();
  const opts = { relay, name: 'hcmd-fwd-limited', settings: { max_tunnels: LIMIT_N }, forwards: [{ name: 'flim', hc: 'echo', rule: 'RootManageSharedAccessKey', bind }] };
  await withFwdAgents([opts], async (f) => {
    const fd0 = await fdBaseline(f.pid);
    const wave = async (n, tag) => {
      const all = await Promise.all(Array.from({ length: n }, async (_, i) => {
        const { sock, connectedAt } = await tcpOpen('127.0.0.1', bind, T(10000));
        keep(sock).on('error', () => {});
        const msg = `${tag} #${i}`;
        const r = { sock, got: '', closedMs: null };
        const done = new Promise((resolve) => {
          sock.on('data', (d) => {
            r.got += d.toString();
            if (r.got.length >= msg.length) resolve();
          });
          const closed = () => {
            if (r.closedMs === null) r.closedMs = Date.now() - connectedAt;
            resolve();
          };
          sock.on('end', closed);
          sock.on('close', closed);
        });
        sock.write(msg);
        await withTimeout(done, T(15000), `${tag}: echo or close`).catch(() => {});
        r.ok = r.got === msg;
        return r;
      }));
      const served = all.filter((r) => r.ok);
      const refused = all.filter((r) => !r.ok);
      const closed = stats(refused.map((r) => r.closedMs ?? Infinity));
      console.log(`# forwarder ${tag}: ${served.length} through, ${refused.length} closed after p50=${closed.p50} max=${closed.max} ms`);
      try {
        assert.equal(served.length, LIMIT_N, `${tag}: clients that got through`);
        assert.ok(refused.every((r) => r.got === '' && r.closedMs !== null), `${tag}: a refused client got bytes or was left open`);
        assert.ok(closed.max === null || closed.max < REFUSE_LIMIT, `${tag}: slowest refusal ${closed.max} ms (bound ${REFUSE_LIMIT})`);
        assert.ok(served.every((r) => r.closedMs === null), `${tag}: a client that got through was closed`);
      } catch (e) {
        for (const r of all) r.sock.destroy();
        throw e;
      }
      for (const r of refused) r.sock.destroy();
      return served;
    };
    const mark = f.mark();
    const first = await wave(LIMIT_N + 100, 'first wave');
    assert.ok(f.count(new RegExp(`forward flim: tunnel limit \\(${LIMIT_N}\\) reached: closing client`), mark) >= 100, 'hcmd did not log the refusals');
    for (const r of first) r.sock.end();
    await until(() => f.fwdLines(mark).length >= LIMIT_N, T(10000), 'the forwarded connections to end').catch(() => assert.fail(`${f.fwdLines(mark).length} of ${LIMIT_N} forwarded connections logged as ended`));
    await fdsBack('hcmd forwarder (max_tunnels)', f.pid, fd0);
    const second = await wave(LIMIT_N + 5, 'second wave');
    for (const r of second) r.sock.destroy();
    await fdsBack('hcmd forwarder (max_tunnels)', f.pid, fd0);
  });
});

// ------------------------------------------------------- 4. relay flood ----

test(`4. hcrelay: ${N_FLOOD} slow handshakes (partial ClientHello, partial upgrade head after TLS, silent TCP; dripping 1 byte/s) do not stop real senders (each round trip < ${RT_LIMIT} ms while held, < ${RAMP_LIMIT} ms while they arrive); the relay cuts each at handshake_timeout (${HS} s); fds back to baseline`, { timeout: T(120000) }, async (t) => {
  if (!enoughFiles(t, { hcrelay: relay.proc.pid, 'hcmd listener': lis.pid, node: process.pid }, N_FLOOD + 200)) return;
  const hello = await captureClientHello();
  const head = Buffer.from(upgradeRequest(relay, '/$hc/echo?sb-hc-action=connect', {}));
  await senderEcho(); // warm
  await sleep(300);
  const relayPid = relay.proc.pid;
  const fd0 = { relay: await fdBaseline(relayPid), hcmd: await fdBaseline(lis.pid) };
  const rss0 = rssKb(relayPid);
  const flood = new Flood();
  const loop = realLoop(() => senderEcho());
  const t0 = Date.now();
  try {
    const opened = await flood.open({ n: N_FLOOD, ports: [relay.port], kinds: ['hello', 'head', 'silent'], hello, head, ca: relay.ca.toString() });
    assert.deepEqual(opened.failed, [], 'flood connections that could not be opened');
    const held = fdCount(relayPid);
    const rssHeld = rssKb(relayPid);
    let conns = await flood.report();
    const firstOpen = Math.min(...conns.map((c) => c.openedAt));
    const lastOpen = Math.max(...conns.map((c) => c.openedAt));
    const closedEarly = conns.filter((c) => c.closedAt !== null);
    console.log(`# relay flood: ${N_FLOOD} connections open after ${opened.rampMs} ms; relay fds ${fd0.relay} -> ${held}, VmRSS ${rss0} -> ${rssHeld} kB`);
    assert.equal(closedEarly.length, 0, `${closedEarly.length} flood connections closed before the flood was complete (${opened.rampMs} ms): ${JSON.stringify(closedEarly.slice(0, 3))}`);
    assert.ok(held >= fd0.relay + N_FLOOD, `the relay does not hold the flood: ${held} fds, baseline ${fd0.relay}`);
    // Hold: a few seconds, ending before the first one is due to be cut.
    const holdStart = Date.now();
    const holdEnd = Math.max(holdStart + 1000, Math.min(holdStart + 4000, firstOpen + HS * 1000 - 500));
    while (Date.now() < holdEnd) await sleep(100);
    // The relay cuts them all (dripping does not extend the deadline).
    const slack = T(4000);
    let st = await flood.state();
    const deadline = lastOpen + HS * 1000 + slack + 500;
    while (st.closed < st.total && Date.now() < deadline) {
      await sleep(200);
      st = await flood.state();
    }
    await sleep(300);
    const rt = await loop.stop();
    conns = await flood.report();
    const all = stats(rt.runs.map((r) => r.ms));
    const hold = stats(rt.between(holdStart, holdEnd));
    const life = stats(conns.filter((c) => c.closedAt !== null).map((c) => c.closedAt - c.openedAt));
    console.log(`# relay flood: real round trips while ${N_FLOOD} were held: n=${hold.n} p50=${hold.p50} ms max=${hold.max} ms; whole run (ramp included) n=${all.n} p50=${all.p50} max=${all.max} ms; flood lifetimes p50=${life.p50} max=${life.max} ms`);
    assert.deepEqual(rt.errors, [], `real senders failed during the flood${logCtx(relay, 10)}`);
    assert.ok(hold.n >= 3, `only ${hold.n} real round trips completed while the flood was held`);
    assert.ok(hold.max < RT_LIMIT, `slowest real round trip while the flood was held: ${hold.max} ms (bound ${RT_LIMIT})`);
    assert.ok(all.max < RAMP_LIMIT, `slowest real round trip: ${all.max} ms (bound ${RAMP_LIMIT}): ${JSON.stringify(rt.runs.map((r) => [r.at - t0, r.ms]))}`);
    const open = conns.filter((c) => c.closedAt === null);
    assert.equal(open.length, 0, `${open.length} flood connections still open ${HS} s + ${slack} ms after they were opened${logCtx(relay, 10)}`);
    const early = conns.filter((c) => c.closedAt - c.openedAt < HS * 1000 - 1000);
    const late = conns.filter((c) => c.closedAt - c.openedAt > HS * 1000 + slack);
    assert.equal(early.length, 0, `cut before handshake_timeout: ${JSON.stringify(early.slice(0, 5))}`);
    assert.equal(late.length, 0, `cut later than handshake_timeout + ${slack} ms: ${JSON.stringify(late.slice(0, 5))}`);
    const answered = conns.filter((c) => c.kind !== 'head' && c.received > 0);
    assert.equal(answered.length, 0, 'the relay sent bytes on a connection whose ClientHello never completed');
    const timedOutLogged = relay.stderr().split('\n').filter((l) => /handshake timed out/.test(l)).length;
    assert.ok(timedOutLogged >= N_FLOOD, `relay logged ${timedOutLogged} handshake timeouts, expected >= ${N_FLOOD}`);
  } finally {
    await loop.stop();
    await flood.close();
  }
  const back = await fdsBack('hcrelay', relayPid, fd0.relay);
  const backAgent = await fdsBack('hcmd listener', lis.pid, fd0.hcmd);
  console.log(`# relay flood: fds after: relay ${back} (baseline ${fd0.relay}), hcmd ${backAgent} (baseline ${fd0.hcmd}); relay VmRSS ${rssKb(relayPid)} kB`);
  await senderEcho();
});

// --------------------------------------------------- 5. forwarder flood ----

test(`5. hcmd forwarder: ${N_FLOOD} slow local clients (silent, a few bytes once, 1 byte/s) hold tunnels and ${N_STALL} more wait on a relay handshake that never completes; real clients on the same port keep a round trip < ${RT_LIMIT} ms while held, < ${RAMP_LIMIT} ms while they arrive (max_tunnels ${N_FLOOD + N_STALL + 50}); the stalled ones are closed at connect_timeout; fds back to baseline`, { timeout: T(180000) }, async (t) => {
  if (!enoughFiles(t, { hcrelay: relay.proc.pid, 'hcmd listener': lis.pid, node: process.pid }, 2 * (N_FLOOD + N_STALL) + 200)) return;
  const flPort = await freePort();
  const stallPort = await freePort();
  const stall = await RawListener.open(relay.listenUrl('stall'), { ca: relay.ca, token: relay.token(relay.listenUrl('stall'), 'RootManageSharedAccessKey') });
  const fwdOpts = {
    relay,
    name: 'hcmd-forwarder',
    settings: { max_tunnels: N_FLOOD + N_STALL + 50, connect_timeout: FWD_CONNECT_TIMEOUT },
    forwards: [
      { name: 'fl', hc: 'echo', rule: 'RootManageSharedAccessKey', bind: flPort },
      { name: 'stall', hc: 'stall', rule: 'RootManageSharedAccessKey', bind: stallPort },
    ],
  };
  try {
    await withFwdAgents([fwdOpts], async (fwd) => {
      await forwardEcho(flPort); // warm
      await sleep(300);
      const pids = { hcrelay: relay.proc.pid, 'hcmd listener': lis.pid, 'hcmd forwarder': fwd.pid };
      const fd0 = {};
      for (const [n, pid] of Object.entries(pids)) fd0[n] = await fdBaseline(pid);
      const echo0 = echo.sockets.size;
      const rss = rssSampler(pids, 200);
      const flood = new Flood();
      const loop = realLoop(() => forwardEcho(flPort));
      const t0 = Date.now();
      try {
        const o1 = await flood.open({ n: N_STALL, ports: [stallPort], kinds: ['silent'] });
        const o2 = await flood.open({ n: N_FLOOD, ports: [flPort], kinds: ['silent', 'bytes', 'drip'] });
        assert.deepEqual([...o1.failed, ...o2.failed], [], 'flood connections that could not be opened');
        // Every slow client has its tunnel up to the endpoint.
        let upMs;
        try {
          upMs = await until(() => echo.sockets.size >= echo0 + N_FLOOD, T(60000), 'tunnels');
        } catch {
          assert.fail(`only ${echo.sockets.size - echo0} of ${N_FLOOD} slow clients got a tunnel to the endpoint${logCtx(relay, 10)}\n${fwd.tail(10)}`);
        }
        const rampMs = Date.now() - t0;
        const fdHeld = fdCount(fwd.pid);
        console.log(`# forwarder flood: ${N_STALL} stalled + ${N_FLOOD} slow clients open after ${o1.rampMs + o2.rampMs} ms, every tunnel up after ${rampMs} ms; forwarder fds ${fd0['hcmd forwarder']} -> ${fdHeld}`);
        assert.ok(fdHeld >= fd0['hcmd forwarder'] + 2 * N_FLOOD, `the forwarder does not hold the flood: ${fdHeld} fds, baseline ${fd0['hcmd forwarder']}`);
        const holdStart = Date.now();
        const holdEnd = holdStart + 3000;
        while (Date.now() < holdEnd) await sleep(100);
        // The stalled ones: closed by the forwarder at connect_timeout.
        let conns = await flood.report();
        const stalled = conns.filter((c) => c.port === stallPort);
        const lastStall = Math.max(...stalled.map((c) => c.openedAt));
        const slack = T(4000);
        while (Date.now() < lastStall + FWD_CONNECT_TIMEOUT * 1000 + slack) {
          conns = await flood.report();
          if (conns.filter((c) => c.port === stallPort && c.closedAt === null).length === 0) break;
          await sleep(200);
        }
        const rt = await loop.stop();
        const maxRss = rss.stop();
        conns = await flood.report();
        const all = stats(rt.runs.map((r) => r.ms));
        const hold = stats(rt.between(holdStart, holdEnd));
        const stallLife = stats(conns.filter((c) => c.port === stallPort && c.closedAt !== null).map((c) => c.closedAt - c.openedAt));
        console.log(`# forwarder flood: real round trips while the flood was held: n=${hold.n} p50=${hold.p50} ms max=${hold.max} ms; whole run (ramp included) n=${all.n} p50=${all.p50} max=${all.max} ms; stalled clients closed after p50=${stallLife.p50} max=${stallLife.max} ms; max VmRSS ${JSON.stringify(maxRss)} kB`);
        assert.deepEqual(rt.errors, [], `real forward clients failed during the flood\n${fwd.tail(10)}`);
        assert.ok(hold.n >= 3, `only ${hold.n} real round trips while the flood was held`);
        assert.ok(hold.max < RT_LIMIT, `slowest real round trip while the flood was held: ${hold.max} ms (bound ${RT_LIMIT})`);
        assert.ok(all.max < RAMP_LIMIT, `slowest real round trip: ${all.max} ms (bound ${RAMP_LIMIT}): ${JSON.stringify(rt.runs.map((r) => [r.at - t0, r.ms]))}`);
        const stillStalled = conns.filter((c) => c.port === stallPort && c.closedAt === null);
        assert.equal(stillStalled.length, 0, `${stillStalled.length} clients with a stalled relay handshake still open after connect_timeout + ${slack} ms`);
        const badStall = conns.filter((c) => c.port === stallPort && (c.received > 0 || c.closedAt - c.openedAt < FWD_CONNECT_TIMEOUT * 1000 - 1000 || c.closedAt - c.openedAt > FWD_CONNECT_TIMEOUT * 1000 + slack));
        assert.deepEqual(badStall, [], `stalled clients closed too early, too late, or with bytes (connect_timeout ${FWD_CONNECT_TIMEOUT} s)`);
        assert.ok(stall.messages.filter((m) => m.json && m.json.accept).length >= N_STALL, `the stalled listener saw ${stall.messages.length} accepts, expected ${N_STALL}`);
        const cut = conns.filter((c) => c.port === flPort && c.closedAt !== null);
        assert.equal(cut.length, 0, `the forwarder closed ${cut.length} slow clients that were within max_tunnels: ${JSON.stringify(cut.slice(0, 3))}`);
        const bytesBack = conns.filter((c) => c.port === flPort && c.kind === 'bytes' && c.received !== 6);
        assert.deepEqual(bytesBack, [], 'slow clients that sent 6 bytes did not get them echoed');
      } finally {
        await loop.stop();
        rss.stop();
        await flood.close();
      }
      const back = {};
      for (const [n, pid] of Object.entries(pids)) back[n] = await fdsBack(n, pid, fd0[n]);
      await until(() => echo.sockets.size <= echo0, T(15000), 'endpoint connections to close').catch(() => assert.fail(`${echo.sockets.size - echo0} endpoint connections still open after the flood`));
      console.log(`# forwarder flood: fds after release ${JSON.stringify(back)}, baseline ${JSON.stringify(fd0)}`);
      await forwardEcho(flPort);
    });
  } finally {
    stall.close();
  }
});

// ------------------------------------------------------------ the end ------

test('hcmd listener: alive through all of it, exits 0 on SIGTERM, no sanitizer report', { timeout: T(30000) }, async () => {
  assert.ok(lis, 'the listener was never started');
  assert.ok(lis.alive(), `hcmd listener died: ${JSON.stringify(lis.exit)}\n${lis.tail(30)}`);
  const problems = await lis.stopAndCheck();
  assert.deepEqual(problems, [], `hcmd listener:\n${lis.tail(30)}`);
});

relayEpilogue(() => relay);
