'use strict';
// Operations (issue 5), test 6: hcmd through an HTTP CONNECT proxy
// (tinyproxy with BasicAuth):
//   a. proxy = http://user:pass@127.0.0.1:PORT: the control channel
//      connects through it (tinyproxy logs the CONNECT) and a tunnel works
//      through a listener and a forward;
//   b. a wrong proxy password: one line naming the proxy and its 401/407,
//      never the password;
//   c. no_proxy = localhost: the proxy sees no CONNECT, tunnels work;
//   d. no proxy key, https_proxy in the environment: used.
// No key, no password and no "sig=" in any log (9).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { freePort, mkTempDir, rmTempDir, sleep } = require('./lib/relay');
const { cleanupAll, T } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { FwdAgent, withFwdAgents, tcpEcho, tcpWatchClose } = require('./lib/forward');
const { withRelayCtl, startTinyproxy, assertNoSecrets, keysOf, killAllProcs } = require('./lib/ops');

const USER = 'hcuser';
const PASS = `pw-${crypto.randomBytes(8).toString('hex')}`;
const WRONG = `wrong-${crypto.randomBytes(8).toString('hex')}`;

let dir;
let proxy;
let echo;

before(async () => {
  dir = mkTempDir('hcmd-ops-proxy-');
  proxy = await startTinyproxy(dir, { user: USER, pass: PASS });
  echo = await echoServer();
}, { timeout: T(20000) });

after(async () => {
  await cleanupAll();
  await closeAll();
  if (proxy) await proxy.stop();
  await killAllProcs();
  rmTempDir(dir);
});

const ENTITIES = {
  rules: [],
  hcs: [
    {
      name: 'px',
      rules: [
        { name: 'listen', rights: 'Listen' },
        { name: 'send', rights: 'Send' },
      ],
    },
  ],
};

// Secrets that must never be logged: the keys, both passwords, and the
// Basic credentials as sent.
const proxySecrets = () => [PASS, WRONG, Buffer.from(`${USER}:${PASS}`).toString('base64'), Buffer.from(`${USER}:${WRONG}`).toString('base64')];

async function agentOpts(relay, settings) {
  return {
    relay,
    name: 'hcmd',
    settings,
    connections: [{ name: 'px', hc: 'px', rule: 'px/listen', endpoint: `127.0.0.1:${echo.port}` }],
    forwards: [{ name: 'px-f', hc: 'px', rule: 'px/send', bind: `127.0.0.1:${await freePort()}` }],
  };
}

test('6a. proxy = http://user:pass@127.0.0.1:PORT: the control channel goes through tinyproxy (CONNECT logged), a tunnel works through listener and forward', { timeout: T(40000) }, async () => {
  await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
    const pmark = proxy.mark();
    const opts = await agentOpts(relay, { proxy: `http://${USER}:${PASS}@127.0.0.1:${proxy.port}` });
    await withFwdAgents([opts], async (agent) => {
      await agent.waitForLog(new RegExp(`hcmd info: relay connections go through the proxy 127\\.0\\.0\\.1:${proxy.port} \\(with credentials\\)`), T(1000));
      const want = new RegExp(`CONNECT localhost:${relay.port} `);
      const c0 = proxy.connects(pmark);
      assert.ok(c0.some((l) => want.test(l)), `tinyproxy logged no CONNECT localhost:${relay.port} for the control channel:\n${proxy.log().slice(pmark)}`);
      const f = agent.fwd['px-f'];
      for (let i = 0; i < 3; i++) {
        const r = await tcpEcho(f.addr, f.port, Buffer.from(`through the proxy ${i}`));
        assert.equal(r.data.toString(), `through the proxy ${i}`, `tunnel ${i}:\n${agent.tail(10)}`);
      }
      await sleep(100);
      // control channel + 3 x (sender + rendezvous)
      const c1 = proxy.connects(pmark).filter((l) => want.test(l));
      console.log(`# tinyproxy saw ${c1.length} CONNECTs to the relay`);
      assert.ok(c1.length >= 7, `tinyproxy CONNECTs to the relay: ${c1.length}\n${c1.join('\n')}`);
      assert.equal(agent.count(/control channel down/), 0);
      assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [...keysOf(ctl.entities), ...proxySecrets()]);
    });
  });
});

test('6b. a wrong proxy password: hcmd logs one line naming the proxy and its 401/407, never the password', { timeout: T(40000) }, async () => {
  await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
    const opts = await agentOpts(relay, { proxy: `http://${USER}:${WRONG}@127.0.0.1:${proxy.port}` });
    opts.start = { waitConnected: false };
    await withFwdAgents([opts], async (agent) => {
      const proxyRe = `proxy 127\\.0\\.0\\.1:${proxy.port} \\(for localhost:${relay.port}\\) answered (401|407)\\b`;
      const m = await agent.waitForLog(new RegExp(`.*hcmd \\w+: px: control channel down: ${proxyRe}.*`), T(10000));
      console.log(`# ${m[0]}`);
      // The forward's client is closed, and the log says why.
      const f = await agent.waitForLog(/hcmd info: forward px-f: listening on (\S+):(\d+)/, T(3000));
      const r = await tcpWatchClose(f[1], Number(f[2]), { ms: T(5000) });
      assert.equal(r.timedOut, false, 'the forward client was left open');
      assert.equal(r.received, 0);
      await agent.waitForLog(new RegExp(`forward px-f: client 127\\.0\\.0\\.1:${r.localPort}: .*${proxyRe}`), T(3000));
      assert.equal(agent.count(/px: connected to/), 0, 'connected with a wrong proxy password');
      // Each such line is one line (nothing of the proxy's answer body).
      for (const l of agent.lines(/answered 40[17]/)) assert.match(l, /^\S+ hcmd (warning|error): /, l);
      assert.equal(relay.stderr().includes('listener'), false, 'the relay saw a listener');
      assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [...keysOf(ctl.entities), ...proxySecrets()]);
      assert.ok(!agent.stderr().includes(USER + ':'), 'user:password in the log');
    });
  });
});

test('6c. no_proxy = localhost bypasses the proxy: tinyproxy sees no CONNECT, tunnels work', { timeout: T(40000) }, async () => {
  await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
    const pmark = proxy.mark();
    const opts = await agentOpts(relay, { proxy: `http://${USER}:${PASS}@127.0.0.1:${proxy.port}`, no_proxy: 'localhost' });
    await withFwdAgents([opts], async (agent) => {
      const f = agent.fwd['px-f'];
      const r = await tcpEcho(f.addr, f.port, Buffer.from('no proxy for localhost'));
      assert.equal(r.data.toString(), 'no proxy for localhost');
      await sleep(200);
      assert.deepEqual(proxy.connects(pmark), [], `tinyproxy saw CONNECTs:\n${proxy.log().slice(pmark)}`);
      assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [...keysOf(ctl.entities), ...proxySecrets()]);
    });
  });
  assert.ok(proxy.proc.alive(), 'tinyproxy died');
});

test('6d. no proxy key in the config: https_proxy from the environment is used (CONNECT logged), tunnels work', { timeout: T(40000) }, async () => {
  await withRelayCtl({ entities: ENTITIES }, async (ctl, relay) => {
    const pmark = proxy.mark();
    const opts = await agentOpts(relay, {});
    // lib/agent.js passes process.env to hcmd when it spawns it (at once,
    // in start()); set https_proxy just for that.
    const saved = { https_proxy: process.env.https_proxy, no_proxy: process.env.no_proxy, NO_PROXY: process.env.NO_PROXY };
    const agent = new FwdAgent(opts);
    let started;
    process.env.https_proxy = `http://${USER}:${PASS}@127.0.0.1:${proxy.port}`;
    delete process.env.no_proxy;
    delete process.env.NO_PROXY;
    try {
      started = agent.start();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    try {
      await started;
      await agent.waitForLog(new RegExp(`hcmd info: relay connections go through the proxy 127\\.0\\.0\\.1:${proxy.port} \\(with credentials\\)`), T(1000));
      const f = agent.fwd['px-f'];
      const r = await tcpEcho(f.addr, f.port, Buffer.from('via https_proxy'));
      assert.equal(r.data.toString(), 'via https_proxy');
      await sleep(100);
      const c = proxy.connects(pmark).filter((l) => l.includes(`CONNECT localhost:${relay.port} `));
      assert.ok(c.length >= 3, `tinyproxy CONNECTs to the relay: ${c.length}`);
      const problems = await agent.stopAndCheck();
      assert.deepEqual(problems, []);
      assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [...keysOf(ctl.entities), ...proxySecrets()]);
    } catch (e) {
      e.message += `\n--- hcmd stderr ---\n${agent.tail(30)}`;
      throw e;
    } finally {
      await agent.cleanup();
    }
  });
});
