'use strict';
// Operations (issue 5), test 2: zero-drop key rotation end to end.
// hcrelay's rule starts with primary K1; hcmd (listener and forward) uses
// K1 while a stream runs the whole time.
//   step 1: hcrelay gets secondary K2 (SIGHUP)
//   step 2: hcmd switches to K2 (SIGHUP): renewToken on the open channel
//   step 3: hcrelay's primary becomes K3, secondary stays K2 (SIGHUP)
// New tunnels work after every step, the stream is intact, the control
// channel never drops, and with token_lifetime = 10 (relay token_grace
// = 0, clock_skew = 0) a renewal after step 3 is accepted (no 1008).
// No key and no "sig=" in any log (9).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { freePort, newKey, withTimeout } = require('./lib/relay');
const { cleanupAll, T } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { withFwdAgents, tcpEcho } = require('./lib/forward');
const { withRelayCtl, hupAgent, pacedEchoClient, until, assertNoSecrets, reEsc, killAllProcs } = require('./lib/ops');

after(async () => {
  await cleanupAll();
  await closeAll();
  await killAllProcs();
});

const relayLines = (relay, re, from = 0) => relay.stderr().slice(from).split('\n').filter((l) => re.test(l));

test('2. key rotation with zero drops: relay secondary K2, hcmd to K2 (renewToken), relay primary K3; new tunnels after every step, a live stream intact, no reconnect, a later renewal accepted', { timeout: T(90000) }, async () => {
  const K1 = newKey();
  const K2 = newKey();
  const K3 = newKey();
  const entities = (primary, secondary) => ({ rules: [], hcs: [{ name: 'rot', rules: [{ name: 'r', rights: 'Listen Send', primary, secondary }] }] });
  const echo = await echoServer();
  try {
    await withRelayCtl({ relay: { log_level: 'debug', token_grace: 0, clock_skew: 0 }, entities: entities(K1) }, async (ctl, relay) => {
      const bind = await freePort();
      const opts = {
        relay,
        name: 'hcmd',
        settings: { log_level: 'debug', token_lifetime: 10, drain_timeout: 2 },
        connections: [{ name: 'rot', hc: 'rot', rule: 'r', key: K1, endpoint: `127.0.0.1:${echo.port}` }],
        forwards: [{ name: 'rot-f', hc: 'rot', rule: 'r', key: K1, bind: `127.0.0.1:${bind}` }],
      };
      await withFwdAgents([opts], async (agent) => {
        const f = agent.fwd['rot-f'];
        const lid = (await relay.waitForLog(/listener (\S+) on rot connected/, T(3000)))[1];
        const newTunnel = async (tag) => {
          const r = await tcpEcho(f.addr, f.port, Buffer.from(`new tunnel ${tag}`), { ms: T(10000) });
          assert.equal(r.data.toString(), `new tunnel ${tag}`, `a new tunnel ${tag}:\n${agent.tail(10)}`);
        };
        // The stream: 16 KiB every 20 ms through the forward and back.
        const st0 = Date.now();
        const stream = await pacedEchoClient(f.addr, f.port, { size: 16 * 1024, everyMs: 20, seed: 'ops-keys' });
        await until(() => stream.received > 0, T(5000), 'the stream to start');
        await newTunnel('with K1');

        // Step 1: the relay takes K2 as the secondary key.
        ctl.rewrite({ entities: entities(K1, K2) });
        await ctl.hup();
        await newTunnel('after step 1');

        // Step 2: hcmd moves to K2: renewToken on the open control channel.
        agent.connections[0].key = K2;
        agent.forwards[0].key = K2;
        agent.writeConfig();
        const rm2 = relay.stderr().length;
        const am2 = await hupAgent(agent);
        await agent.waitForLog(/hcmd info: reload: rot: key changed, sending renewToken/, T(2000), am2);
        await relay.waitForLog(new RegExp(`listener ${reEsc(lid)}: token renewed`), T(5000), rm2);
        await newTunnel('after step 2');

        // Step 3: the relay's primary becomes K3; K2 stays as the secondary.
        ctl.rewrite({ entities: entities(K3, K2) });
        const rm3 = await ctl.hup();
        const am3 = agent.mark();
        await newTunnel('after step 3');

        // A renewal after step 3 (due 8 s after step 2's) is accepted.
        await agent.waitForLog(/hcmd debug: rot: token renewed/, T(12000), am3);
        await relay.waitForLog(new RegExp(`listener ${reEsc(lid)}: token renewed`), T(3000), rm3);
        await newTunnel('after the renewal');

        stream.stop();
        const s = await withTimeout(stream.done, T(10000), 'the stream to end');
        console.log(`# stream: ${s.sent} bytes each way in ${Date.now() - st0} ms`);
        assert.equal(s.error, null, `stream socket error: ${s.error}`);
        assert.ok(s.eof, 'the stream got EOF');
        assert.equal(s.received, s.sent, 'bytes echoed');
        assert.equal(s.recvHash, s.sentHash, 'SHA-256 of the echo');

        // One control channel all along; nothing refused or expired.
        assert.equal(agent.count(/hcmd info: rot: connected to /), 1, `hcmd connected more than once:\n${agent.lines(/ rot: /).join('\n')}`);
        assert.deepEqual(agent.lines(/control channel down|relay closed the control channel/), [], 'hcmd control channel');
        assert.equal(relayLines(relay, /listener \S+ on rot connected/).length, 1, 'listeners at the relay');
        assert.deepEqual(relayLines(relay, /renewToken refused|token expired|1008|disconnected|refused/), [], 'relay refusals');
        const tl = agent.tunnels().filter((t) => t.name === 'rot');
        assert.ok(tl.length >= 5, `tunnel lines: ${tl.length}`);
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [K1, K2, K3]);
      });
    });
  } finally {
    await echo.close();
  }
});
