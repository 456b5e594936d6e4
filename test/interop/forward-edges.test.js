'use strict';
// hcmd forwarder (issue 4), the edges of the local side: a client that
// sends and half-closes before the relay has answered, an IPv6 bind, a
// storm of clients that vanish at once, max_tunnels, a listener whose
// endpoint is down (502), and a client that does not read while 48 MiB
// come at it (the forwarder's memory stays bounded, nothing is lost).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { startRelay, listenSendEntities, freePort, withTimeout, sleep } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T, ASAN } = require('./lib/agent');
const { closeAll, Prng, echoServer, hashServer } = require('./lib/endpoints');
const { withFwdAgents, tcpOpen, tcpEcho, tcpExchange, tcpWatchClose } = require('./lib/forward');

const MiB = 1 << 20;
let relay;
let echo;

before(async () => {
  echo = await echoServer();
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: listenSendEntities(['echo', 'nolis', 'down', 'bulk']),
  });
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll();
  await closeAll();
  if (echo) await echo.close();
  if (relay) await relay.cleanup();
});

const listenerFor = (hc, endpoint) => ({ relay, name: `hcmd-listener[${hc}]`, connections: [{ name: hc, hc, rule: `${hc}/listen`, endpoint }] });

test('9a. a client that writes 300 KiB and half-closes at once (before the relay answered) gets all of it echoed and then EOF', { timeout: T(30000) }, async () => {
  const bind = await freePort();
  const fwdOpts = { relay, name: 'hcmd-forwarder', forwards: [{ name: 'echo-f', hc: 'echo', rule: 'echo/send', bind }] };
  await withFwdAgents([listenerFor('echo', `127.0.0.1:${echo.port}`), fwdOpts], async (lis, fwd) => {
    for (const size of [1, 70000, 300 * 1024]) {
      const data = new Prng(`early-${size}`).next(size);
      const r = await tcpExchange('127.0.0.1', bind, data, { ms: T(15000) });
      assert.equal(r.timedOut, false, `${size}: no EOF within the time limit (got ${r.data.length} bytes)`);
      assert.equal(r.data.length, size, `${size}: echoed length`);
      assert.ok(r.data.equals(data), `${size}: echoed bytes differ`);
      assert.ok(r.eof, `${size}: the client got no EOF`);
    }
  });
});

test('9b. bind = [::1]:PORT: an IPv6 client goes through', { timeout: T(30000) }, async () => {
  const port = await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '::1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const fwdOpts = { relay, name: 'hcmd-forwarder', forwards: [{ name: 'v6', hc: 'echo', rule: 'echo/send', bind: `[::1]:${port}` }] };
  await withFwdAgents([listenerFor('echo', `127.0.0.1:${echo.port}`), fwdOpts], async (lis, fwd) => {
    assert.equal(fwd.fwd.v6.port, port, fwd.fwd.v6.line);
    assert.match(fwd.fwd.v6.addr, /::1/, fwd.fwd.v6.line);
    const mark = fwd.mark();
    const r = await tcpEcho('::1', port, Buffer.from('over IPv6'));
    assert.equal(r.data.toString(), 'over IPv6');
    const m = await fwd.waitForLog(/hcmd info: forward v6 id=\S+ client=(\S+) /, T(5000), mark);
    assert.match(m[1], new RegExp(`::1\\]?:${r.localPort}$`), m[0]);
  });
});

test('9c. 100 clients that connect and vanish at once (half to a good, half to a refused forward): hcmd stays up, no leak, next client works', { timeout: T(60000) }, async () => {
  const good = await freePort();
  const bad = await freePort();
  const fwdOpts = {
    relay,
    name: 'hcmd-forwarder',
    forwards: [
      { name: 'good', hc: 'echo', rule: 'echo/send', bind: good },
      { name: 'bad', hc: 'nolis', rule: 'nolis/send', bind: bad },
    ],
  };
  await withFwdAgents([listenerFor('echo', `127.0.0.1:${echo.port}`), fwdOpts], async (lis, fwd) => {
    const socks = [];
    for (let i = 0; i < 100; i++) {
      const port = i % 2 ? bad : good;
      socks.push(
        new Promise((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port });
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          // some vanish at once, some after a few ms, some with a RST
          s.on('connect', () => {
            if (i % 3 === 0) s.destroy();
            else if (i % 3 === 1) setTimeout(() => s.end(), i % 7);
            else {
              s.write('x');
              setTimeout(() => s.resetAndDestroy(), i % 5);
            }
          });
        }),
      );
    }
    await withTimeout(Promise.all(socks), T(15000), 'the 100 clients to finish');
    await sleep(T(500));
    assert.ok(fwd.alive(), 'forwarder died');
    const r = await tcpEcho('127.0.0.1', good, Buffer.from('after the storm'));
    assert.equal(r.data.toString(), 'after the storm');
    // stopAndCheck (withFwdAgents) checks exit 0 and ASan/LSan silence.
  });
});

test('9d. max_tunnels = 2 counts forward connections: the third client is closed within 1 s, logged, and a slot frees when one ends', { timeout: T(30000) }, async () => {
  const bind = await freePort();
  const fwdOpts = { relay, name: 'hcmd-forwarder', settings: { max_tunnels: 2 }, forwards: [{ name: 'lim', hc: 'echo', rule: 'echo/send', bind }] };
  await withFwdAgents([listenerFor('echo', `127.0.0.1:${echo.port}`), fwdOpts], async (lis, fwd) => {
    const live = [];
    for (const tag of ['one', 'two']) {
      const { sock } = await tcpOpen('127.0.0.1', bind);
      const got = new Promise((resolve) => sock.once('data', (c) => resolve(c.toString())));
      sock.write(tag);
      assert.equal(await withTimeout(got, T(5000), `echo on ${tag}`), tag);
      live.push(sock);
    }
    const mark = fwd.mark();
    const r = await tcpWatchClose('127.0.0.1', bind, { ms: T(5000) });
    assert.equal(r.timedOut, false, 'third client still open');
    assert.ok(r.ms < 1000, `third client closed after ${r.ms} ms`);
    await fwd.waitForLog(new RegExp(`hcmd warning: forward lim: tunnel limit \\(2\\) reached: closing client 127\\.0\\.0\\.1:${r.localPort}`), T(3000), mark);
    live[0].end();
    await new Promise((resolve) => live[0].once('close', resolve));
    await sleep(200);
    const ok = await tcpEcho('127.0.0.1', bind, Buffer.from('a free slot'));
    assert.equal(ok.data.toString(), 'a free slot', 'a client once a slot was free');
    live[1].destroy();
  });
});

test('9e. the listener\'s endpoint is down: it rejects with 502, the forward client is closed within 1 s and the log says 502', { timeout: T(30000) }, async () => {
  const dead = await freePort();
  const bind = await freePort();
  const fwdOpts = { relay, name: 'hcmd-forwarder', forwards: [{ name: 'down-f', hc: 'down', rule: 'down/send', bind }] };
  await withFwdAgents([listenerFor('down', `127.0.0.1:${dead}`), fwdOpts], async (lis, fwd) => {
    const mark = fwd.mark();
    const r = await tcpWatchClose('127.0.0.1', bind, { ms: T(10000) });
    assert.equal(r.timedOut, false, 'client still open');
    assert.ok(r.ms < 1000, `client closed after ${r.ms} ms`);
    assert.equal(r.received, 0);
    await fwd.waitForLog(new RegExp(`hcmd warning: forward down-f: client 127\\.0\\.0\\.1:${r.localPort} refused: relay answered 502\\b`), T(3000), mark);
  });
});

test(`9f. a client that does not read while 48 MiB come through: forwarder VmRSS stays under ${ASAN ? '200' : '32'} MB, then every byte arrives`, { timeout: T(90000) }, async () => {
  const total = 48 * MiB;
  const srv = await hashServer({ writeBytes: total, seed: 'bulk' });
  const bind = await freePort();
  const limitKb = ASAN ? 200 * 1024 : 32 * 1024;
  try {
    const fwdOpts = { relay, name: 'hcmd-forwarder', forwards: [{ name: 'bulk-f', hc: 'bulk', rule: 'bulk/send', bind }] };
    await withFwdAgents([listenerFor('bulk', `127.0.0.1:${srv.port}`), fwdOpts], async (lis, fwd) => {
      const idleKb = fwd.rssKb();
      const { sock } = await tcpOpen('127.0.0.1', bind);
      sock.pause();
      const samples = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 2500) {
        samples.push(fwd.rssKb());
        await sleep(100);
      }
      const maxKb = Math.max(...samples.filter((x) => x !== null));
      console.log(`# forwarder VmRSS idle ${idleKb} kB, max ${maxKb} kB while its client did not read`);
      assert.ok(srv.records.length === 1, 'the endpoint saw the connection');
      const rec = srv.records[0];
      assert.ok(rec.sent === 0 || rec.sent < total, 'the endpoint could write everything at once: no backpressure happened');
      assert.ok(maxKb < limitKb, `forwarder VmRSS reached ${maxKb} kB while its client did not read (limit ${limitKb} kB, idle ${idleKb} kB): ${samples.join(' ')}`);
      // Now read it all.
      const h = crypto.createHash('sha256');
      let got = 0;
      const done = new Promise((resolve) => {
        sock.on('data', (c) => {
          got += c.length;
          h.update(c);
          if (got >= total) resolve();
        });
        sock.on('close', resolve);
      });
      sock.resume();
      await withTimeout(done, T(40000), `48 MiB to arrive (have ${got})`).catch((e) => {
        throw new Error(`${e.message}; got ${got}`);
      });
      assert.equal(got, total, 'bytes at the client');
      await withTimeout(
        (async () => {
          while (rec.sentHash === null) await sleep(20);
        })(),
        T(5000),
        'the endpoint to finish writing',
      );
      assert.equal(h.digest('hex'), rec.sentHash, 'what arrived differs from what the endpoint sent');
      sock.end();
      await withTimeout(rec.done, T(10000), 'the endpoint to see the close');
    });
  } finally {
    await srv.close();
  }
});

relayEpilogue(() => relay);
