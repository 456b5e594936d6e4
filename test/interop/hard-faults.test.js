'use strict';
// hcmd under hard faults: the relay SIGKILLed and restarted again and again
// under load (reconnect time, no fd or memory growth); a control channel
// behind a middlebox that silently drops an idle flow (found dead by its
// unanswered pings); stalls in every phase (an endpoint that never reads, a
// relay that answers the upgrade or the user-metadata request one byte a
// second, a relay that never completes TLS, a rendezvous that never
// completes TLS or is closed before its answer, the same stalls for a
// forward): each phase's deadline fires, hcmd retries, and the other
// tunnels of the same hcmd are not held up.
//
// Loopback only. The fake relays and the middlebox are small Node servers
// in this file; hcmd and hcrelay are the real binaries.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { newKey, freePort, withTimeout } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { RelayHost, withRelayHost, stopLiveHosts, allHosts, lineTime, relayListeningAt } = require('./lib/relayhost');
const { cleanupAll, T, ASAN, withAgent, openSender, streamFromSender, sleep } = require('./lib/agent');
const { closeAll, echoServer, tcpServer, Prng } = require('./lib/endpoints');
const { withFwdAgents, tcpEcho, tcpWatchClose, reEsc } = require('./lib/forward');

const MiB = 1 << 20;

// Every relay host, agent and fake server of this file, for the after()
// hook and the closing checks.
const allAgents = [];
const fakes = new Set();

let main; // the relay most tests share (restartable host, fixed port)
let echo; // an echo endpoint most tests share

before(async () => {
  echo = await echoServer();
  main = new RelayHost({ relay: { log_level: 'info' }, hcs: ['bh', 'stall', 'echo', 'good', 'rv'] });
  await main.start();
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll();
  for (const f of [...fakes]) await f.close().catch(() => {});
  await closeAll();
  await stopLiveHosts();
});

// ---------------------------------------------------------------- relay ----


function connString(host, hc, rule, key, port = host.port) {
  return `Endpoint=sb://localhost:${port}/;SharedAccessKeyName=${rule};SharedAccessKey=${key};EntityPath=${hc}`;
}

async function roundTrip(relay, hc, text, ms = T(5000)) {
  const s = await openSender(relay, hc, { rule: 'RootManageSharedAccessKey', ms });
  try {
    await s.send(Buffer.from(text), { binary: true });
    await s.waitBytes(Buffer.byteLength(text), ms);
    return s.data().toString();
  } finally {
    s.close(1000);
    await s.waitClose(T(3000)).catch(() => {});
    s.terminate();
  }
}

// Like roundTrip, timed; resolves { ok, ms, error }.
async function timedRoundTrip(relay, hc, bytes) {
  const payload = crypto.randomBytes(bytes);
  const t0 = Date.now();
  let s;
  try {
    s = await openSender(relay, hc, { ms: T(5000) });
    await s.send(payload);
    await s.waitBytes(bytes, T(5000));
    const ok = s.data().equals(payload);
    return { ok, ms: Date.now() - t0, error: ok ? null : 'echo differs' };
  } catch (e) {
    return { ok: false, ms: Date.now() - t0, error: e.message };
  } finally {
    if (s) {
      s.close(1000);
      await s.waitClose(T(3000)).catch(() => {});
      s.terminate();
    }
  }
}

// ------------------------------------------------------------- /proc -------

function fdList(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).map((n) => {
      try {
        return `${n} -> ${fs.readlinkSync(`/proc/${pid}/fd/${n}`)}`;
      } catch {
        return `${n} -> ?`;
      }
    });
  } catch {
    return null;
  }
}

function fdCount(pid) {
  const l = fdList(pid);
  return l ? l.length : null;
}

function rssKb(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// Waits until the agent has no endpoint connection left and its fd count
// has held still for 500 ms; resolves that count.
async function quiesce(agent, endpoint, ms = T(10000)) {
  const deadline = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const n = fdCount(agent.pid);
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (endpoint.sockets.size === 0 && Date.now() - since >= 500) {
      return n;
    }
    await sleep(50);
  }
  throw new Error(`hcmd did not settle within ${ms} ms: ${endpoint.sockets.size} endpoint connections, fds:\n${(fdList(agent.pid) || []).join('\n')}`);
}

// Nearest-rank percentile.
function pct(sorted, p) {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

// ------------------------------------------------------------ load ---------

// `n` senders that keep opening tunnels to `hc` and streaming `bytes`
// through them (in 16 KiB messages), checking the echo. A tunnel broken by a
// relay kill counts as failed and the sender tries again after 50 ms.
function startLoad(host, hc, { n = 3, bytes = 64 * 1024, chunk = 16 * 1024 } = {}) {
  const st = { ok: 0, failed: 0, mismatches: 0, inflight: 0, errors: new Map() };
  let stop = false;
  let paused = false;
  const idle = new Array(n).fill(false);
  const loops = [];
  const note = (msg) => {
    const k = String(msg).replace(/\d+/g, 'N').slice(0, 80);
    st.errors.set(k, (st.errors.get(k) || 0) + 1);
  };
  for (let i = 0; i < n; i++) {
    loops.push(
      (async () => {
        for (let iter = 0; !stop && iter < 100000; iter++) {
          if (paused) {
            idle[i] = true;
            while (paused && !stop) await sleep(20);
            idle[i] = false;
            continue;
          }
          const relay = host.current;
          st.inflight++;
          let s = null;
          let failedNow = false;
          try {
            s = await openSender(relay, hc, { ms: T(5000) });
            const payload = crypto.randomBytes(bytes);
            for (let off = 0; off < bytes; off += chunk) await s.send(payload.subarray(off, off + chunk));
            await s.waitBytes(bytes, T(5000));
            if (s.data().equals(payload)) st.ok++;
            else st.mismatches++;
          } catch (e) {
            st.failed++;
            failedNow = true;
            note(e.message);
          } finally {
            st.inflight--;
            if (s) {
              s.close(1000);
              await s.waitClose(T(2000)).catch(() => {});
              s.terminate();
            }
          }
          if (!stop && failedNow) await sleep(50);
        }
        idle[i] = true;
      })(),
    );
  }
  return {
    st,
    async pause() {
      paused = true;
      const deadline = Date.now() + T(15000);
      while (idle.some((x) => !x) && Date.now() < deadline) await sleep(20);
      if (idle.some((x) => !x)) throw new Error('load senders did not pause');
    },
    resume() {
      paused = false;
    },
    async stop() {
      stop = true;
      paused = false;
      await withTimeout(Promise.all(loops), T(20000), 'load senders to stop');
    },
  };
}

// ------------------------------------------------------ fault servers ------

// Records of every connection a fault server saw:
//   { at (TCP accept), closedAt, request (first line, if read), sent }
function faultServer(kind, rec, server) {
  const self = {
    kind,
    server,
    conns: rec,
    port: 0,
    sockets: new Set(),
    async close() {
      fakes.delete(self);
      for (const s of self.sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
    // Resolves once at least n connections have ended.
    async waitClosed(n, ms) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (rec.filter((c) => c.closedAt).length >= n) return rec;
        await sleep(25);
      }
      throw new Error(`${kind}: ${rec.filter((c) => c.closedAt).length} of ${n} connections ended within ${ms} ms (${rec.length} accepted)`);
    },
  };
  fakes.add(self);
  server.on('connection', (sock) => {
    const c = { at: Date.now(), closedAt: null, request: null, sent: 0 };
    rec.push(c);
    self.sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => {
      c.closedAt = Date.now();
      self.sockets.delete(sock);
    });
    c.remotePort = sock.remotePort;
  });
  // The record of a TLS socket's underlying connection.
  self.recFor = (tlsSock) => rec.find((c) => c.remotePort === tlsSock.remotePort && !c.closedAt) || { at: Date.now(), closedAt: null, sent: 0 };
  return self;
}

async function listen(self) {
  await new Promise((resolve, reject) => {
    self.server.once('error', reject);
    self.server.listen(0, '127.0.0.1', resolve);
  });
  self.port = self.server.address().port;
  return self;
}

// Accepts TCP and says nothing, ever: TLS never completes. Reads (and
// drops) what it gets so that the client's writes do not block.
function muteServer() {
  const rec = [];
  const server = net.createServer({ allowHalfOpen: false }); // FIN from hcmd ends it
  const self = faultServer('mute server', rec, server);
  server.on('connection', (sock) => sock.on('data', () => {}));
  return listen(self);
}

// A TLS fault server: for each connection that completes TLS, reads the
// request head and calls onHead(sock, rec, head) once; later bytes from
// hcmd (pings, a close) are ignored.
function tlsFaultServer(kind, certs, onHead) {
  const rec = [];
  const server = tls.createServer({ key: fs.readFileSync(certs.keyFile), cert: fs.readFileSync(certs.certFile) });
  const self = faultServer(kind, rec, server);
  server.on('tlsClientError', () => {});
  server.on('secureConnection', (sock) => {
    const c = self.recFor(sock);
    self.sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => self.sockets.delete(sock));
    let buf = Buffer.alloc(0);
    let done = false;
    sock.on('data', (d) => {
      if (done) return;
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      done = true;
      onHead(sock, c, buf.subarray(0, i).toString('latin1'));
    });
  });
  return self;
}

// Completes TLS, reads the request head, then writes its answer one byte a
// second: a WebSocket 101 (with the right Sec-WebSocket-Accept) to an
// upgrade, a 200 with a JSON body to anything else.
function slowServer(certs) {
  const self = tlsFaultServer('byte-a-second relay', certs, (sock, c, head) => {
    c.request = head.split('\r\n')[0].replace(/sb-hc-token=[^& ]*/g, 'sb-hc-token=(not shown)');
    const km = head.match(/^sec-websocket-key:\s*(\S+)/im);
    const answer = km
      ? `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(km[1])}\r\n\r\n`
      : 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
    const bytes = Buffer.from(answer, 'latin1');
    const timer = setInterval(() => {
      if (c.sent >= bytes.length || sock.destroyed) return clearInterval(timer);
      sock.write(bytes.subarray(c.sent, c.sent + 1));
      c.sent++;
    }, 1000);
    sock.on('close', () => clearInterval(timer));
  });
  return listen(self);
}

// A relay that completes the control-channel upgrade at once and then sends
// one accept per control channel, whose rendezvous address is `rvPort` (a
// mute server). Nothing else: no pings, no pongs.
function acceptorServer(certs, rvPort) {
  const self = tlsFaultServer('accepting relay', certs, (sock, c, head) => {
    c.request = head.split('\r\n')[0];
    const km = head.match(/^sec-websocket-key:\s*(\S+)/im);
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(km ? km[1] : '')}\r\n\r\n`);
    const id = crypto.randomUUID();
    const accept = {
      accept: {
        address: `wss://localhost:${rvPort}/$hc/rv?sb-hc-action=accept&sb-hc-id=${id}`,
        id,
        connectHeaders: {},
        remoteEndpoint: { address: '127.0.0.1', port: 40000 },
      },
    };
    self.accepts.push({ id, at: Date.now() });
    sock.write(serverFrame(JSON.stringify(accept)));
  });
  self.accepts = [];
  return listen(self);
}

// Completes TLS, reads the request head, then closes cleanly (close_notify
// and FIN) without an answer: a relay that stops in the middle.
function closingServer(certs) {
  const self = tlsFaultServer('closing relay', certs, (sock, c, head) => {
    c.request = head.split('\r\n')[0];
    sock.end();
  });
  return listen(self);
}

function wsAccept(key) {
  return crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// One unmasked text frame (server to client).
function serverFrame(text) {
  const p = Buffer.from(text);
  let h;
  if (p.length < 126) h = Buffer.from([0x81, p.length]);
  else {
    h = Buffer.alloc(4);
    h[0] = 0x81;
    h[1] = 126;
    h.writeUInt16BE(p.length, 2);
  }
  return Buffer.concat([h, p]);
}

// A TCP relay between hcmd and hcrelay that can silently drop a flow: a
// blackholed flow forwards nothing in either direction, and nobody is told
// (no FIN, no RST): both sockets stay open and what arrives is discarded.
// New connections are forwarded normally.
async function middlebox(targetPort) {
  const flows = [];
  const server = net.createServer({ allowHalfOpen: true });
  const self = {
    flows,
    port: 0,
    async close() {
      fakes.delete(self);
      for (const f of flows) {
        f.down.destroy();
        f.up.destroy();
      }
      await new Promise((r) => server.close(() => r()));
    },
    blackhole(f) {
      f.holed = true;
      f.holedAt = Date.now();
    },
  };
  fakes.add(self);
  server.on('connection', (down) => {
    const up = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    const f = { down, up, holed: false, holedAt: null, toRelay: 0, toAgent: 0, dropped: 0, downClosed: false, upClosed: false, at: Date.now() };
    flows.push(f);
    down.on('error', () => {});
    up.on('error', () => {});
    down.on('data', (d) => {
      if (f.holed) f.dropped += d.length;
      else {
        f.toRelay += d.length;
        up.write(d);
      }
    });
    up.on('data', (d) => {
      if (f.holed) f.dropped += d.length;
      else {
        f.toAgent += d.length;
        down.write(d);
      }
    });
    down.on('end', () => f.holed || up.end());
    up.on('end', () => f.holed || down.end());
    down.on('close', () => {
      f.downClosed = true;
      if (!f.holed) up.destroy();
    });
    up.on('close', () => {
      f.upClosed = true;
      if (!f.holed) down.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  self.port = server.address().port;
  return self;
}

// Every agent a test starts, for the closing checks.
function track(...agents) {
  for (const a of agents) if (!allAgents.includes(a)) allAgents.push(a);
}

// ---------------------------------------------------------------- tests ----

const CYCLES = 50;
const WARM = 5;
const ASAN_SMALL_QUARANTINE = 'quarantine_size_mb=1:thread_local_quarantine_size_kb=64';

test(`1. hcrelay SIGKILLed and restarted ${CYCLES} times under load: hcmd is back within 1 s (p99) of the relay listening each time, never exits, same fds after, RSS flat`, { timeout: T(150000) }, async () => {
  await withRelayHost({ relay: { log_level: 'info' }, hcs: ['hc'] }, async (host) => {
    const relay1 = await host.start();
    // Under ASan, freed memory waits in a quarantine of up to 256 MB, which
    // VmRSS would show as growth: a small one for this hcmd.
    const asanBefore = process.env.ASAN_OPTIONS;
    const restoreAsan = () => {
      if (asanBefore === undefined) delete process.env.ASAN_OPTIONS;
      else process.env.ASAN_OPTIONS = asanBefore;
    };
    if (ASAN) process.env.ASAN_OPTIONS = `${asanBefore || 'abort_on_error=0:detect_leaks=1'}:${ASAN_SMALL_QUARANTINE}`;
    const opts = {
      relay: relay1,
      name: 'hcmd[restarts]',
      settings: { retry_max: 1, connect_timeout: 5 },
      connections: [{ name: 'hc', hc: 'hc', rule: 'hc/listen', key: host.listenKey, endpoint: `127.0.0.1:${echo.port}` }],
    };
    await withAgent(opts, async (agent) => {
      track(agent);
      restoreAsan(); // for the relays started from here on
      for (let i = 0; i < 3; i++) assert.equal(await roundTrip(relay1, 'hc', `warm-up ${i}`), `warm-up ${i}`);
      const fd0 = await quiesce(agent, echo);
      const fds0 = fdList(agent.pid);
      const load = startLoad(host, 'hc', { n: 3 });
      const backs = [];
      const agentBacks = [];
      let killedInFlight = 0;
      let rss0 = null;
      let fdWarm = null;
      try {
        for (let i = 0; i < CYCLES; i++) {
          // The load is running through the current relay.
          const okBefore = load.st.ok;
          const lw = Date.now() + T(10000);
          while (load.st.ok === okBefore && Date.now() < lw) await sleep(10);
          assert.ok(load.st.ok > okBefore, `cycle ${i}: no load tunnel completed within ${T(10000)} ms (${JSON.stringify([...load.st.errors])})`);
          const relay = host.current;
          const mark = agent.mark();
          if (load.st.inflight > 0) killedInFlight++;
          relay.proc.kill('SIGKILL');
          await withTimeout(relay._exited, 5000, 'relay exit after SIGKILL');
          await agent.waitForLog(/hc: control channel down: .*/, T(5000), mark);
          // Down for 0, 150 or 300 ms: the restart meets different points
          // of hcmd's backoff.
          const down = [0, 150, 300][i % 3];
          if (down) await sleep(down);
          const r2 = await host.start();
          const listenAt = relayListeningAt(r2);
          const m = await r2.waitForLog(/.*listener \S+ on hc connected from .*/, T(10000));
          const back = lineTime(m[0]) - listenAt;
          assert.ok(Number.isFinite(back), `cycle ${i}: timestamps: ${m[0]} / listening at ${listenAt}`);
          backs.push(back);
          const am = await agent.waitForLog(/.*hc: connected to \S+ as listener.*/, T(5000), mark);
          agentBacks.push(lineTime(am[0]) - listenAt);
          assert.ok(agent.alive(), `cycle ${i}: hcmd exited: ${JSON.stringify(agent.exit)}`);
          agent.relay = r2;
          assert.equal(await roundTrip(r2, 'hc', `cycle ${i}`), `cycle ${i}`, `cycle ${i}: round trip after the restart`);
          if (i === WARM - 1) {
            await load.pause();
            fdWarm = await quiesce(agent, echo);
            rss0 = rssKb(agent.pid);
            load.resume();
          }
        }
      } finally {
        await load.stop();
      }
      const fd1 = await (async () => {
        // Every tunnel is closed: the count must come back to fd0 exactly.
        const deadline = Date.now() + T(10000);
        let n = fdCount(agent.pid);
        while (n !== fd0 && Date.now() < deadline) {
          await sleep(100);
          n = fdCount(agent.pid);
        }
        await quiesce(agent, echo);
        return fdCount(agent.pid);
      })();
      const rss1 = rssKb(agent.pid);
      const sorted = [...backs].sort((a, b) => a - b);
      const asorted = [...agentBacks].sort((a, b) => a - b);
      const [p50, p99, max] = [pct(sorted, 50), pct(sorted, 99), sorted[sorted.length - 1]];
      console.log(`# ${CYCLES} SIGKILL/restart cycles: relay listening -> hcmd's listener connected (relay's clock): p50 ${p50} ms, p99 ${p99} ms, max ${max} ms; hcmd's "connected" line: p50 ${pct(asorted, 50)} ms, p99 ${pct(asorted, 99)} ms`);
      console.log(`# all: ${backs.join(' ')}`);
      console.log(`# load: ${load.st.ok} tunnels echoed, ${load.st.failed} failed (relay killed or not yet back), ${load.st.mismatches} corrupt; tunnels in flight at ${killedInFlight} of ${CYCLES} kills; errors: ${JSON.stringify([...load.st.errors].slice(0, 6))}`);
      if (ASAN) console.log(`# ASan build: hcmd ran with ${ASAN_SMALL_QUARANTINE} for the VmRSS figures`);
      console.log(`# hcmd fds: ${fd0} before, ${fdWarm} after ${WARM} cycles, ${fd1} after ${CYCLES}; VmRSS after ${WARM} cycles ${rss0} kB, after ${CYCLES} ${rss1} kB (${rss1 - rss0 >= 0 ? '+' : ''}${rss1 - rss0} kB)`);
      assert.ok(agent.alive(), `hcmd exited: ${JSON.stringify(agent.exit)}`);
      assert.equal(backs.length, CYCLES);
      assert.ok(p99 < 1000, `p99 of the reconnect time is ${p99} ms (limit 1000 ms); all: ${backs.join(' ')}`);
      assert.equal(load.st.mismatches, 0, 'a load tunnel echoed different bytes');
      assert.ok(load.st.ok >= CYCLES * 2, `only ${load.st.ok} load tunnels completed`);
      assert.ok(killedInFlight >= CYCLES / 2, `load tunnels were in flight at only ${killedInFlight} of ${CYCLES} kills`);
      assert.equal(fd1, fd0, `hcmd holds ${fd1} fds after the restarts, ${fd0} before\nbefore:\n${fds0.join('\n')}\nafter:\n${(fdList(agent.pid) || []).join('\n')}`);
      const growth = rss1 - rss0;
      const limitKb = ASAN ? 8 * 1024 : 1024;
      assert.ok(growth < limitKb, `hcmd VmRSS grew by ${growth} kB over ${CYCLES - WARM} cycles (limit ${limitKb} kB)`);
      assert.equal(await roundTrip(host.current, 'hc', 'after all'), 'after all');
    }).finally(restoreAsan);
  });
});

test('2. middlebox drops the idle control channel silently: hcmd finds it dead by two unanswered pings (ping_interval = 1), says so, reconnects; senders work again', { timeout: T(60000) }, async () => {
  const P = 1; // ping_interval, seconds
  const mb = await middlebox(main.port);
  try {
    const opts = {
      relay: main.current,
      name: 'hcmd[middlebox]',
      settings: { ping_interval: P, retry_max: 1, connect_timeout: 3 },
      connections: [{ name: 'bh', connectionString: connString(main, 'bh', 'listen', main.listenKey, mb.port), endpoint: `127.0.0.1:${echo.port}` }],
    };
    await withAgent(opts, async (agent) => {
      track(agent);
      const relay = main.current;
      const lid1 = (await agent.waitForLog(/bh: connected to \S+ as listener (\S+)/, T(5000)))[1];
      assert.equal(mb.flows.length, 1, 'flows through the middlebox');
      assert.equal(await roundTrip(relay, 'bh', 'through the middlebox'), 'through the middlebox');
      // Idle, but pings and pongs pass through the middlebox.
      const f = mb.flows[0];
      const [up0, dn0] = [f.toRelay, f.toAgent];
      await sleep(P * 1000 * 2 + 300);
      assert.ok(f.toRelay > up0 && f.toAgent > dn0, `no ping/pong through the middlebox in ${2 * P + 0.3} s (${f.toRelay - up0} bytes up, ${f.toAgent - dn0} down)`);
      assert.equal(agent.count(/bh: control channel down/), 0, 'the channel dropped before the blackhole');

      const mark = agent.mark();
      mb.blackhole(f);
      const dead = await agent.waitForLog(/.*bh: no pong for two pings.*/, T((3 * P + 3) * 1000), mark);
      const detectMs = lineTime(dead[0]) - f.holedAt;
      const downLine = await agent.waitForLog(/.*bh: control channel down: .*/, T(2000), mark);
      const back = await agent.waitForLog(/.*bh: connected to \S+ as listener (\S+).*/, T(5000), mark);
      const backMs = lineTime(back[0]) - lineTime(downLine[0]);
      console.log(`# blackholed at +0: "${dead[0].replace(/^\S+ /, '')}" at +${detectMs} ms; "${downLine[0].replace(/^\S+ /, '')}"; reconnected ${backMs} ms later (${mb.flows.length} flows)`);
      // Pings go out every P s; two go unanswered, the third tick declares
      // the channel dead: between 2P and 3P after the blackhole.
      const slack = ASAN ? 1000 : 500;
      assert.ok(detectMs >= 2 * P * 1000 - 150, `dead after ${detectMs} ms: sooner than two ping intervals`);
      assert.ok(detectMs <= 3 * P * 1000 + slack, `dead after ${detectMs} ms (limit ${3 * P * 1000 + slack} ms: two unanswered pings at ping_interval ${P} s)`);
      assert.match(downLine[0], /no answer to pings/);
      assert.ok(f.dropped > 0, 'hcmd sent nothing into the blackhole (no pings?)');
      assert.ok(!f.upClosed, 'the middlebox told the relay (the blackhole must be silent)');
      assert.equal(mb.flows.length, 2, 'a second flow through the middlebox');
      const lid2 = back[1];
      assert.notEqual(lid2, lid1);
      // The relay still has the stale listener (it never heard of the drop).
      const l2 = await relay.waitForLog(new RegExp(`listener ${reEsc(lid2)} on bh connected from .*\\((\\d+) listening\\)`), T(3000));
      assert.equal(l2[1], '2', `the relay should still count the stale listener: ${l2[0]}`);
      // The middlebox forgets the stale flow at last (its idle timer): the
      // relay drops that listener, and senders reach hcmd's new channel.
      f.up.resetAndDestroy();
      await relay.waitForLog(new RegExp(`listener ${reEsc(lid1)} disconnected`), T(5000));
      for (let i = 0; i < 3; i++) assert.equal(await roundTrip(relay, 'bh', `after the blackhole ${i}`), `after the blackhole ${i}`);
      assert.equal(agent.count(/bh: control channel down/, mark), 1, 'the new channel dropped');
    });
  } finally {
    await mb.close();
  }
});

test('3a. an endpoint that never reads while the sender pushes: hcmd VmRSS bounded, the sender held back, another tunnel of the same hcmd echoes promptly; sender and endpoint leave, the tunnel ends', { timeout: T(60000) }, async () => {
  const limitKb = ASAN ? 200 * 1024 : 32 * 1024;
  const stuck = await tcpServer((sock) => sock.pause()); // accepts, never reads
  try {
    const relay = main.current;
    const opts = {
      relay,
      name: 'hcmd[stall]',
      connections: [
        { name: 'stall', hc: 'stall', rule: 'stall/listen', key: main.listenKey, endpoint: `127.0.0.1:${stuck.port}` },
        { name: 'echo', hc: 'echo', rule: 'echo/listen', key: main.listenKey, endpoint: `127.0.0.1:${echo.port}` },
      ],
    };
    await withAgent(opts, async (agent) => {
      track(agent);
      const mark = agent.mark();
      const idleKb = rssKb(agent.pid);
      const s = await openSender(relay, 'stall');
      const samples = [];
      const sampler = setInterval(() => samples.push(rssKb(agent.pid)), 100);
      let stopped = false;
      try {
        const streaming = streamFromSender(s, 256 * MiB, new Prng('stall'), { window: 4 * MiB, shouldStop: () => stopped });
        // Until the push stalls: nothing handed to the kernel for 1 s.
        const t0 = Date.now();
        let last = -1;
        let since = Date.now();
        while (Date.now() - t0 < T(20000)) {
          if (s.sent !== last) {
            last = s.sent;
            since = Date.now();
          } else if (Date.now() - since >= 1000) break;
          await sleep(50);
        }
        const stallAt = s.sent;
        assert.ok(Date.now() - since >= 1000, `the sender never stalled: ${(s.sent / MiB).toFixed(1)} MiB pushed in ${Date.now() - t0} ms`);
        // Meanwhile, another tunnel of the same hcmd: prompt and exact.
        const times = [];
        for (let i = 0; i < 5; i++) {
          const r = await timedRoundTrip(relay, 'echo', 64 * 1024);
          assert.ok(r.ok, `echo tunnel ${i} during the stall: ${r.error}`);
          times.push(r.ms);
        }
        await sleep(500);
        stopped = true;
        clearInterval(sampler);
        const valid = samples.filter((x) => x !== null);
        const maxKb = Math.max(...valid);
        console.log(`# stalled after ${(stallAt / MiB).toFixed(1)} MiB (${s.sent - stallAt} bytes more since); hcmd VmRSS idle ${idleKb} kB, max ${maxKb} kB; echo tunnels meanwhile: ${times.join(', ')} ms`);
        assert.ok(stallAt < 64 * MiB, `${stallAt} bytes went into an endpoint that reads nothing`);
        assert.equal(s.sent, stallAt, 'the sender got going again while the endpoint reads nothing');
        assert.ok(maxKb < limitKb, `hcmd VmRSS reached ${maxKb} kB (limit ${limitKb} kB)`);
        if (!ASAN) assert.ok(maxKb - idleKb < 8 * 1024, `hcmd VmRSS grew by ${maxKb - idleKb} kB while held back (1 MiB high-water mark)`);
        const slowest = Math.max(...times);
        assert.ok(slowest < (ASAN ? 3000 : 1000), `an echo tunnel took ${slowest} ms during the stall`);
        assert.equal(agent.count(/control channel down/, mark), 0, 'a control channel dropped during the stall');
        // The sender goes away and so does the endpoint (a reset): the
        // tunnel, held back by backpressure on both relay hops, must end.
        const t1 = Date.now();
        s.terminate();
        await withTimeout(streaming, T(5000), 'sender stream to stop');
        for (const sock of stuck.sockets) sock.resetAndDestroy();
        const tl = await agent.waitForLog(/.*tunnel stall id=.*/, T(8000), mark);
        const endMs = Date.now() - t1;
        console.log(`# sender and endpoint gone: the tunnel ended after ${endMs} ms: ${tl[0].replace(/^\S+ /, '')}`);
        assert.ok(endMs < T(6000), `the tunnel ended ${endMs} ms after the sender and the endpoint left`);
      } finally {
        clearInterval(sampler);
        stopped = true;
        s.terminate();
      }
    });
  } finally {
    await stuck.close();
  }
});

const CT = 2; // connect_timeout for the stall tests, seconds

test(`3b-3d. stalled relays (connect_timeout = ${CT}): a 101 at one byte a second, TLS never completed, a slow user-metadata answer; listeners and forwards give up at the deadline, log it, retry; the hcmd's other connection and forward keep working`, { timeout: T(60000) }, async () => {
  const certs = main.certs;
  const slow = await slowServer(certs); // control channels
  const mute = await muteServer();
  const slowMeta = await slowServer(certs); // the endpoint from the user metadata
  const slowF = await slowServer(certs); // forwards
  const muteF = await muteServer();
  const relay = main.current;
  const key = newKey(); // the fakes check nothing
  const ports = { good: await freePort(), slow: await freePort(), mute: await freePort() };
  const opts = {
    relay,
    name: 'hcmd[stalls]',
    settings: { connect_timeout: CT, retry_max: 1 },
    connections: [
      { name: 'good', hc: 'good', rule: 'good/listen', key: main.listenKey, endpoint: `127.0.0.1:${echo.port}` },
      { name: 'slow101', connectionString: connString(main, 'hc', 'listen', key, slow.port), endpoint: `127.0.0.1:${echo.port}` },
      { name: 'mute', connectionString: connString(main, 'hc', 'listen', key, mute.port), endpoint: `127.0.0.1:${echo.port}` },
      { name: 'metaslow', connectionString: connString(main, 'hc', 'listen', key, slowMeta.port) },
    ],
    forwards: [
      { name: 'good-f', hc: 'good', rule: 'good/send', key: main.sendKey, bind: ports.good },
      { name: 'slow-f', connectionString: connString(main, 'hc', 'send', key, slowF.port), bind: ports.slow },
      { name: 'mute-f', connectionString: connString(main, 'hc', 'send', key, muteF.port), bind: ports.mute },
    ],
    start: { waitConnected: false },
  };
  await withFwdAgents([opts], async (agent) => {
    track(agent);
    await agent.waitForLog(/hcmd info: good: connected to/, T(10000));
    for (const f of ['good-f', 'slow-f', 'mute-f']) await agent.waitForLog(new RegExp(`forward ${f}: listening on`), T(5000));
    const t0 = Date.now();

    // The forwards' local clients, at the same time as the listeners' stalls.
    let fwdErr = null;
    const fwdP = Promise.all([
      tcpWatchClose('127.0.0.1', ports.slow, { ms: T(15000), send: Buffer.from('hello') }),
      tcpWatchClose('127.0.0.1', ports.mute, { ms: T(15000) }),
    ]).catch((e) => {
      fwdErr = e;
      return [];
    });
    // Meanwhile the good connection and forward: prompt, exact.
    const goodTimes = [];
    const fwdTimes = [];
    let stopGood = false;
    let goodErr = null;
    const goodLoop = (async () => {
      for (let i = 0; !stopGood && i < 200; i++) {
        const r = await timedRoundTrip(relay, 'good', 16 * 1024);
        assert.ok(r.ok, `good connection, tunnel ${i} during the stalls: ${r.error}`);
        goodTimes.push(r.ms);
        const data = crypto.randomBytes(16 * 1024);
        const e = await tcpEcho('127.0.0.1', ports.good, data, { ms: T(5000) });
        assert.ok(e.data.equals(data), `good forward, connection ${i} during the stalls: ${e.data.length} bytes back${e.timedOut ? ' (timed out)' : ''}`);
        fwdTimes.push(e.echoMs);
        await sleep(200);
      }
    })().catch((e) => {
      goodErr = e;
    });
    try {
      // Each stalled listener: its first attempt cut at the deadline, then
      // a second attempt.
      const budget = T((2 * CT + 2) * 1000 + 3000);
      const [slowRec, muteRec, metaRec] = await Promise.all([slow.waitClosed(1, budget), mute.waitClosed(1, budget), slowMeta.waitClosed(1, budget)]);
      const retryBudget = T(CT * 1000 + 1000 + 2000);
      await Promise.all([
        withTimeout((async () => { while (slow.conns.length < 2) await sleep(25); })(), retryBudget, 'a second attempt at the byte-a-second relay'),
        withTimeout((async () => { while (mute.conns.length < 2) await sleep(25); })(), retryBudget, 'a second attempt at the mute relay'),
        withTimeout((async () => { while (slowMeta.conns.length < 2) await sleep(25); })(), retryBudget, 'a second attempt at reading the user metadata'),
      ]);
      const cut = (c) => c.closedAt - c.at;
      const gap = (r) => r[1].at - r[0].closedAt;
      const [fs1, fm1] = await fwdP;
      if (fwdErr) throw fwdErr;
      console.log(`# cut after (connect_timeout ${CT} s): 101 a byte a second ${cut(slowRec[0])} ms (${slowRec[0].sent} bytes of the answer sent), TLS never completed ${cut(muteRec[0])} ms, user metadata a byte a second ${cut(metaRec[0])} ms; next attempts ${gap(slow.conns)}, ${gap(mute.conns)}, ${gap(slowMeta.conns)} ms later`);
      console.log(`# forward clients closed after: byte-a-second relay ${fs1.ms} ms, mute relay ${fm1.ms} ms; the good connection meanwhile: ${goodTimes.length} round trips, max ${Math.max(...goodTimes)} ms; the good forward: max ${Math.max(...fwdTimes)} ms`);
      const lo = CT * 1000 - 500;
      const hi = CT * 1000 + (ASAN ? 1500 : 700);
      for (const [what, c] of [['byte-a-second 101', slowRec[0]], ['mute relay', muteRec[0]], ['byte-a-second user metadata', metaRec[0]]]) {
        assert.ok(cut(c) >= lo && cut(c) <= hi, `${what}: hcmd closed the connection ${cut(c)} ms after it was accepted (expected ${lo}..${hi} ms)`);
      }
      assert.match(slowRec[0].request || '', /^GET \/\$hc\/hc\?sb-hc-action=listen/, 'the byte-a-second relay saw no listen request');
      assert.ok(slowRec[0].sent < 20, `the byte-a-second relay sent ${slowRec[0].sent} bytes of its answer before the cut`);
      assert.match(metaRec[0].request || '', /^GET \/hc\?api-version=/, 'the metadata request');
      for (const r of [slow.conns, mute.conns, slowMeta.conns]) assert.ok(gap(r) <= 1000 + (ASAN ? 1500 : 500), `next attempt ${gap(r)} ms after the cut (retry_max 1 s)`);
      // The log says what happened, per connection.
      for (const n of ['slow101', 'mute']) {
        const l = agent.lines(new RegExp(`hcmd warning: ${n}: control channel down: `));
        assert.ok(l.length >= 1, `no "control channel down" line for ${n}:\n${agent.tail(30)}`);
        assert.match(l[0], /timed out/, `${n}: ${l[0]}`);
      }
      const ml = agent.lines(/hcmd warning: metaslow: reading the endpoint from the relay: /);
      assert.ok(ml.length >= 1 && /timed out/.test(ml[0]), `metaslow: ${ml[0] || agent.tail(30)}`);
      // The forwards' clients: closed at the deadline, with a reason.
      for (const [name, r, srv] of [['slow-f', fs1, slowF], ['mute-f', fm1, muteF]]) {
        assert.equal(r.timedOut, false, `forward ${name}: the client is still open after ${T(15000)} ms`);
        assert.ok(r.ms >= lo && r.ms <= hi, `forward ${name}: the client was closed ${r.ms} ms after connect (expected ${lo}..${hi} ms)`);
        assert.equal(r.received, 0, `forward ${name}: the client got bytes`);
        const m = await agent.waitForLog(new RegExp(`hcmd warning: forward ${reEsc(name)}: client 127\\.0\\.0\\.1:${r.localPort}: relay connection failed: .*timed out`), T(2000));
        assert.ok(m, name);
        await srv.waitClosed(1, T(2000));
        assert.ok(srv.conns.length >= 1, `forward ${name}: the fake relay saw no connection`);
      }
      assert.ok(goodTimes.length >= 3, `only ${goodTimes.length} round trips on the good connection`);
      assert.ok(Math.max(...goodTimes) < (ASAN ? 3000 : 1000), `the good connection was held up: ${goodTimes.join(', ')} ms`);
      assert.ok(Math.max(...fwdTimes) < (ASAN ? 3000 : 1000), `the good forward was held up: ${fwdTimes.join(', ')} ms`);
      assert.equal(agent.count(/good: control channel down/), 0, 'the good control channel dropped');
      assert.ok(Date.now() - t0 < T(30000));
    } finally {
      stopGood = true;
      await withTimeout(goodLoop, T(15000), 'good-connection loop');
      for (const f of [slow, mute, slowMeta, slowF, muteF]) await f.close();
    }
    if (goodErr) throw goodErr;
  });
});

test(`3e. a rendezvous that never completes TLS (connect_timeout = ${CT}): the tunnel attempt ends at the deadline, its endpoint connection closes, the control channel stays up`, { timeout: T(40000) }, async () => {
  const rv = await muteServer();
  const acc = await acceptorServer(main.certs, rv.port);
  const ep = await tcpServer((sock) => sock.on('data', () => {}), { allowHalfOpen: false });
  try {
    const opts = {
      relay: main.current,
      name: 'hcmd[rendezvous]',
      settings: { connect_timeout: CT, retry_max: 1 },
      connections: [{ name: 'rvstall', connectionString: connString(main, 'rv', 'listen', newKey(), acc.port), endpoint: `127.0.0.1:${ep.port}` }],
    };
    await withAgent(opts, async (agent) => {
      track(agent);
      const rec = await rv.waitClosed(1, T((CT + 3) * 1000));
      const cut = rec[0].closedAt - rec[0].at;
      const id = acc.accepts[0].id;
      const wl = await agent.waitForLog(new RegExp(`.*rvstall: tunnel ${reEsc(id)}: rendezvous failed: .*`), T(2000));
      const dl = Date.now() + T(3000);
      while (ep.sockets.size > 0 && Date.now() < dl) await sleep(25);
      console.log(`# rendezvous cut ${cut} ms after its TCP accept: ${wl[0].replace(/^\S+ /, '')}; endpoint connections ${ep.connections}, open ${ep.sockets.size}`);
      assert.ok(cut >= CT * 1000 - 500 && cut <= CT * 1000 + (ASAN ? 1500 : 700), `rendezvous connection cut after ${cut} ms`);
      assert.match(wl[0], /timed out/);
      assert.equal(ep.connections, 1, 'hcmd dialled the endpoint for the accept');
      assert.equal(ep.sockets.size, 0, 'the endpoint connection is still open after the rendezvous failed');
      assert.equal(acc.conns.length, 1, 'the control channel was opened again');
      assert.equal(acc.conns.filter((c) => !c.closedAt).length, 1, 'the control channel is not open');
      assert.equal(agent.count(/rvstall: control channel down/), 0, 'the control channel dropped');
    });
  } finally {
    await ep.close();
    await acc.close();
    await rv.close();
  }
});

test('3f. a rendezvous the relay closes cleanly before answering: the tunnel attempt ends at once and so does its endpoint connection', { timeout: T(30000) }, async () => {
  const rv = await closingServer(main.certs);
  const acc = await acceptorServer(main.certs, rv.port);
  const ep = await tcpServer((sock) => sock.on('data', () => {}), { allowHalfOpen: false });
  try {
    const opts = {
      relay: main.current,
      name: 'hcmd[rendezvous-closed]',
      settings: { connect_timeout: 10, retry_max: 1 },
      connections: [{ name: 'rvclose', connectionString: connString(main, 'rv', 'listen', newKey(), acc.port), endpoint: `127.0.0.1:${ep.port}` }],
    };
    await withAgent(opts, async (agent) => {
      track(agent);
      const rec = await rv.waitClosed(1, T(5000));
      const id = acc.accepts[0].id;
      const wl = await agent.waitForLog(new RegExp(`.*rvclose: tunnel ${reEsc(id)}: rendezvous failed: .*`), T(2000));
      const t0 = rec[0].closedAt;
      const dl = Date.now() + T(3000);
      while ((ep.connections === 0 || ep.sockets.size > 0) && Date.now() < dl) await sleep(25);
      console.log(`# rendezvous request "${rec[0].request}" closed unanswered: ${wl[0].replace(/^\S+ /, '')}; endpoint connection closed ${Date.now() - t0} ms later`);
      assert.match(rec[0].request || '', /^GET \/\$hc\/rv\?sb-hc-action=accept&sb-hc-id=/, 'the rendezvous request');
      assert.equal(ep.connections, 1, 'hcmd dialled the endpoint for the accept');
      assert.equal(ep.sockets.size, 0, `the endpoint connection is still open ${T(3000)} ms after the rendezvous was closed`);
      assert.equal(acc.conns.filter((c) => !c.closedAt).length, 1, 'the control channel is not open');
      assert.equal(agent.count(/rvclose: control channel down/), 0, 'the control channel dropped');
    });
  } finally {
    await ep.close();
    await acc.close();
    await rv.close();
  }
});

test('every hcmd of this file exited 0 on SIGTERM with no sanitizer report; every hcrelay (but the SIGKILLed ones) likewise, and none printed a sanitizer report', { timeout: T(30000) }, async () => {
  assert.ok(allAgents.length > 0, 'no hcmd process to check');
  for (const a of allAgents) {
    assert.deepEqual(a.exit, { code: 0, signal: null }, `${a.name} exit status\n${a.tail(30)}`);
    assert.equal(a.sanitizerReport(), null, `${a.name}: sanitizer output`);
  }
  for (const h of allHosts) {
    for (const r of h.all) {
      assert.equal(r.sanitizerReport(), null, 'sanitizer output in hcrelay stderr');
      if (h !== main || r !== main.current) {
        assert.ok(r.exit, 'an hcrelay is still running');
        if (r.exit.signal !== 'SIGKILL') assert.deepEqual({ code: r.exit.code, signal: r.exit.signal }, { code: 0, signal: null }, 'hcrelay exit status');
      }
    }
  }
});

relayEpilogue(() => main && main.current, 'the shared hcrelay survived, no sanitizer report, exits 0 on SIGTERM');
