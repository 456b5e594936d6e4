'use strict';
// hcmd listener agent (issue 3): bulk integrity in both directions at once,
// and bounded memory under a slow endpoint.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRelay, listenSendEntities, withTimeout } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T, ASAN, withAgent, openSender, streamFromSender, sleep } = require('./lib/agent');
const { closeAll, Prng, hashServer, slowReader, tcpServer } = require('./lib/endpoints');

const MiB = 1 << 20;
// 256 MiB each way on the normal build; 64 MiB under ASan (about 3x slower).
const BULK = ASAN ? 64 * MiB : 256 * MiB;

let relay;

before(async () => {
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: listenSendEntities(['bulk', 'slow']),
  });
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll(); // only does something after a timed-out test
  await closeAll();
  if (relay) await relay.cleanup();
});

function agentOpts(hc, endpoint) {
  return { relay, name: `hcmd[${hc}]`, connections: [{ name: hc, hc, rule: `${hc}/listen`, endpoint }] };
}

test(`3. integrity: ${BULK / MiB} MiB each way at the same time through one tunnel${ASAN ? ' (ASan build: 64 MiB instead of 256)' : ''}, SHA-256 equal at both ends`, { timeout: ASAN ? 240000 : 150000 }, async () => {
  const srv = await hashServer({ writeBytes: BULK, seed: 'endpoint-stream', endAfter: BULK, chunk: 64 * 1024 });
  try {
    await withAgent(agentOpts('bulk', `127.0.0.1:${srv.port}`), async (agent) => {
      const mark = agent.mark();
      const s = await openSender(relay, 'bulk', { rule: 'bulk/send' });
      s.keep = false; // hash only
      try {
        const t0 = Date.now();
        // Message sizes vary from 1 byte to 256 KiB.
        const sizes = [1, 16384, 65536, 262144, 1000, 125, 126, 65535, 131072, 7];
        const st = await streamFromSender(s, BULK, new Prng('sender-stream'), { sizeFn: (i) => sizes[i % sizes.length], window: 8 * MiB });
        assert.equal(st.stopped, null, `sender stream stopped early after ${st.sent} bytes: ${st.stopped}`);
        const rec = () => srv.records[0];
        await s.waitBytes(BULK, ASAN ? 200000 : 120000);
        const c = await s.waitClose(T(15000));
        const done = await withTimeout(rec().done, T(15000), 'endpoint connection to close');
        const secs = (Date.now() - t0) / 1000;
        console.log(`# ${BULK / MiB} MiB each way in ${secs.toFixed(1)} s (${((2 * BULK) / MiB / secs).toFixed(0)} MiB/s total)`);
        assert.equal(srv.connections, 1, 'endpoint connections');
        assert.equal(done.writeError, undefined, done.writeError);
        // sender -> endpoint
        assert.equal(done.received, BULK, 'bytes at the endpoint');
        assert.equal(done.hash, st.hash, 'SHA-256 of the bytes at the endpoint differs from what the sender sent');
        // endpoint -> sender
        assert.equal(s.received, BULK, 'bytes at the sender');
        assert.equal(s.digest(), done.sentHash, 'SHA-256 of the bytes at the sender differs from what the endpoint sent');
        assert.equal(c.code, 1000, `sender close ${c.code} ${c.reason}`);
        await agent.waitForLog(/tunnel bulk id=/, T(5000), mark);
        const t = agent.tunnels(mark)[0];
        assert.equal(t.toEndpoint, BULK, t.line);
        assert.equal(t.toSender, BULK, t.line);
      } finally {
        s.terminate();
      }
    });
  } finally {
    await srv.close();
  }
});

// hcmd stops reading from the relay at its high-water mark when the
// endpoint is slow; its RSS must stay bounded while the sender keeps
// pushing.
test(`8. slow reader: endpoint reads 1 MiB/s while the sender pushes up to 64 MiB; hcmd VmRSS stays under ${ASAN ? '200 MB (ASan build)' : '32 MB'}`, { timeout: T(60000) }, async () => {
  const limitKb = ASAN ? 200 * 1024 : 32 * 1024;
  const srv = await slowReader({ rate: MiB, tickMs: 50 });
  try {
    await withAgent(agentOpts('slow', `127.0.0.1:${srv.port}`), async (agent) => {
      const mark = agent.mark();
      const idleKb = agent.rssKb();
      const s = await openSender(relay, 'slow', { rule: 'slow/send' });
      const samples = [];
      const sampler = setInterval(() => samples.push(agent.rssKb()), 200);
      const t0 = Date.now();
      const stopAt = 16 * MiB;
      const maxMs = 18000;
      const stopNow = () => (srv.records[0] && srv.records[0].received >= stopAt) || Date.now() - t0 > maxMs;
      let st;
      try {
        const streaming = streamFromSender(s, 64 * MiB, new Prng('slow-stream'), { window: 4 * MiB, shouldStop: stopNow });
        // The stream is paused by backpressure most of the time: poll.
        while (!stopNow()) await sleep(100);
        const rec = srv.records[0];
        const delivered = rec ? rec.received : 0;
        const elapsed = Date.now() - t0;
        const pushed = s.sent;
        const hashAtStop = rec ? rec.hash() : null;
        s.terminate();
        st = await withTimeout(streaming, T(5000), 'sender stream to stop');
        clearInterval(sampler);
        const valid = samples.filter((x) => x !== null);
        const maxKb = Math.max(...valid);
        const relayKb = (() => {
          try {
            return Number(require('node:fs').readFileSync(`/proc/${relay.proc.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m)[1]);
          } catch {
            return null;
          }
        })();
        console.log(`# slow reader: ${(delivered / MiB).toFixed(1)} MiB delivered in ${elapsed} ms; sender pushed ${(pushed / MiB).toFixed(1)} MiB; hcmd VmRSS idle ${idleKb} kB, max ${maxKb} kB over ${valid.length} samples; hcrelay VmRSS ${relayKb} kB`);
        assert.ok(valid.length >= 20, `only ${valid.length} RSS samples`);
        assert.ok(rec, 'the endpoint saw no connection');
        // Delivered at about the reader's pace: the test really was slow.
        assert.ok(delivered >= 4 * MiB, `only ${delivered} bytes reached the slow endpoint in ${elapsed} ms`);
        // The sender kept pressure on: more pushed than delivered.
        assert.ok(pushed > delivered + 2 * MiB, `the sender pushed ${pushed} bytes, the endpoint read ${delivered}: no pressure`);
        // What arrived is an exact prefix of what was sent.
        const prefix = new Prng('slow-stream').next(delivered);
        assert.equal(hashAtStop, require('node:crypto').createHash('sha256').update(prefix).digest('hex'), 'bytes at the endpoint are not a prefix of the sender\'s stream');
        assert.ok(maxKb < limitKb, `hcmd VmRSS reached ${maxKb} kB (limit ${limitKb} kB; idle ${idleKb} kB); samples: ${valid.join(' ')}`);
        // The sender is gone; megabytes still sit in kernel buffers on the
        // way to the slow endpoint, which hcmd rightly keeps delivering. The
        // endpoint now goes away too: the tunnel must end promptly.
        for (const sock of srv.sockets) sock.destroy();
        const m = await agent.waitForLog(/tunnel slow id=.*/, T(10000), mark);
        console.log(`# ${m[0]}`);
      } finally {
        clearInterval(sampler);
        s.terminate();
      }
    });
  } finally {
    await srv.close();
  }
});

// The endpoint dies while the tunnel is held back by backpressure (hcmd
// has stopped reading from the relay, megabytes wait in buffers). hcmd
// sends Close 1011 towards the sender; the closing handshake needs the
// sender's answer, which is queued behind data nobody will deliver unless
// hcmd reads (and drops) it. The tunnel must end promptly, not by a
// linger timeout.
test('8b. endpoint reset while the tunnel is paused by backpressure: the sender gets Close 1011 and the tunnel ends within 2 s', { timeout: T(40000) }, async () => {
  const srv = await tcpServer((sock) => sock.pause()); // never reads
  try {
    await withAgent(agentOpts('slow', `127.0.0.1:${srv.port}`), async (agent) => {
      const mark = agent.mark();
      const s = await openSender(relay, 'slow', { rule: 'slow/send' });
      try {
        const streaming = streamFromSender(s, 256 * MiB, new Prng('paused'), { window: 4 * MiB });
        // Wait until the pipeline is full: nothing more leaves the sender.
        let last = -1;
        const t0 = Date.now();
        while (Date.now() - t0 < T(10000)) {
          await sleep(500);
          if (s.sent === last) break;
          last = s.sent;
        }
        assert.equal(srv.connections, 1, 'endpoint connections');
        const stuck = s.sent;
        const tReset = Date.now();
        for (const sock of srv.sockets) sock.destroy();
        const c = await s.waitClose(T(15000));
        const closeMs = Date.now() - tReset;
        const m = await agent.waitForLog(/tunnel slow id=.*/, T(15000), mark);
        const tunnelMs = Date.now() - tReset;
        await withTimeout(streaming, T(5000), 'sender stream to stop');
        console.log(`# ${(stuck / MiB).toFixed(1)} MiB pushed before the pipeline stalled; sender closed ${closeMs} ms and hcmd logged the tunnel ${tunnelMs} ms after the endpoint reset: ${m[0]}`);
        assert.equal(c.code, 1011, `sender close ${c.code} ${c.reason}`);
        assert.match(m[0], /reason="endpoint: /, 'close reason');
        assert.ok(closeMs <= 2000 && tunnelMs <= 2000,
          `the tunnel ended ${tunnelMs} ms (sender close ${closeMs} ms) after the endpoint reset (limit 2000 ms)\n--- hcrelay ---\n${relay.tail(6)}`);
      } finally {
        s.terminate();
      }
    });
  } finally {
    await srv.close();
  }
});

relayEpilogue(() => relay, 'hcrelay survived the bulk tests, no sanitizer report, exits 0 on SIGTERM');
