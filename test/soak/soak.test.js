'use strict';
// Soak: mixed load through the whole chain for SOAK_SECONDS (default 300)
//   TCP clients -> [hcmd forward] -> hcrelay -> [hcmd connection] -> echo
// Short tunnels with random sizes (0..256 KiB, 4 at a time, SOAK_PACE_MS
// apart, default 0) plus 2 long streams paced at SOAK_STREAM_KIB/s
// (default 512), each reopened every minute. At the end: no failed transfer, the open fds of all three
// daemons equal to the start, and VmRSS growth after the warm-up (a fifth
// of the run, at most 60 s) under 2 MiB each. Under ASan the RSS bound is
// not applied (its allocator keeps freed memory in quarantine); there
// LeakSanitizer checks every daemon at exit instead.
//
//   make soak                   30 minutes on build/ (SOAK_SECONDS=1800)
//   test/run.sh runs it for 5 minutes on build/asan, at a lighter load
//   (SOAK_PACE_MS=400, SOAK_STREAM_KIB=256), beside the other tests.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { startRelay, listenSendEntities, freePort, sleep } = require('../interop/lib/relay');
const { cleanupAll, T, ASAN } = require('../interop/lib/agent');
const { closeAll, Prng, echoServer } = require('../interop/lib/endpoints');
const { FwdAgent, tcpEcho } = require('../interop/lib/forward');

const SECONDS = Number(process.env.SOAK_SECONDS || 300);
const STREAM_RATE = Number(process.env.SOAK_STREAM_KIB || 512) * 1024;
const PACE_MS = Number(process.env.SOAK_PACE_MS || 0); // pause between short tunnels
const WARMUP_MS = Math.min(60000, (SECONDS * 1000) / 5);
const SHORT_WORKERS = 4;
const STREAMS = 2;
const STREAM_LIFE_MS = 60000;
const RSS_BOUND_KB = 2048;

let relay, echo, listener, forwarder;

after(async () => {
  for (const a of [forwarder, listener]) if (a) await a.cleanup().catch(() => {});
  await cleanupAll();
  await closeAll();
  if (echo) await echo.close();
  if (relay) await relay.cleanup();
});

function procStats(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(s.match(/^VmRSS:\s+(\d+) kB/m)[1]), fds: fs.readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: null, fds: null };
  }
}

function snapshot() {
  return {
    relay: procStats(relay.proc.pid),
    listener: procStats(listener.proc.pid),
    forwarder: procStats(forwarder.proc.pid),
  };
}

const fmt = (s) => Object.entries(s).map(([k, v]) => `${k} ${v.rss} kB ${v.fds} fds`).join(', ');

// Random size, small more often than large: 0..256 KiB.
function randomSize(prng) {
  const r = prng.next(4).readUInt32LE(0) / 2 ** 32;
  return Math.floor(Math.pow(r, 3) * 256 * 1024);
}

async function shortWorker(id, port, until, stats) {
  const prng = new Prng(`short-${id}`);
  while (Date.now() < until) {
    const data = prng.next(randomSize(prng));
    const r = await tcpEcho('127.0.0.1', port, data, { ms: T(30000) }).catch((e) => ({ error: e, data: Buffer.alloc(0) }));
    if (!r.error && !r.timedOut && r.data.equals(data)) stats.shortOk++;
    else {
      stats.shortFailed++;
      stats.failures.push(`short ${data.length} bytes: ${r.error ? r.error.message || r.error.code : r.timedOut ? 'timed out' : `got ${r.data.length} bytes, different`}`);
    }
    await sleep(PACE_MS + (prng.next(1)[0] % 20));
  }
}

// One paced stream: writes random bytes at STREAM_RATE, checks every echoed
// byte against what was sent, ends after life ms (or at until).
function oneStream(id, port, life, until, stats) {
  return new Promise((resolve) => {
    const prng = new Prng(`stream-${id}-${Date.now()}`);
    const sent = [];
    let sentLen = 0, checked = 0, done = false, ending = false;
    const sock = net.connect(port, '127.0.0.1');
    const endAt = Math.min(Date.now() + life, until);
    const finish = (why) => {
      if (done) return;
      done = true;
      clearInterval(tick);
      clearTimeout(guard);
      sock.destroy();
      if (why) {
        stats.streamFailed++;
        stats.failures.push(`stream ${id}: ${why} (${checked} of ${sentLen} bytes echoed)`);
      } else {
        stats.streamOk++;
        stats.streamBytes += checked;
      }
      resolve();
    };
    const guard = setTimeout(() => finish('no end in time'), endAt - Date.now() + T(30000));
    const tick = setInterval(() => {
      if (ending) return;
      if (Date.now() >= endAt) {
        ending = true;
        sock.end();
        return;
      }
      // Backpressure: at most 1 MiB sent and not yet echoed.
      if (sentLen - checked > 1 << 20) return;
      const chunk = prng.next(Math.floor(STREAM_RATE / 10));
      sent.push(chunk);
      sentLen += chunk.length;
      sock.write(chunk);
    }, 100);
    sock.on('data', (c) => {
      let off = 0;
      while (off < c.length) {
        if (sent.length === 0) return finish('more bytes echoed than sent');
        const head = sent[0];
        const n = Math.min(head.length, c.length - off);
        if (!head.subarray(0, n).equals(c.subarray(off, off + n))) return finish(`echo differs at byte ${checked}`);
        off += n;
        checked += n;
        if (n === head.length) sent.shift();
        else sent[0] = head.subarray(n);
      }
    });
    sock.on('error', (e) => finish(e.code || e.message));
    sock.on('close', () => finish(ending && checked === sentLen ? null : 'closed early'));
  });
}

async function streamWorker(id, port, until, stats) {
  let n = 0;
  while (Date.now() < until - 1000) await oneStream(`${id}.${n++}`, port, STREAM_LIFE_MS, until, stats);
}

test(`soak: ${SECONDS} s of mixed load through forward -> hcrelay -> listener -> echo${ASAN ? ' (ASan build: RSS bound not applied, LeakSanitizer at exit)' : ''}`, { timeout: SECONDS * 1000 + T(120000) }, async (t) => {
  echo = await echoServer();
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: listenSendEntities(['soak']),
  });
  listener = new FwdAgent({ relay, name: 'hcmd-listener', connections: [{ name: 'soak', hc: 'soak', rule: 'soak/listen', endpoint: `127.0.0.1:${echo.port}` }] });
  await listener.start();
  forwarder = new FwdAgent({ relay, name: 'hcmd-forwarder', forwards: [{ name: 'soak-fwd', hc: 'soak', rule: 'soak/send', bind: `127.0.0.1:${await freePort()}` }] });
  await forwarder.start();
  const port = forwarder.fwd['soak-fwd'].port;

  const start = snapshot();
  t.diagnostic(`start: ${fmt(start)}`);
  const stats = { shortOk: 0, shortFailed: 0, streamOk: 0, streamFailed: 0, streamBytes: 0, failures: [] };
  const t0 = Date.now();
  const until = t0 + SECONDS * 1000;
  let warm = null;
  const samples = [];
  const sampler = setInterval(() => {
    const s = snapshot();
    samples.push(s);
    if (!warm && Date.now() - t0 >= WARMUP_MS) {
      warm = s;
      t.diagnostic(`after warm-up (${Math.round(WARMUP_MS / 1000)} s): ${fmt(s)}`);
    }
    if (samples.length % 12 === 0)
      t.diagnostic(`${Math.round((Date.now() - t0) / 1000)} s: ${fmt(s)}; short ok ${stats.shortOk} failed ${stats.shortFailed}, streams ok ${stats.streamOk} failed ${stats.streamFailed}`);
  }, 5000);
  try {
    const work = [];
    for (let i = 0; i < SHORT_WORKERS; i++) work.push(shortWorker(i, port, until, stats));
    for (let i = 0; i < STREAMS; i++) work.push(streamWorker(i, port, until, stats));
    await Promise.all(work);
  } finally {
    clearInterval(sampler);
  }
  // Tunnels end shortly after their clients: wait for the fds to settle.
  let end = snapshot();
  const settle = Date.now() + T(15000);
  while (Date.now() < settle && Object.keys(end).some((k) => end[k].fds !== start[k].fds)) {
    await sleep(200);
    end = snapshot();
  }
  t.diagnostic(`end: ${fmt(end)}`);
  t.diagnostic(`short tunnels ok ${stats.shortOk}, failed ${stats.shortFailed}; streams ok ${stats.streamOk}, failed ${stats.streamFailed}, ${(stats.streamBytes / 1048576).toFixed(1)} MiB echoed`);
  assert.deepEqual(stats.failures.slice(0, 20), [], `failed transfers (${stats.failures.length})`);
  assert.ok(stats.shortOk >= SECONDS * Math.min(1, 2000 / (PACE_MS + 100)), `only ${stats.shortOk} short tunnels in ${SECONDS} s`);
  assert.ok(stats.streamOk >= STREAMS, `only ${stats.streamOk} long streams finished`);
  for (const k of Object.keys(start)) assert.equal(end[k].fds, start[k].fds, `${k}: open fds ${start[k].fds} at the start, ${end[k].fds} at the end`);
  assert.ok(warm, 'no sample after the warm-up');
  for (const k of Object.keys(start)) {
    const growth = end[k].rss - warm[k].rss;
    t.diagnostic(`${k}: VmRSS growth after warm-up ${growth} kB`);
    if (!ASAN) assert.ok(growth < RSS_BOUND_KB, `${k}: VmRSS grew ${growth} kB after the warm-up (bound ${RSS_BOUND_KB} kB)`);
  }
  for (const [name, a] of [['listener', listener], ['forwarder', forwarder]]) {
    const problems = await a.stopAndCheck();
    assert.deepEqual(problems, [], `${name} shutdown`);
  }
  const e = await relay.stop(T(10000));
  assert.equal(relay.sanitizerReport(), null, 'sanitizer report in hcrelay stderr');
  assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, 'hcrelay exit status');
});
