'use strict';
// hcmd forwarder (the sender role, issue 4), end to end with real clients:
//   redis-cli / redis-benchmark / curl / a TCP client
//     -> [hcmd forward] -> hcrelay -> [hcmd connection | hyco-ws listener]
//     -> redis-server / a Node HTTP server / echo
// Every result through the chain is compared with the same client talking
// to the service directly.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { startRelay, listenSendEntities, freePort, mkTempDir, rmTempDir, sleep } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T } = require('./lib/agent');
const { closeAll, Prng, sha256, echoServer, startRedis } = require('./lib/endpoints');
const { HycoPeer } = require('./lib/peers');
const { withFwdAgents, tcpEcho, run } = require('./lib/forward');

let relay;
let echo;
let tmp;

const hcNames = ['redis', 'web', 'hyco', 'loop'];

before(async () => {
  tmp = mkTempDir('hcmd-fwd-e2e-');
  echo = await echoServer();
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: listenSendEntities(hcNames),
  });
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll();
  await closeAll();
  if (echo) await echo.close();
  if (relay) await relay.cleanup();
  rmTempDir(tmp);
});

// Clients must not be sent to a proxy by the environment.
const clientEnv = (() => {
  const e = { ...process.env };
  for (const k of Object.keys(e)) if (/^(https?|all|no)_proxy$/i.test(k)) delete e[k];
  return e;
})();

function listenerOpts(hc, endpoint) {
  return { relay, name: `hcmd-listener[${hc}]`, connections: [{ name: hc, hc, rule: `${hc}/listen`, endpoint }] };
}

function forwarderOpts(hc, bind) {
  return { relay, name: `hcmd-forwarder[${hc}]`, forwards: [{ name: `${hc}-fwd`, hc, rule: `${hc}/send`, bind }] };
}

async function waitUntil(fn, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

// Every forward line after `fmark` has a matching listener tunnel line
// after `lmark`: the relay's id is "<sender's sb-hc-id>_<guid>", and the
// byte counts are the same seen from both ends.
function checkAuditPairs(fwdAgent, fmark, lisAgent, lmark, n) {
  const f = fwdAgent.fwdLines(fmark);
  const t = lisAgent.tunnels(lmark);
  assert.equal(f.length, n, `forward audit lines:\n${f.map((x) => x.line).join('\n')}`);
  assert.equal(t.length, n, `listener tunnel lines:\n${t.map((x) => x.line).join('\n')}`);
  for (const x of f) {
    assert.equal(x.client, '127.0.0.1', x.line);
    const y = t.find((tt) => tt.id.startsWith(`${x.id}_`));
    assert.ok(y, `no listener tunnel line for forward id ${x.id}:\n${t.map((tt) => tt.line).join('\n')}`);
    assert.equal(x.toRelay, y.toEndpoint, `bytes client->endpoint differ:\n${x.line}\n${y.line}`);
    assert.equal(x.toClient, y.toSender, `bytes endpoint->client differ:\n${x.line}\n${y.line}`);
  }
  return f;
}

// ------------------------------------------------------------- redis -------

test('1a. redis-cli through forwarder -> hcrelay -> hcmd -> redis-server: PING/SET/GET/1 MiB value identical to direct', { timeout: T(60000) }, async () => {
  const redis = await startRedis();
  try {
    const bind = await freePort();
    await withFwdAgents([listenerOpts('redis', `127.0.0.1:${redis.port}`), forwarderOpts('redis', bind)], async (lis, fwd) => {
      const f = fwd.fwd['redis-fwd'];
      assert.equal(f.addr, '127.0.0.1', f.line);
      assert.equal(f.port, bind, f.line);
      assert.equal(f.entity, 'redis', f.line);
      // A printable 1 MiB value (redis-cli -x sends stdin as the last argument).
      const big = new Prng('redis-big').next(786432).toString('base64');
      assert.equal(big.length, 1 << 20);
      const cmds = [
        { args: ['PING'] },
        { args: ['SET', 'fwd:k', 'v through the hybrid connection'] },
        { args: ['GET', 'fwd:k'] },
        { args: ['-x', 'SET', 'fwd:big'], input: big },
        { args: ['GET', 'fwd:big'] },
        { args: ['STRLEN', 'fwd:big'] },
        { args: ['ECHO', 'h\u00e9llo \u2713'] },
      ];
      const cli = (port, c) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...c.args], { input: c.input || null, ms: T(20000), env: clientEnv });
      const direct = [];
      for (const c of cmds) direct.push(await cli(redis.port, c));
      const fmark = fwd.mark();
      const lmark = lis.mark();
      const via = [];
      for (const c of cmds) via.push(await cli(f.port, c));
      for (let i = 0; i < cmds.length; i++) {
        const what = `redis-cli ${cmds[i].args.join(' ').slice(0, 40)}`;
        assert.equal(direct[i].code, 0, `${what} direct: ${direct[i].stderr}`);
        assert.equal(via[i].code, 0, `${what} via forward exit ${via[i].code} ${via[i].signal}: ${via[i].stderr}`);
        assert.equal(via[i].stderr, '', `${what} via forward stderr`);
        assert.ok(via[i].stdout.equals(direct[i].stdout),
          `${what}: via forward ${JSON.stringify(via[i].stdout.toString().slice(0, 80))} (${via[i].stdout.length} bytes) != direct ${JSON.stringify(direct[i].stdout.toString().slice(0, 80))} (${direct[i].stdout.length} bytes)`);
      }
      assert.equal(via[0].stdout.toString(), 'PONG\n');
      assert.equal(via[2].stdout.toString(), 'v through the hybrid connection\n');
      assert.equal(sha256(via[4].stdout), sha256(Buffer.from(big + '\n')), 'GET of the 1 MiB value through the forwarder');
      // What was set through the forwarder is in redis itself.
      const s = await cli(f.port, { args: ['SET', 'fwd:only-via', 'x1'] });
      assert.equal(s.stdout.toString(), 'OK\n');
      const g = await cli(redis.port, { args: ['GET', 'fwd:only-via'] });
      assert.equal(g.stdout.toString(), 'x1\n', 'value set through the forwarder, read directly');
      // One audit line per redis-cli run, on both agents, matching.
      const n = cmds.length + 1;
      await waitUntil(() => fwd.fwdLines(fmark).length >= n && lis.tunnels(lmark).length >= n, T(5000), `${n} audit lines`);
      const lines = checkAuditPairs(fwd, fmark, lis, lmark, n);
      assert.ok(lines[3].toRelay > big.length, `the 1 MiB SET: ${lines[3].line}`);
      assert.ok(lines[4].toClient > big.length, `the 1 MiB GET: ${lines[4].line}`);
      assert.equal(fwd.count(/hcmd (warning|error):/), 0, `forwarder warnings:\n${fwd.lines(/hcmd (warning|error):/).join('\n')}`);
    });
  } finally {
    await redis.stop();
  }
});

test('1b. redis-benchmark -n 2000 -c 10 -t set,get through the forwarder finishes like the direct run', { timeout: T(120000) }, async () => {
  const redis = await startRedis();
  try {
    const bind = await freePort();
    await withFwdAgents([listenerOpts('redis', `127.0.0.1:${redis.port}`), forwarderOpts('redis', bind)], async (lis, fwd) => {
      const f = fwd.fwd['redis-fwd'];
      const bench = (port) =>
        run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-n', '2000', '-c', '10', '-t', 'set,get', '-q'], { ms: T(60000), env: clientEnv });
      const parse = (r) => {
        const text = r.stdout.toString().replace(/\r/g, '\n');
        const out = {};
        for (const m of text.matchAll(/^(SET|GET): ([\d.]+) requests per second/gm)) out[m[1]] = Number(m[2]);
        return { rates: out, text, errors: (text + r.stderr).split('\n').filter((l) => /error|refused|reset|closed/i.test(l)) };
      };
      const d = await bench(redis.port);
      const dp = parse(d);
      assert.equal(d.code, 0, `direct redis-benchmark: ${d.stderr}`);
      assert.deepEqual(Object.keys(dp.rates).sort(), ['GET', 'SET'], `direct output:\n${dp.text}`);
      const fmark = fwd.mark();
      const v = await bench(f.port);
      const vp = parse(v);
      assert.equal(v.timedOut, false, `redis-benchmark through the forwarder did not finish within ${T(60000)} ms:\n${vp.text.slice(-500)}`);
      assert.equal(v.code, 0, `redis-benchmark via forward exit ${v.code}: ${v.stderr}\n${vp.text.slice(-500)}`);
      assert.deepEqual(vp.errors, [], 'errors in redis-benchmark output through the forwarder');
      assert.deepEqual(Object.keys(vp.rates).sort(), Object.keys(dp.rates).sort(), `tests reported through the forwarder:\n${vp.text}`);
      for (const [k, rate] of Object.entries(vp.rates)) assert.ok(rate > 0, `${k}: ${rate} requests/s through the forwarder`);
      // 10 clients per test: at least 20 tunnels, all ended normally.
      await sleep(300);
      const lines = fwd.fwdLines(fmark);
      assert.ok(lines.length >= 20, `forward audit lines: ${lines.length}`);
      assert.equal(fwd.count(/hcmd (warning|error):/), 0, `forwarder warnings:\n${fwd.lines(/hcmd (warning|error):/).join('\n')}`);
      assert.equal(lis.count(/hcmd (warning|error):/), 0, `listener warnings:\n${lis.lines(/hcmd (warning|error):/).join('\n')}`);
    });
  } finally {
    await redis.stop();
  }
});

// -------------------------------------------------------------- http -------

// A Node HTTP server: GET /big (2 MiB), GET /small.json, POST /echo.
async function httpServer() {
  const big = new Prng('http-big').next(2 << 20);
  const small = Buffer.from(JSON.stringify({ ok: true, via: 'hcmd', n: [1, 2, 3], s: 'h\u00e9llo' }));
  const srv = http.createServer((req, res) => {
    res.sendDate = false; // headers can be compared byte for byte
    if (req.method === 'GET' && req.url === '/big') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': big.length, ETag: `"${sha256(big).slice(0, 16)}"`, 'X-Test': 'big' });
      res.end(big);
    } else if (req.method === 'GET' && req.url === '/small.json') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': small.length, 'X-Test': 'small' });
      res.end(small);
    } else if (req.method === 'POST' && req.url === '/echo') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const b = Buffer.concat(chunks);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': b.length, 'X-Body-Sha256': sha256(b) });
        res.end(b);
      });
    } else {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
    }
  });
  const sockets = new Set();
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: srv.address().port,
    big,
    small,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

test('2. curl through the chain to an HTTP server: 2 MiB body, JSON and a 1 MiB POST echo equal a direct curl', { timeout: T(60000) }, async () => {
  const web = await httpServer();
  const dir = fs.mkdtempSync(path.join(tmp, 'curl-'));
  try {
    const bind = await freePort();
    await withFwdAgents([listenerOpts('web', `127.0.0.1:${web.port}`), forwarderOpts('web', bind)], async (lis, fwd) => {
      const f = fwd.fwd['web-fwd'];
      const post = new Prng('http-post').next(1 << 20);
      fs.writeFileSync(path.join(dir, 'post.bin'), post);
      // Two GETs over one connection (keep-alive), then a POST.
      const curlGets = (port, tag) =>
        run('curl', ['-sS', '--noproxy', '*', '--max-time', String(T(20000) / 1000), '-D', '-',
          '-o', path.join(dir, `${tag}-big`), `http://127.0.0.1:${port}/big`,
          '-o', path.join(dir, `${tag}-small`), `http://127.0.0.1:${port}/small.json`], { ms: T(30000), env: clientEnv });
      const curlPost = (port, tag) =>
        run('curl', ['-sS', '--noproxy', '*', '--max-time', String(T(20000) / 1000), '-D', '-',
          '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${path.join(dir, 'post.bin')}`,
          '-o', path.join(dir, `${tag}-post`), `http://127.0.0.1:${port}/echo`], { ms: T(30000), env: clientEnv });
      const dg = await curlGets(web.port, 'direct');
      const dpst = await curlPost(web.port, 'direct');
      assert.equal(dg.code, 0, `direct curl: ${dg.stderr}`);
      assert.equal(dpst.code, 0, `direct curl POST: ${dpst.stderr}`);
      const fmark = fwd.mark();
      const lmark = lis.mark();
      const vg = await curlGets(f.port, 'via');
      assert.equal(vg.code, 0, `curl GETs through the forwarder exit ${vg.code}: ${vg.stderr}`);
      const vpst = await curlPost(f.port, 'via');
      assert.equal(vpst.code, 0, `curl POST through the forwarder exit ${vpst.code}: ${vpst.stderr}`);
      const rd = (n) => fs.readFileSync(path.join(dir, n));
      assert.equal(sha256(rd('via-big')), sha256(web.big), 'SHA-256 of the 2 MiB body through the forwarder');
      assert.equal(sha256(rd('via-big')), sha256(rd('direct-big')));
      assert.ok(rd('via-small').equals(web.small), `JSON through the forwarder: ${rd('via-small')}`);
      assert.equal(vg.stdout.toString(), dg.stdout.toString(), 'response headers of the GETs, through the forwarder vs direct');
      assert.match(vg.stdout.toString(), /^HTTP\/1\.1 200 OK\r\n[^]*X-Test: big[^]*HTTP\/1\.1 200 OK\r\n[^]*X-Test: small/);
      assert.equal(sha256(rd('via-post')), sha256(post), 'the 1 MiB POST echoed back through the forwarder');
      assert.ok(rd('direct-post').equals(post));
      // curl may see "100 Continue" first; either way both runs look the same.
      assert.equal(vpst.stdout.toString(), dpst.stdout.toString(), 'response headers of the POST, through the forwarder vs direct');
      assert.match(vpst.stdout.toString(), new RegExp(`X-Body-Sha256: ${sha256(post)}`));
      // Two curl runs: two tunnels (the GETs shared one connection).
      await waitUntil(() => fwd.fwdLines(fmark).length >= 2 && lis.tunnels(lmark).length >= 2, T(5000), 'two audit lines');
      const lines = checkAuditPairs(fwd, fmark, lis, lmark, 2);
      assert.ok(lines[0].toClient > web.big.length, lines[0].line);
      assert.ok(lines[1].toRelay > post.length && lines[1].toClient > post.length, lines[1].line);
    });
  } finally {
    await web.close();
  }
});

// ----------------------------------------------------------- hyco-ws -------

test('3. the forwarder against the official hyco-ws listener: TCP bytes echoed back equal, several sizes', { timeout: T(60000) }, async () => {
  const peer = new HycoPeer(relay);
  try {
    await peer.ready;
    const r = await peer.listen(relay.listenUrl('hyco'), relay.token(relay.listenUrl('hyco'), 'hyco/listen'));
    assert.ok(r.lid, 'hyco-ws listener');
    const bind = await freePort();
    await withFwdAgents([forwarderOpts('hyco', bind)], async (fwd) => {
      const f = fwd.fwd['hyco-fwd'];
      const sizes = [1, 125, 126, 65535, 65536, 65537, 300 * 1024, 1 << 20];
      const fmark = fwd.mark();
      for (const size of sizes) {
        const data = new Prng(`hyco-${size}`).next(size);
        const mark = peer.events.length;
        const res = await tcpEcho('127.0.0.1', f.port, data);
        assert.equal(res.timedOut, false, `${size} bytes: no echo within the time limit (got ${res.data.length})`);
        assert.equal(res.data.length, size, `${size} bytes: echoed length`);
        assert.ok(res.data.equals(data), `${size} bytes: echoed bytes differ`);
        // hyco-ws saw binary messages only, adding up to what was sent.
        const msgs = peer.events.slice(mark).filter((e) => e.event === 'message' && e.side === 'listener');
        assert.ok(msgs.length >= 1, `${size} bytes: hyco-ws listener saw no message`);
        assert.ok(msgs.every((m) => m.binary), `${size} bytes: a non-binary message reached hyco-ws`);
        assert.equal(msgs.reduce((a, m) => a + m.length, 0), size, `${size} bytes: total at the hyco-ws listener`);
      }
      await waitUntil(() => fwd.fwdLines(fmark).length >= sizes.length, T(5000), 'audit lines');
      const lines = fwd.fwdLines(fmark);
      assert.equal(lines.length, sizes.length, lines.map((l) => l.line).join('\n'));
      for (let i = 0; i < sizes.length; i++) {
        assert.equal(lines[i].toRelay, sizes[i], lines[i].line);
        assert.equal(lines[i].toClient, sizes[i], lines[i].line);
      }
    });
  } finally {
    await peer.stop();
  }
});

// --------------------------------------------- listener + forwarder in one --

test('4. one hcmd with a listener and a forwarder on the same hybrid connection: a client reaches its own echo server (20 at once)', { timeout: T(60000) }, async () => {
  const bind = await freePort();
  const opts = {
    relay,
    name: 'hcmd-both',
    connections: [{ name: 'loop', hc: 'loop', rule: 'loop/listen', endpoint: `127.0.0.1:${echo.port}` }],
    forwards: [{ name: 'loop-client', hc: 'loop', rule: 'loop/send', bind }],
  };
  await withFwdAgents([opts], async (a) => {
    const f = a.fwd['loop-client'];
    assert.equal(f.port, bind);
    const mark = a.mark();
    const one = await tcpEcho('127.0.0.1', f.port, Buffer.from('hello from my own forwarder'));
    assert.equal(one.data.toString(), 'hello from my own forwarder');
    const sizes = Array.from({ length: 20 }, (_, i) => [0, 1, 4096, 65536, 200000][i % 5] + i);
    const results = await Promise.all(
      sizes.map(async (size, i) => {
        const data = new Prng(`both-${i}`).next(size);
        const r = await tcpEcho('127.0.0.1', f.port, data);
        return { i, size, ok: r.data.equals(data), got: r.data.length, timedOut: r.timedOut };
      }),
    );
    const bad = results.filter((r) => !r.ok);
    assert.deepEqual(bad, [], 'connections whose echo differed');
    await waitUntil(() => a.fwdLines(mark).length >= 21 && a.tunnels(mark).length >= 21, T(5000), '21 audit lines of each kind');
    checkAuditPairs(a, mark, a, mark, 21);
  });
});

relayEpilogue(() => relay);
