'use strict';
// hcmd listener agent (issue 3): senders through hcrelay to hcmd to TCP
// services run by the test. Echo, redis-server, 200 short tunnels, the
// endpoint from the relay's user metadata, two agents on one hybrid
// connection, half-close in both directions.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startRelay, hcWithRules, withTimeout } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T, withAgent, withAgents, openSender, streamFromSender, sleep } = require('./lib/agent');
const { closeAll, Prng, sha256, tcpServer, echoServer, bannerServer, startRedis } = require('./lib/endpoints');

let relay;
let echo; // TCP echo server shared by several tests

const hcNames = ['echo', 'redis', 'many', 'meta', 'ha', 'half'];

before(async () => {
  echo = await echoServer();
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: {
      rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send' }],
      hcs: hcNames.map((name) =>
        hcWithRules(name, { userMetadata: name === 'meta' ? `[{"key":"endpoint","value":"localhost:${echo.port}"},{"key":"x","value":"y"}]` : undefined }),
      ),
    },
  });
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll(); // only does something after a timed-out test
  await closeAll();
  if (echo) await echo.close();
  if (relay) await relay.cleanup();
});

function agentOpts(hc, endpoint, extra = {}) {
  return {
    relay,
    name: extra.name || `hcmd[${hc}]`,
    settings: { log_level: 'info', ...(extra.settings || {}) },
    connections: [{ name: hc, hc, rule: `${hc}/listen`, endpoint }],
  };
}

// One tunnel: send the messages, wait for the echo, close, compare.
async function echoTunnel(hc, messages, { ms = T(15000) } = {}) {
  const s = await openSender(relay, hc, { rule: `${hc}/send` });
  try {
    let total = 0;
    for (const m of messages) {
      total += Buffer.byteLength(m);
      await s.send(m, { binary: Buffer.isBuffer(m) });
    }
    await s.waitBytes(total, ms);
    const want = Buffer.concat(messages.map((m) => (Buffer.isBuffer(m) ? m : Buffer.from(m))));
    s.close(1000);
    const c = await s.waitClose(ms);
    return { data: s.data(), want, close: c, sender: s };
  } finally {
    s.terminate();
  }
}

test('1. sender -> hcrelay -> hcmd -> TCP echo server: bytes come back equal (text and binary, 0..300 KiB messages)', { timeout: T(30000) }, async () => {
  await withAgent(agentOpts('echo', `127.0.0.1:${echo.port}`), async (agent) => {
    const mark = agent.mark();
    const msgs = ['hello through hcmd', crypto.randomBytes(1000), Buffer.alloc(0), crypto.randomBytes(300 * 1024), 'é✓ utf-8 text'];
    const r = await echoTunnel('echo', msgs);
    assert.equal(r.data.length, r.want.length, 'echoed length');
    assert.ok(r.data.equals(r.want), 'echoed bytes differ from what was sent');
    assert.equal(r.close.code, 1000, `sender close code ${r.close.code} ${r.close.reason}`);
    // The audit line: bytes each way and a sender address.
    await agent.waitForLog(/hcmd info: tunnel echo id=/, T(5000), mark);
    const t = agent.tunnels(mark);
    assert.equal(t.length, 1, `tunnel lines: ${t.map((x) => x.line).join('\n')}`);
    assert.equal(t[0].toEndpoint, r.want.length, t[0].line);
    assert.equal(t[0].toSender, r.want.length, t[0].line);
    assert.equal(t[0].endpoint, `127.0.0.1:${echo.port}`, t[0].line);
    assert.match(t[0].sender, /^127\.0\.0\.1:\d+$/, t[0].line);
  });
});

test('2. redis-server behind hcmd: PING / SET k v / GET k as binary messages get +PONG, +OK, $1 v', { timeout: T(30000) }, async () => {
  const redis = await startRedis();
  try {
    await withAgent(agentOpts('redis', `127.0.0.1:${redis.port}`), async () => {
      const s = await openSender(relay, 'redis', { rule: 'redis/send' });
      try {
        const exchange = async (cmd, want) => {
          const before = s.received;
          await s.send(Buffer.from(cmd), { binary: true });
          await s.waitBytes(before + want.length, T(5000));
          const got = s.data().subarray(before).toString('latin1');
          assert.equal(got, want, `reply to ${JSON.stringify(cmd)}`);
        };
        await exchange('*1\r\n$4\r\nPING\r\n', '+PONG\r\n');
        await exchange('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n', '+OK\r\n');
        await exchange('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n', '$1\r\nv\r\n');
        // Pipelined, split across two messages mid-command.
        const a = '*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGE';
        const b = 'T\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n';
        const before = s.received;
        await s.send(Buffer.from(a), { binary: true });
        await s.send(Buffer.from(b), { binary: true });
        const want = '+PONG\r\n$1\r\nv\r\n:1\r\n';
        await s.waitBytes(before + want.length, T(5000));
        assert.equal(s.data().subarray(before).toString('latin1'), want, 'pipelined replies');
        s.close(1000);
        const c = await s.waitClose(T(10000));
        // redis closes its side after our FIN; the sender then gets 1000.
        assert.equal(c.code, 1000, `close ${c.code} ${c.reason}`);
      } finally {
        s.terminate();
      }
    });
  } finally {
    await redis.stop();
  }
});

test('4. 200 short tunnels, 10 at a time, sizes 0..70000 incl. 16383/16384/16385/65536: each echoed exactly', { timeout: T(90000) }, async () => {
  const rnd = new Prng('sizes');
  const special = [0, 0, 1, 16383, 16384, 16385, 65535, 65536, 65537, 125, 126, 127, 65536 + 16384];
  const sizes = [];
  for (let i = 0; i < 200; i++) {
    if (i < special.length) sizes.push(special[i]);
    else sizes.push(rnd.next(4).readUInt32BE(0) % 70001);
  }
  await withAgent(agentOpts('many', `127.0.0.1:${echo.port}`), async (agent) => {
    const mark = agent.mark();
    const failures = [];
    let next = 0;
    const worker = async () => {
      while (next < sizes.length) {
        const i = next++;
        const size = sizes[i];
        const data = new Prng(`tunnel-${i}`).next(size);
        // Split into 1..4 messages; a 0-byte tunnel sends one empty
        // message (even i) or nothing at all (odd i).
        const parts = [];
        if (size === 0) {
          if (i % 2 === 0) parts.push(Buffer.alloc(0));
        } else {
          const n = 1 + (i % 4);
          let off = 0;
          for (let k = 0; k < n; k++) {
            const end = k === n - 1 ? size : Math.min(size, off + Math.floor(size / n));
            parts.push(data.subarray(off, end));
            off = end;
          }
        }
        try {
          const r = await echoTunnel('many', parts);
          if (!r.data.equals(data)) failures.push(`#${i} size ${size}: echoed ${r.data.length} bytes, sha ${sha256(r.data)} != ${sha256(data)}`);
          else if (r.close.code !== 1000) failures.push(`#${i} size ${size}: close ${r.close.code} ${r.close.reason}`);
        } catch (e) {
          failures.push(`#${i} size ${size}: ${e.message}`);
        }
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, worker));
    const elapsed = Date.now() - t0;
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of 200 tunnels failed`);
    // Every tunnel has its audit line with the right byte counts.
    const deadline = Date.now() + T(5000);
    while (agent.tunnels(mark).length < 200 && Date.now() < deadline) await sleep(50);
    const lines = agent.tunnels(mark);
    assert.equal(lines.length, 200, `tunnel audit lines: ${lines.length}`);
    const logged = lines.map((l) => `${l.toEndpoint}/${l.toSender}`).sort();
    const want = sizes.map((s) => `${s}/${s}`).sort();
    assert.deepEqual(logged, want, 'bytes_to_endpoint/bytes_to_sender per tunnel');
    assert.equal(agent.count(/hcmd warning/, mark), 0, `warnings:\n${agent.lines(/hcmd warning/, mark).slice(0, 10).join('\n')}`);
    console.log(`# 200 tunnels in ${elapsed} ms`);
  });
});

test('5. endpoint from metadata: a [connection] without endpoint reaches the service named in user_metadata', { timeout: T(30000) }, async () => {
  await withAgent(agentOpts('meta', undefined), async (agent) => {
    const m = agent.stderr().match(/meta: endpoint (\S+) \(from the relay's user metadata\)/);
    assert.ok(m, 'no "endpoint ... (from the relay\'s user metadata)" line');
    assert.equal(m[1], `localhost:${echo.port}`);
    assert.match(agent.stderr(), new RegExp(`meta: connected to localhost:${relay.port} as listener \\S+ \\(endpoint localhost:${echo.port}\\)`));
    const before = echo.connections;
    const mark = agent.mark();
    const r = await echoTunnel('meta', ['via metadata', crypto.randomBytes(5000)]);
    assert.ok(r.data.equals(r.want), 'echo differs');
    assert.equal(echo.connections, before + 1, 'the echo server named in the metadata saw no connection');
    await agent.waitForLog(/tunnel meta id=/, T(5000), mark);
    assert.equal(agent.tunnels(mark)[0].endpoint, `localhost:${echo.port}`);
  });
});

test('6. two hcmd agents on one hybrid connection both receive connections (40 senders)', { timeout: T(60000) }, async () => {
  const ep = `127.0.0.1:${echo.port}`;
  await withAgents([agentOpts('ha', ep, { name: 'hcmd-A' }), agentOpts('ha', ep, { name: 'hcmd-B' })], async (a, b) => {
    const ma = a.mark();
    const mb = b.mark();
    for (let i = 0; i < 40; i++) {
      const r = await echoTunnel('ha', [`sender ${i}`]);
      assert.equal(r.data.toString(), `sender ${i}`, `echo #${i}`);
    }
    const deadline = Date.now() + T(5000);
    while (a.tunnels(ma).length + b.tunnels(mb).length < 40 && Date.now() < deadline) await sleep(50);
    const na = a.tunnels(ma).length;
    const nb = b.tunnels(mb).length;
    assert.equal(na + nb, 40, `tunnel lines: A=${na} B=${nb}`);
    // Random choice: P(fewer than 5 of 40 at one agent) is about 2e-7.
    assert.ok(na >= 5 && nb >= 5, `distribution A=${na} B=${nb}`);
    console.log(`# distribution over two agents: ${na}/${nb}`);
  });
});

// Half-close. (a) The endpoint sends a banner and FIN while the sender keeps
// streaming: hcmd turns the FIN into Close 1000 towards the sender. ws 8
// answers a Close at once and refuses sends after that, so "keeps sending
// afterwards" is checked as: every byte the sender sent while its socket was
// OPEN -- including what it sent after the endpoint's FIN, which is still in
// flight when the Close arrives -- reaches the endpoint, and the endpoint
// sees EOF only after that.
test('9a. half-close: endpoint sends a banner and FIN; the sender gets the banner and Close 1000, and its bytes still reach the endpoint', { timeout: T(40000) }, async () => {
  const banner = Buffer.from('220 banner from the endpoint\r\n');
  const endAt = 1 << 20;
  const srv = await bannerServer(banner, { endWhen: (rec) => rec.received >= endAt });
  try {
    await withAgent(agentOpts('half', `127.0.0.1:${srv.port}`), async (agent) => {
      const s = await openSender(relay, 'half', { rule: 'half/send' });
      try {
        const total = 64 << 20; // far more than will be sent before the Close
        const st = await streamFromSender(s, total, new Prng('half-a'), { sizeFn: (i) => 1000 + ((i * 7919) % 60000), window: 1 << 20 });
        const c = await s.waitClose(T(10000));
        assert.equal(c.code, 1000, `sender close ${c.code} ${c.reason}`);
        assert.ok(s.data().equals(banner), `sender received ${JSON.stringify(s.data().toString('latin1').slice(0, 100))} (${s.received} bytes)`);
        const rec = await withTimeout(srv.records[0].done, T(10000), 'the endpoint connection to close');
        assert.ok(rec.eof, 'endpoint saw no FIN');
        assert.ok(rec.endedAt !== null && rec.endedAt >= endAt, 'endpoint never ended its side');
        const got = Buffer.concat(rec.chunks);
        assert.equal(got.length, st.sent, `endpoint received ${got.length} bytes; sender sent ${st.sent} while OPEN (stopped: ${st.stopped})`);
        assert.equal(sha256(got), st.hash, 'bytes at the endpoint differ');
        assert.ok(got.length > rec.endedAt, `no byte reached the endpoint after its FIN (received ${got.length}, FIN at ${rec.endedAt})`);
        console.log(`# 9a: ${got.length - rec.endedAt} bytes reached the endpoint after its FIN`);
      } finally {
        s.terminate();
      }
    });
  } finally {
    await srv.close();
  }
});

// (b) The other direction: the sender sends Close first. The endpoint sees
// EOF but can still write; ws 8 keeps delivering messages while CLOSING, so
// the sender receives the endpoint's reply before the close completes.
test('9b. half-close: sender sends Close first; the endpoint sees EOF, still writes 1 MiB, the sender receives it, then Close 1000', { timeout: T(40000) }, async () => {
  const reply = new Prng('half-b').next(1 << 20);
  let seen = null;
  const srv = await tcpServer((sock) => {
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => {
      seen = Buffer.concat(chunks);
      sock.write(Buffer.from(`got ${seen.length}\n`));
      sock.end(reply);
    });
  });
  try {
    await withAgent(agentOpts('half', `127.0.0.1:${srv.port}`), async () => {
      const s = await openSender(relay, 'half', { rule: 'half/send' });
      try {
        const payload = crypto.randomBytes(100000);
        await s.send(payload, { binary: true });
        s.close(1000, 'sender done');
        const c = await s.waitClose(T(15000));
        assert.ok(seen, 'the endpoint saw no EOF');
        assert.ok(seen.equals(payload), `endpoint got ${seen.length} bytes before EOF`);
        const want = Buffer.concat([Buffer.from(`got ${payload.length}\n`), reply]);
        assert.equal(s.received, want.length, 'bytes the sender received after its Close');
        assert.ok(s.data().equals(want), 'reply differs');
        assert.equal(c.code, 1000, `close ${c.code} ${c.reason}`);
      } finally {
        s.terminate();
      }
    });
  } finally {
    await srv.close();
  }
});

relayEpilogue(() => relay, 'hcrelay survived the agent tests, no sanitizer report, exits 0 on SIGTERM');
