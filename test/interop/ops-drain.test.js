'use strict';
// Operations (issue 5), test 4: draining on SIGTERM.
//   a. 20 slow streams (about 3 s each) live when hcmd (a listener and a
//      forward in one process) gets SIGTERM: its forward refuses new
//      clients at once, all 20 finish intact, hcmd exits 0 after them.
//   b. drain_timeout = 1 with tunnels that would last 10 s: closed with
//      1001 about 1 s after SIGTERM (the WebSocket sender sees 1001), the
//      forward's clients are closed too, hcmd exits 0.
//   c. a second SIGTERM while draining: hcmd exits at once.
// No key and no "sig=" in any log (9).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { freePort, withTimeout } = require('./lib/relay');
const { cleanupAll, T, openSender, sleep } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { FwdAgent, tcpOpen } = require('./lib/forward');
const { withRelayCtl, pacedEchoClient, until, assertNoSecrets, keysOf, killAllProcs } = require('./lib/ops');

after(async () => {
  await cleanupAll();
  await closeAll();
  await killAllProcs();
});

const ENTITIES = {
  rules: [],
  hcs: [
    {
      name: 'dr',
      rules: [
        { name: 'listen', rights: 'Listen' },
        { name: 'send', rights: 'Send' },
      ],
    },
  ],
};

// One hcmd with [connection dr] (to `endpoint`) and [forward dr-f]; the
// test stops it, so it is not under withFwdAgents. body(agent).
async function withDrainAgent(relay, endpoint, settings, body) {
  const bind = await freePort();
  const agent = new FwdAgent({
    relay,
    name: 'hcmd',
    settings,
    connections: [{ name: 'dr', hc: 'dr', rule: 'dr/listen', endpoint }],
    forwards: [{ name: 'dr-f', hc: 'dr', rule: 'dr/send', bind: `127.0.0.1:${bind}` }],
  });
  try {
    await agent.start();
    await body(agent);
    assert.equal(agent.sanitizerReport(), null, `sanitizer output in hcmd stderr:\n${agent.sanitizerReport()}`);
  } catch (e) {
    e.message += `\n--- hcmd stderr (last 40 lines) ---\n${agent.tail(40)}`;
    throw e;
  } finally {
    await agent.cleanup();
  }
}

// Connects to host:port until the connection is refused; resolves the ms
// from t0 to the first ECONNREFUSED (throws after ms).
async function refusedAfter(host, port, t0, ms) {
  for (;;) {
    const code = await new Promise((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(null);
      });
      s.once('error', (e) => resolve(e.code));
    });
    if (code === 'ECONNREFUSED') return Date.now() - t0;
    if (code !== null) throw new Error(`connect to the forward after SIGTERM: ${code}`);
    if (Date.now() - t0 > ms) throw new Error(`the forward still accepted connections ${ms} ms after SIGTERM`);
    await sleep(5);
  }
}

test('4a. SIGTERM with 20 slow streams live: the forward refuses new clients at once, all 20 finish intact, hcmd exits 0 after them', { timeout: T(60000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
      await withDrainAgent(relay, `127.0.0.1:${echo.port}`, {}, async (agent) => {
        const f = agent.fwd['dr-f'];
        // 30 x 8 KiB every 100 ms: about 3 s each once all 20 are up.
        let go;
        const hold = new Promise((r) => (go = r));
        const clients = await Promise.all(
          Array.from({ length: 20 }, (_, i) => pacedEchoClient(f.addr, f.port, { chunks: 30, size: 8192, everyMs: 100, seed: `drain-${i}`, hold })),
        );
        await until(() => clients.every((c) => c.received >= 8192), T(10000), () => `every stream's first echo (${clients.filter((c) => c.received >= 8192).length} of 20)`);
        go();
        await sleep(300);
        const mark = agent.mark();
        const t0 = Date.now();
        agent.proc.kill('SIGTERM');
        const refusedMs = await refusedAfter(f.addr, f.port, t0, T(2000));
        const m = await agent.waitForLog(/hcmd info: stopping: (\d+) tunnels may finish within 30 s/, T(2000), mark);
        assert.ok(Number(m[1]) >= 20, m[0]);
        const results = await withTimeout(Promise.all(clients.map((c) => c.done)), T(20000), 'the 20 streams to end');
        const lastEnd = Math.max(...results.map((r) => r.closedAt));
        const e = await withTimeout(agent._exited, T(10000), 'hcmd exit after the streams ended');
        const exitAt = Date.now();
        console.log(`# refused ${refusedMs} ms after SIGTERM; streams done ${lastEnd - t0} ms, hcmd exit ${exitAt - t0} ms after SIGTERM`);
        assert.ok(refusedMs < 500, `a new client was refused only ${refusedMs} ms after SIGTERM`);
        results.forEach((r, i) => {
          assert.equal(r.error, null, `stream ${i}: ${r.error}`);
          assert.ok(r.eof, `stream ${i}: no EOF`);
          assert.equal(r.sent, 30 * 8192, `stream ${i}: sent`);
          assert.equal(r.received, r.sent, `stream ${i}: bytes echoed`);
          assert.equal(r.recvHash, r.sentHash, `stream ${i}: SHA-256`);
        });
        // Each was still sending when SIGTERM came, and was not cut short.
        results.forEach((r, i) => assert.ok(r.wroteAllAt - t0 >= 200, `stream ${i} wrote its last byte ${r.wroteAllAt - t0} ms after SIGTERM`));
        assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, 'hcmd exit status');
        assert.ok(exitAt - lastEnd < T(2000), `hcmd exited ${exitAt - lastEnd} ms after the last stream ended`);
        const fl = agent.fwdLines(mark);
        assert.equal(fl.length, 20, `forward lines after SIGTERM: ${fl.length}`);
        assert.deepEqual(fl.filter((l) => /stopping|drain/.test(l.reason)).map((l) => l.line), [], 'streams cut by the stop');
        assert.equal(agent.count(/drain_timeout: closing/, mark), 0, 'drain_timeout fired');
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    await echo.close();
  }
});

// A WebSocket sender that sends 4 KiB every 100 ms until it is closed or
// `ms` pass; resolves its close { code, reason, at }.
async function slowSender(relay, ms) {
  const s = await openSender(relay, 'dr', { rule: 'dr/send' });
  const until = Date.now() + ms;
  const chunk = Buffer.alloc(4096, 0x61);
  (async () => {
    while (!s.closed && Date.now() < until) {
      s.ws.send(chunk, { binary: true }, () => {});
      await sleep(100);
    }
    s.close();
  })();
  return s;
}

test('4b. drain_timeout = 1 with tunnels that would last 10 s: closed with 1001 after about 1 s (the sender sees 1001), hcmd exits 0', { timeout: T(60000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
      await withDrainAgent(relay, `127.0.0.1:${echo.port}`, { drain_timeout: 1 }, async (agent) => {
        const f = agent.fwd['dr-f'];
        const senders = await Promise.all(Array.from({ length: 5 }, () => slowSender(relay, 10000)));
        const clients = await Promise.all(
          Array.from({ length: 5 }, (_, i) => pacedEchoClient(f.addr, f.port, { chunks: 100, size: 4096, everyMs: 100, seed: `long-${i}` })),
        );
        await until(() => senders.every((s) => s.received > 0) && clients.every((c) => c.received > 0), T(10000), 'every tunnel to echo');
        const mark = agent.mark();
        const t0 = Date.now();
        agent.proc.kill('SIGTERM');
        const closes = await withTimeout(Promise.all(senders.map((s) => s.closedP)), T(8000), 'the senders to be closed');
        const cl = await withTimeout(Promise.all(clients.map((c) => c.done)), T(8000), 'the forward clients to be closed');
        const e = await withTimeout(agent._exited, T(8000), 'hcmd exit');
        const exitMs = Date.now() - t0;
        const at = closes.map((c) => c.at - t0);
        const clAt = cl.map((c) => c.closedAt - t0);
        console.log(`# senders closed ${Math.min(...at)}..${Math.max(...at)} ms, forward clients ${Math.min(...clAt)}..${Math.max(...clAt)} ms, hcmd exit ${exitMs} ms after SIGTERM`);
        closes.forEach((c, i) => assert.equal(c.code, 1001, `sender ${i} close: ${c.code} ${c.reason}`));
        for (const ms of [...at, ...clAt]) {
          assert.ok(ms >= 900, `a tunnel was closed ${ms} ms after SIGTERM (drain_timeout = 1)`);
          assert.ok(ms < 1000 + T(1500), `a tunnel was closed ${ms} ms after SIGTERM (drain_timeout = 1)`);
        }
        cl.forEach((c, i) => {
          assert.ok(c.eof || c.error, `forward client ${i} was not closed`);
          assert.ok(c.sent < 100 * 4096, `forward client ${i} ran to its end`);
        });
        assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, 'hcmd exit status');
        assert.ok(exitMs < 1000 + T(2000), `hcmd exited ${exitMs} ms after SIGTERM`);
        await agent.waitForLog(/hcmd info: drain_timeout: closing the \d+ tunnels left/, 100, mark);
        const tl = agent.tunnels(mark);
        assert.equal(tl.length, 10, `tunnel lines after SIGTERM: ${tl.length}`);
        for (const t of tl) assert.equal(t.reason, 'agent stopping', t.line);
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    await echo.close();
  }
});

test('4c. a second SIGTERM while draining: hcmd exits at once', { timeout: T(30000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
      await withDrainAgent(relay, `127.0.0.1:${echo.port}`, { drain_timeout: 30 }, async (agent) => {
        const f = agent.fwd['dr-f'];
        const senders = await Promise.all(Array.from({ length: 3 }, () => slowSender(relay, 10000)));
        const { sock } = await tcpOpen(f.addr, f.port);
        sock.on('error', () => {});
        sock.write('x');
        await until(() => senders.every((s) => s.received > 0), T(10000), 'every sender to echo');
        const mark = agent.mark();
        agent.proc.kill('SIGTERM');
        await agent.waitForLog(/hcmd info: stopping: \d+ tunnels may finish within 30 s/, T(3000), mark);
        await sleep(200);
        assert.ok(agent.alive(), 'hcmd exited after the first SIGTERM (it should drain for 30 s)');
        const t0 = Date.now();
        agent.proc.kill('SIGTERM');
        const e = await withTimeout(agent._exited, T(3000), 'hcmd exit after the second SIGTERM');
        const ms = Date.now() - t0;
        console.log(`# exit ${JSON.stringify(e)} ${ms} ms after the second SIGTERM`);
        assert.ok(ms < T(500), `hcmd took ${ms} ms to exit after the second SIGTERM`);
        assert.match(agent.stderr().slice(mark), /hcmd warning: second signal: exiting now/);
        sock.destroy();
        for (const s of senders) s.terminate();
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    await echo.close();
  }
});

test('4d. SIGHUP while draining (after SIGTERM, file unchanged): the forward stays closed, nothing is re-added, the live tunnel finishes intact, hcmd exits 0', { timeout: T(40000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
      await withDrainAgent(relay, `127.0.0.1:${echo.port}`, { drain_timeout: 10 }, async (agent) => {
        const f = agent.fwd['dr-f'];
        // 15 x 8 KiB every 100 ms: about 1.5 s.
        const c = await pacedEchoClient(f.addr, f.port, { chunks: 15, size: 8192, everyMs: 100, seed: 'drain-hup' });
        await until(() => c.received > 0, T(5000), 'the first echo');
        const mark = agent.mark();
        const t0 = Date.now();
        agent.proc.kill('SIGTERM');
        await agent.waitForLog(/hcmd info: stopping: \d+ tunnels may finish within 10 s/, T(3000), mark);
        agent.proc.kill('SIGHUP');
        await agent.waitForLog(/SIGHUP/, T(3000), mark).catch(() => {});
        await sleep(200);
        // What a client of the forward sees now.
        const probe = await new Promise((resolve) => {
          const s = net.connect({ host: f.addr, port: f.port });
          s.once('connect', () => {
            s.destroy();
            resolve('accepted');
          });
          s.once('error', (e) => resolve(e.code));
        });
        const r = await withTimeout(c.done, T(10000), 'the draining stream to end');
        const e = await withTimeout(agent._exited, T(10000), 'hcmd exit').catch((err) => ({ error: err.message }));
        const since = agent.stderr().slice(mark);
        const summary = `\nforward probe after SIGHUP: ${probe}; stream: ${r.received}/${r.sent} bytes, eof ${r.eof}; hcmd exit ${JSON.stringify(e)} ${Date.now() - t0} ms after SIGTERM\nhcmd log since SIGTERM:\n${since.split('\n').slice(0, 12).join('\n')}${agent.sanitizerReport() ? `\n${agent.sanitizerReport().slice(0, 1500)}` : ''}`;
        assert.equal(probe, 'ECONNREFUSED', `the forward after SIGTERM + SIGHUP${summary}`);
        assert.deepEqual(agent.lines(/reload: \S+ added|forward \S+: listening on/, mark), [], `re-added after SIGTERM${summary}`);
        assert.equal(r.received, r.sent, `the draining stream${summary}`);
        assert.equal(r.recvHash, r.sentHash, `the draining stream${summary}`);
        assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `hcmd exit status${summary}`);
        assert.equal(agent.sanitizerReport(), null, `sanitizer output${summary}`);
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    await echo.close();
  }
});
