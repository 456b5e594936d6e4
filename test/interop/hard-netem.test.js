'use strict';
// Network emulation: hcrelay in one network namespace, the hcmd listener
// agent and its endpoint in another, joined only by tunem
// (test/netem/tunem.c: two TUN devices, 100 ms one-way delay and 1% random
// loss in each direction, the userspace equivalent of tc netem). Senders
// run next to the relay. Several tunnels stream random bytes both ways at
// once; every byte must arrive exactly, while tunem really delays and
// really drops packets.
//
//   netns R: hcrelay on 10.77.0.1, senders         netns A: hcmd, endpoint
//            nem0 10.77.0.1 <--- tunem (100 ms, 1%) ---> nem0 10.77.0.2
//
// The relay's name, relay.netem.test, is mapped to 10.77.0.1 by a hosts
// file in /etc/netns/NS/ (which "ip netns exec" mounts over /etc/hosts);
// its certificate names it. Needs root, /dev/net/tun and "ip netns";
// skipped with the reason otherwise.
//
// The same file runs the processes inside the namespaces: with
// HC_NETEM_ROLE set it is not a test but the endpoint (in A), the senders
// (in R) or the round-trip probe (in R), and reports on stdout in lines
// that start with "@".

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const ROLE = process.env.HC_NETEM_ROLE;

const RELAY_NAME = 'relay.netem.test';
const R_ADDR = '10.77.0.1';
const A_ADDR = '10.77.0.2';
const DEV = 'nem0';
const DELAY_MS = 100;
const LOSS_PCT = 1;
const TUNNELS = 8;
const BYTES = 1024 * 1024; // each way, per tunnel

function emit(obj) {
  process.stdout.write(`@${JSON.stringify(obj)}\n`);
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// ------------------------------------------------- roles in a namespace ----

// In A: the endpoint. hashServer writes BYTES of Prng('netem-endpoint#i')
// on its i-th connection, hashes what it reads, and ends once both are
// done. Reports its port, then every connection when it closes; stops
// when stdin closes.
async function endpointRole() {
  const { hashServer } = require('./lib/endpoints');
  const size = Number(process.env.HC_NETEM_BYTES);
  const srv = await hashServer({ writeBytes: size, seed: 'netem-endpoint', endAfter: size, chunk: 16384 });
  const seen = new Set();
  const poll = setInterval(() => {
    srv.records.forEach((rec, index) => {
      if (seen.has(rec)) return;
      seen.add(rec);
      rec.done.then((r) =>
        emit({
          record: {
            index,
            received: r.received,
            hash: r.hash,
            sent: r.sent,
            sentHash: r.sentHash,
            eof: r.eof,
            writeError: r.writeError,
          },
        }),
      );
    });
  }, 20);
  const stop = () => {
    clearInterval(poll);
    srv.close().then(() => process.exit(0));
  };
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
  emit({ port: srv.port });
}

// In R: TUNNELS senders at once through the relay, each streaming BYTES of
// Prng('netem-sender#i') while it takes in what the endpoint sends.
async function senderRole() {
  const { tryWs, describe } = require('./lib/wsclient');
  const { Sender, streamFromSender } = require('./lib/agent');
  const { Prng } = require('./lib/endpoints');
  const env = process.env;
  const size = Number(env.HC_NETEM_BYTES);
  const ms = Number(env.HC_NETEM_MS);
  const ca = fs.readFileSync(env.HC_NETEM_CA);
  const sizes = [1, 1000, 16384, 65536, 125, 126, 65535, 7, 4096];
  const one = async (i) => {
    const t0 = Date.now();
    const r = await tryWs(env.HC_NETEM_URL, { ca, token: env.HC_NETEM_TOKEN, ms });
    if (!r.ok) return { i, error: `sender upgrade failed: ${describe(r)}` };
    const s = new Sender(r.ws, { keep: false });
    const openMs = Date.now() - t0;
    let error;
    const st = await streamFromSender(s, size, new Prng(`netem-sender#${i}`), {
      sizeFn: (k) => sizes[(k + i) % sizes.length],
      window: 1 << 20,
    });
    try {
      await s.waitBytes(size, ms);
      await s.waitClose(ms);
    } catch (e) {
      error = e.message;
      s.terminate();
    }
    return {
      i,
      openMs,
      ms: Date.now() - t0,
      sent: st.sent,
      sentHash: st.hash,
      stopped: st.stopped,
      received: s.received,
      recvHash: s.digest(),
      close: s.closed ? s.closed.code : null,
      error,
    };
  };
  const n = Number(env.HC_NETEM_TUNNELS);
  const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  emit({ results });
  process.exit(0);
}

// In R: round trips across tunem, timed by TCP connects to a port nobody
// listens on in A (the SYN goes over, the RST comes back), and the same
// on R's own loopback for comparison.
async function rttRole() {
  const probe = (host) =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const s = net.connect({ host, port: 9 });
      const done = (what) => {
        s.destroy();
        resolve({ what, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
      };
      s.setTimeout(5000, () => done('timeout'));
      s.on('connect', () => done('connected'));
      s.on('error', (e) => done(e.code));
    });
  const across = [];
  const local = [];
  for (let i = 0; i < 5; i++) {
    across.push(await probe(process.env.HC_NETEM_PEER));
    local.push(await probe('127.0.0.1'));
  }
  emit({ across, local });
  process.exit(0);
}

if (ROLE) {
  const roles = { endpoint: endpointRole, sender: senderRole, rtt: rttRole };
  const run = roles[ROLE];
  if (!run) {
    process.stderr.write(`unknown HC_NETEM_ROLE ${ROLE}\n`);
    process.exit(2);
  }
  // Never outlive the test that started us.
  setTimeout(() => {
    process.stderr.write(`role ${ROLE}: time limit reached\n`);
    process.exit(3);
  }, 600000).unref();
  run().catch((e) => {
    process.stderr.write(`role ${ROLE}: ${e.stack || e}\n`);
    process.exit(1);
  });
} else {
  defineTests();
}

// ------------------------------------------------------------ the tests ----

function defineTests() {
  const { test, before, after } = require('node:test');
  const assert = require('node:assert/strict');
  const { writeConfig, mkTempDir, rmTempDir, withTimeout, hycoToken, SANITIZER_RE } = require('./lib/relay');
  const { HCMD, T, TUNNEL_RE } = require('./lib/agent');
  const { Prng } = require('./lib/endpoints');
  const { until } = require('./lib/ops');

  const HCRELAY = require('./lib/relay').HCRELAY;
  const TUNEM = path.join(path.dirname(HCMD), 'test', 'tunem');
  const tag = `hcn${process.pid}`;
  const NS_R = `${tag}r`;
  const NS_A = `${tag}a`;
  const ENV = { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1' };
  delete ENV.JOURNAL_STREAM; // hcmd would switch to journald-style lines

  // A process started with "ip netns exec NS ..." (ip execs the command, so
  // the pid is the command's own).
  const live = new Set();
  class NsProc {
    constructor(name, ns, cmd, args, { env = ENV, stdin = 'ignore' } = {}) {
      this.name = name;
      this.text = '';
      this.out = '';
      this.exit = null;
      this.waiters = [];
      this.proc = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: [stdin, 'pipe', 'pipe'], env });
      live.add(this);
      this.proc.stdout.setEncoding('utf8');
      this.proc.stderr.setEncoding('utf8');
      this.proc.stdout.on('data', (c) => {
        this.out += c;
        this.text += c;
        this.wake();
      });
      this.proc.stderr.on('data', (c) => {
        this.text += c;
        this.wake();
      });
      this.proc.on('error', (e) => {
        this.text += `spawn error: ${e.message}\n`;
      });
      this.exited = new Promise((resolve) => {
        this.proc.on('close', (code, signal) => {
          this.exit = { code, signal };
          live.delete(this);
          this.wake();
          resolve(this.exit);
        });
      });
    }
    wake() {
      this.waiters = this.waiters.filter((w) => !w());
    }
    alive() {
      return this.exit === null;
    }
    tail(n = 30) {
      return this.text.split('\n').slice(-n - 1).join('\n');
    }
    // The first match of re in the output; rejects on exit or after ms.
    waitFor(re, ms) {
      return withTimeout(
        new Promise((resolve, reject) => {
          const check = () => {
            const m = this.text.match(re);
            if (m) resolve(m);
            else if (this.exit) reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before printing ${re}`));
            else return false;
            return true;
          };
          if (!check()) this.waiters.push(check);
        }),
        ms,
        `${this.name}: ${re}`,
      ).catch((e) => {
        e.message += `\n--- ${this.name} output ---\n${this.tail()}`;
        throw e;
      });
    }
    // The "@{...}" report lines.
    reports() {
      return this.out
        .split('\n')
        .filter((l) => l.startsWith('@'))
        .map((l) => JSON.parse(l.slice(1)));
    }
    // SIGTERM, then SIGKILL after ms. Resolves { code, signal, forced }.
    async stop(ms = T(10000)) {
      if (this.exit) return { ...this.exit, forced: false };
      try {
        this.proc.kill('SIGTERM');
      } catch {}
      try {
        return { ...(await withTimeout(this.exited, ms, `${this.name} exit after SIGTERM`)), forced: false };
      } catch {
        this.kill();
        await withTimeout(this.exited, 5000, `${this.name} exit after SIGKILL`).catch(() => {});
        return { code: null, signal: 'SIGKILL', forced: true };
      }
    }
    kill() {
      try {
        this.proc.kill('SIGKILL');
      } catch {}
    }
    sanitizerReport() {
      const i = this.text.search(SANITIZER_RE);
      return i < 0 ? null : this.text.slice(Math.max(0, i - 300), i + 4000);
    }
  }

  const sh = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

  let dir = null; // the temp dir: certs, relay.ini, hcm.ini

  // Removes everything the setup made; safe to call twice, and from the
  // process 'exit' hook (synchronous).
  let made = false;
  function teardownSync() {
    for (const p of [...live]) p.kill();
    if (dir) rmTempDir(dir);
    dir = null;
    if (!made) return;
    for (const ns of [NS_R, NS_A]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {}
      fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    try {
      fs.rmdirSync('/etc/netns'); // only when nothing else is in it
    } catch {}
    made = false;
  }
  process.on('exit', teardownSync);
  for (const [sig, no] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]]) {
    process.on(sig, () => {
      teardownSync();
      process.exit(128 + no);
    });
  }

  // Test CA and a relay certificate for RELAY_NAME.
  function makeNetemCerts(into) {
    const f = (n) => path.join(into, n);
    const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
    fs.writeFileSync(
      f('server.ext'),
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
        `extendedKeyUsage=serverAuth\nsubjectAltName=DNS:${RELAY_NAME}\nauthorityKeyIdentifier=keyid\n`,
    );
    ossl(['genrsa', '-out', f('ca.key'), '2048']);
    ossl(['req', '-new', '-key', f('ca.key'), '-subj', '/CN=hcmd netem test CA', '-out', f('ca.csr')]);
    ossl(['x509', '-req', '-in', f('ca.csr'), '-signkey', f('ca.key'), '-days', '2', '-extfile', f('ca.ext'), '-out', f('ca.crt')]);
    ossl(['genrsa', '-out', f('relay.key'), '2048']);
    ossl(['req', '-new', '-key', f('relay.key'), '-subj', `/CN=${RELAY_NAME}`, '-out', f('relay.csr')]);
    ossl(['x509', '-req', '-in', f('relay.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2',
      '-extfile', f('server.ext'), '-out', f('relay.crt')]);
    return { caFile: f('ca.crt'), certFile: f('relay.crt'), keyFile: f('relay.key') };
  }

  // Why this machine cannot run the file, or null.
  function cannotRun() {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (network namespaces, TUN devices)';
    if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun (TUN devices)';
    try {
      sh('ip', ['netns', 'list']);
    } catch (e) {
      return `"ip netns" is not available: ${(e.stderr || e.message).toString().trim()}`;
    }
    return null;
  }

  let skipReason = null;
  let relay;
  let tunem;
  let keys;
  let relayPort;
  let certs;
  const transfer = { done: false };

  before(async () => {
    skipReason = cannotRun();
    if (skipReason) return;
    assert.ok(fs.existsSync(TUNEM), `${TUNEM} is missing: build it with make unit-bin (make asan for the ASan tree)`);
    try {
      sh('ip', ['netns', 'add', NS_R]);
    } catch (e) {
      skipReason = `cannot make a network namespace: ${(e.stderr || e.message).toString().trim()}`;
      return;
    }
    made = true;
    sh('ip', ['netns', 'add', NS_A]);
    for (const ns of [NS_R, NS_A]) {
      // IPv4 only: no IPv6 neighbour chatter from a device whose peer is
      // not up yet (tunem would count its write as an error).
      try {
        sh('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      } catch {}
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      fs.mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      fs.writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n::1 localhost\n${R_ADDR} ${RELAY_NAME}\n`);
    }
    dir = mkTempDir('hcmd-netem-');
    const seed = crypto.randomInt(1, 2 ** 47);
    tunem = new NsProc('tunem', NS_R, TUNEM, [
      '--ns-a', `/run/netns/${NS_R}`, '--dev-a', DEV, '--ns-b', `/run/netns/${NS_A}`, '--dev-b', DEV,
      '--delay-ms', String(DELAY_MS), '--loss', String(LOSS_PCT), '--queue', '2048', '--max-seconds', '600', '--seed', String(seed),
    ]);
    const ready = await tunem.waitFor(/tunem ready .*/, T(5000));
    console.log(`# ${ready[0]}`);
    for (const [ns, local, peer] of [[NS_R, R_ADDR, A_ADDR], [NS_A, A_ADDR, R_ADDR]]) {
      sh('ip', ['-n', ns, 'addr', 'add', local, 'peer', peer, 'dev', DEV]);
      sh('ip', ['-n', ns, 'link', 'set', DEV, 'up']);
    }

    certs = makeNetemCerts(dir);
    const w = writeConfig(dir, certs, {
      relay: { listen: `${R_ADDR}:0`, hostname: RELAY_NAME, log_level: 'info' },
      rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send' }],
      hcs: [{ name: 'netem', rules: [{ name: 'listen', rights: 'Listen' }, { name: 'send', rights: 'Send' }] }],
    });
    keys = w.keys;
    relay = new NsProc('hcrelay', NS_R, HCRELAY, ['-c', w.iniFile]);
    const m = await relay.waitFor(/listening on (\S+):(\d+)/, T(10000));
    relayPort = Number(m[2]);
    assert.equal(m[1], R_ADDR, m[0]);
  }, { timeout: T(60000) });

  after(async () => {
    for (const p of [...live]) await p.stop(T(5000));
    teardownSync();
  });

  test(`the path delays: a TCP round trip from the relay's namespace to the agent's takes >= ${2 * DELAY_MS} ms (tunem: ${DELAY_MS} ms each way)`, { timeout: T(30000) }, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const p = new NsProc('rtt probe', NS_R, process.execPath, [__filename], { env: { ...ENV, HC_NETEM_ROLE: 'rtt', HC_NETEM_PEER: A_ADDR } });
    const e = await withTimeout(p.exited, T(25000), 'rtt probe to finish');
    assert.equal(e.code, 0, `rtt probe exit ${JSON.stringify(e)}\n${p.tail()}`);
    const [{ across, local }] = p.reports();
    const fmt = (a) => a.map((x) => `${x.ms.toFixed(1)}${x.what === 'ECONNREFUSED' ? '' : `(${x.what})`}`).join(' ');
    console.log(`# round trips across tunem (ms): ${fmt(across)}; on R's loopback: ${fmt(local)}`);
    for (const x of [...across, ...local]) assert.equal(x.what, 'ECONNREFUSED', `probe answered with ${x.what}, not a reset`);
    const min = Math.min(...across.map((x) => x.ms));
    assert.ok(min >= 2 * DELAY_MS, `fastest round trip across tunem ${min.toFixed(1)} ms < ${2 * DELAY_MS} ms`);
    assert.ok(min < 2 * DELAY_MS + T(400), `fastest round trip across tunem ${min.toFixed(1)} ms: far more than the ${2 * DELAY_MS} ms configured`);
    assert.ok(Math.min(...local.map((x) => x.ms)) < 50, `loopback round trips: ${fmt(local)}`);
  });

  test(`${TUNNELS} tunnels at once across 100 ms delay and 1% loss each way, ${BYTES / 1024} KiB each way per tunnel: byte-exact (SHA-256), hcmd exits cleanly`, { timeout: T(120000) }, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const endpoint = new NsProc('endpoint', NS_A, process.execPath, [__filename], {
      env: { ...ENV, HC_NETEM_ROLE: 'endpoint', HC_NETEM_BYTES: String(BYTES) },
      stdin: 'pipe',
    });
    let agent;
    let err = null;
    const problems = [];
    try {
      const pm = await endpoint.waitFor(/@\{"port":(\d+)\}/, T(10000));
      const agentDir = path.join(dir, 'agent');
      fs.mkdirSync(agentDir);
      const ini = path.join(agentDir, 'hcm.ini');
      const cs = `Endpoint=sb://${RELAY_NAME}:${relayPort}/;SharedAccessKeyName=listen;SharedAccessKey=${keys['netem/listen'].primary};EntityPath=netem`;
      fs.writeFileSync(
        ini,
        ['[hcmd]', `ca_file = ${certs.caFile}`, 'log_level = info', `control_socket = ${path.join(agentDir, 'hcmd.sock')}`,
          '', '[connection netem]', `connection_string = ${cs}`, `endpoint = 127.0.0.1:${pm[1]}`, ''].join('\n'),
        { mode: 0o600 },
      );
      const t0 = Date.now();
      agent = new NsProc('hcmd', NS_A, HCMD, ['-c', ini]);
      await agent.waitFor(/hcmd info: netem: connected to \S+ as listener/, T(30000));
      const connectMs = Date.now() - t0;

      const url = `wss://${RELAY_NAME}:${relayPort}/$hc/netem?sb-hc-action=connect`;
      const t1 = Date.now();
      const senders = new NsProc('senders', NS_R, process.execPath, [__filename], {
        env: {
          ...ENV,
          HC_NETEM_ROLE: 'sender',
          HC_NETEM_URL: url,
          HC_NETEM_TOKEN: hycoToken(url, 'send', keys['netem/send'].primary),
          HC_NETEM_CA: certs.caFile,
          HC_NETEM_TUNNELS: String(TUNNELS),
          HC_NETEM_BYTES: String(BYTES),
          HC_NETEM_MS: String(T(60000)),
        },
      });
      const se = await withTimeout(senders.exited, T(90000), 'the senders to finish').catch((e) => {
        senders.kill();
        e.message += `\n--- senders ---\n${senders.tail()}`;
        throw e;
      });
      const secs = (Date.now() - t1) / 1000;
      assert.equal(se.code, 0, `senders exit ${JSON.stringify(se)}\n${senders.tail()}`);
      const { results } = senders.reports().find((r) => r.results) || {};
      assert.ok(results, `no report from the senders\n${senders.tail()}`);
      // Every endpoint connection has reported once it closed.
      const records = () => endpoint.reports().filter((r) => r.record).map((r) => r.record);
      const deadline = Date.now() + T(15000);
      while (records().length < TUNNELS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const recs = records();
      console.log(`# hcmd connected across tunem in ${connectMs} ms; ${TUNNELS} x ${BYTES / 1024} KiB each way in ${secs.toFixed(1)} s; per tunnel (open ms/total ms): ${results.map((r) => `${r.openMs}/${r.ms}`).join(' ')}`);

      for (const r of results) {
        assert.equal(r.error, undefined, `tunnel ${r.i}: ${r.error}`);
        assert.equal(r.stopped, null, `tunnel ${r.i}: sender stream stopped: ${r.stopped}`);
        assert.equal(r.sent, BYTES, `tunnel ${r.i}: bytes sent`);
        assert.equal(r.sentHash, sha256(new Prng(`netem-sender#${r.i}`).next(BYTES)), `tunnel ${r.i}: the sender's stream`);
        assert.equal(r.received, BYTES, `tunnel ${r.i}: bytes at the sender`);
        assert.equal(r.close, 1000, `tunnel ${r.i}: sender close code`);
      }
      assert.equal(recs.length, TUNNELS, `endpoint connections reported: ${recs.length}\n${endpoint.tail()}`);
      for (const rec of recs) {
        assert.equal(rec.writeError, undefined, `endpoint #${rec.index}: ${rec.writeError}`);
        assert.equal(rec.received, BYTES, `endpoint #${rec.index}: bytes at the endpoint`);
        assert.equal(rec.sent, BYTES, `endpoint #${rec.index}: bytes the endpoint sent`);
        assert.equal(rec.sentHash, sha256(new Prng(`netem-endpoint#${rec.index}`).next(BYTES)), `endpoint #${rec.index}: its stream`);
      }
      // sender -> endpoint: what each endpoint connection read is exactly
      // what one of the senders sent (tunnels pair up in any order).
      assert.deepEqual(recs.map((x) => x.hash).sort(), results.map((x) => x.sentHash).sort(), 'SHA-256 of the bytes at the endpoint differ from what the senders sent');
      // endpoint -> sender
      assert.deepEqual(results.map((x) => x.recvHash).sort(), recs.map((x) => x.sentHash).sort(), 'SHA-256 of the bytes at the senders differ from what the endpoint sent');
      // hcmd's audit lines agree.
      const tunnels = () => [...agent.text.matchAll(TUNNEL_RE)];
      await until(() => tunnels().length >= TUNNELS, T(10000), () => `${TUNNELS} tunnel lines from hcmd (have ${tunnels().length})`);
      assert.equal(tunnels().length, TUNNELS, `hcmd tunnel lines:\n${tunnels().map((x) => x[0]).join('\n')}`);
      for (const x of tunnels()) {
        assert.equal(Number(x[5]), BYTES, x[0]);
        assert.equal(Number(x[6]), BYTES, x[0]);
      }
      const reconnects = (agent.text.match(/netem: connected to/g) || []).length - 1;
      console.log(`# hcmd control channel reconnects during the test: ${reconnects}`);
      transfer.done = true;
    } catch (e) {
      err = e;
    } finally {
      if (agent) {
        const e = await agent.stop(T(15000));
        if (e.forced) problems.push(`hcmd did not exit within ${T(15000)} ms of SIGTERM`);
        else if (e.code !== 0 || e.signal !== null) problems.push(`hcmd exit status after SIGTERM: ${JSON.stringify(e)}`);
        const rep = agent.sanitizerReport();
        if (rep) problems.push(`sanitizer output in hcmd stderr:\n${rep}`);
      }
      endpoint.proc.stdin.end();
      await endpoint.stop(T(5000));
    }
    const ctx = agent ? `\n--- hcmd (last 30 lines) ---\n${agent.tail(30)}\n--- hcrelay (last 15 lines) ---\n${relay.tail(15)}` : '';
    if (err) {
      err.message += (problems.length ? `\n[teardown] ${problems.join('\n[teardown] ')}` : '') + ctx;
      throw err;
    }
    assert.equal(problems.length, 0, problems.join('\n') + ctx);
  });

  test('hcrelay survived, no sanitizer report, exits 0 on SIGTERM', { timeout: T(30000) }, async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.ok(relay.alive(), `hcrelay died: ${JSON.stringify(relay.exit)}\n${relay.tail(40)}`);
    const e = await relay.stop(T(10000));
    assert.equal(relay.sanitizerReport(), null, `sanitizer output in hcrelay stderr:\n${relay.sanitizerReport()}`);
    assert.ok(!e.forced, `hcrelay did not exit within ${T(10000)} ms of SIGTERM\n${relay.tail()}`);
    assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `hcrelay exit status\n${relay.tail()}`);
  });

  test(`tunem really dropped packets: some lost in each direction at about ${LOSS_PCT}%, none for a full queue, no errors`, { timeout: T(30000) }, async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.ok(tunem.alive(), `tunem died: ${JSON.stringify(tunem.exit)}\n${tunem.tail()}`);
    const e = await tunem.stop(T(5000));
    assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `tunem exit status\n${tunem.tail()}`);
    assert.equal(tunem.sanitizerReport(), null, `sanitizer output in tunem:\n${tunem.sanitizerReport()}`);
    const dirs = {};
    for (const m of tunem.out.matchAll(/^tunem (a->b|b->a) (.*)$/gm)) {
      dirs[m[1]] = Object.fromEntries(m[2].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      console.log(`# ${m[0]}`);
    }
    assert.ok(dirs['a->b'] && dirs['b->a'], `tunem printed no counters:\n${tunem.tail()}`);
    assert.ok(transfer.done, 'the transfer test did not pass; the counters say nothing');
    let received = 0;
    let lost = 0;
    for (const [name, d] of Object.entries(dirs)) {
      assert.ok(d.dropped > 0 && d.lost > 0, `${name}: no packet lost out of ${d.received}`);
      assert.equal(d.dropped, d.lost + d.overflow + d.oversize + d.errors, `${name}: dropped is the sum`);
      assert.equal(d.overflow, 0, `${name}: packets dropped for a full queue`);
      assert.equal(d.oversize, 0, `${name}: packets too large for a queue slot`);
      assert.equal(d.errors, 0, `${name}: write errors`);
      assert.equal(d.forwarded + d.dropped + d.pending, d.received, `${name}: every packet accounted for`);
      received += d.received;
      lost += d.lost;
    }
    // 1% of thousands of packets: far from 0 and far from 3%.
    const pct = (100 * lost) / received;
    console.log(`# tunem lost ${lost} of ${received} packets (${pct.toFixed(2)}%)`);
    assert.ok(received >= 1000, `only ${received} packets crossed tunem`);
    assert.ok(pct >= 0.25 && pct <= 3, `loss rate ${pct.toFixed(2)}% is not about ${LOSS_PCT}%`);
  });
}
