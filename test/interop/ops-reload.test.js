'use strict';
// Operations (issue 5): configuration reloads with SIGHUP while tunnels
// carry data.
//   1. hcmd: 20 SIGHUPs (unchanged, invalid and changed files) across a
//      live 64 MiB stream each way through a forward and a listener; the
//      stream arrives intact and the unchanged connection's control channel
//      is never reconnected.
//   3. hcrelay: removing a hybrid connection closes only its listener
//      (1001); an invalid relay.ini changes nothing.
// No key and no "sig=" in any log (9).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { freePort, withTimeout, hcWithRules } = require('./lib/relay');
const { cleanupAll, T, openSender, sleep } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { withFwdAgents, tcpEcho, tcpWatchClose } = require('./lib/forward');
const { MiB, withRelayCtl, hupAgent, Gate, gatedEndpoint, gatedClient, until, assertNoSecrets, keysOf, lineOf, reEsc, killAllProcs } = require('./lib/ops');

after(async () => {
  await cleanupAll();
  await closeAll();
  await killAllProcs();
});

const hcEntity = (name) => hcWithRules(name);

const relayLines = (relay, re, from = 0) => relay.stderr().slice(from).split('\n').filter((l) => re.test(l));

// --------------------------------------------------------------- test 1 ----

test('1. 20 SIGHUPs to hcmd (unchanged, invalid, changed files) across a live 64 MiB stream each way: intact, the unchanged control channel never reconnects', { timeout: T(120000) }, async () => {
  const TOTAL = 64 * MiB;
  const SIGHUPS = 20;
  const gate = new Gate(TOTAL, SIGHUPS);
  const ep = await gatedEndpoint(TOTAL, gate, 'ops-reload-endpoint');
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: { rules: [], hcs: [hcEntity('hc'), hcEntity('x')] } }, async (ctl, relay) => {
      const bind = await freePort();
      const xBind = await freePort();
      const hcF = { name: 'hc-f', hc: 'hc', rule: 'hc/send', bind: `127.0.0.1:${bind}` };
      const xF = { name: 'x-f', hc: 'x', rule: 'x/send', bind: `127.0.0.1:${xBind}` };
      const hc = { name: 'hc', hc: 'hc', rule: 'hc/listen', endpoint: `127.0.0.1:${ep.port}` };
      const x = { name: 'x', hc: 'x', rule: 'x/listen', endpoint: `127.0.0.1:${echo.port}` };
      const opts = { relay, name: 'hcmd', forwards: [hcF], connections: [hc] };
      await withFwdAgents([opts], async (agent) => {
        const ini = fs.realpathSync(agent.iniFile);
        const base = { ...agent.settings };
        // The file as the test wants it: [hcmd] settings, with or without
        // [connection x] and [forward x-f], extra text at the end (in the
        // last [forward] section). An invalid step starts from the last
        // valid file; a valid one becomes it.
        let good = { settings: {}, withX: false, extra: '' };
        const write = (st) => {
          agent.settings = { ...base, ...st.settings };
          agent.connections = st.withX ? [hc, x] : [hc];
          agent.forwards = st.withX ? [hcF, xF] : [hcF];
          agent.extraIni = st.extra;
          agent.writeConfig();
          return fs.readFileSync(agent.iniFile, 'utf8');
        };
        const apply = (mutate) => {
          const st = { ...good, settings: { ...good.settings }, extra: '' };
          mutate(st);
          return { st, text: write(st) };
        };
        // [what, mutate, for an invalid file: [line start, message re]]
        const steps = [
          ['unchanged', () => {}],
          ['log_level = debug', (s) => (s.settings.log_level = 'debug')],
          ['invalid: a line that is not key = value', (s) => (s.extra = 'this line is wrong\n'), ['this line is wrong', /expected 'key = value'/]],
          ['[connection x] + [forward x-f] added', (s) => (s.withX = true)],
          ['unchanged', () => {}],
          ['drain_timeout = 7', (s) => (s.settings.drain_timeout = 7)],
          ['invalid: unknown key', (s) => (s.extra = 'bogus_key = 1\n'), ['bogus_key', /unknown key 'bogus_key' in \[forward \S+\]/]],
          ['[connection x] + [forward x-f] removed', (s) => (s.withX = false)],
          ['log_level = info', (s) => (s.settings.log_level = 'info')],
          ['invalid: max_tunnels = zero', (s) => (s.settings.max_tunnels = 'zero'), ['max_tunnels', /max_tunnels: a number/]],
          ['connect_timeout = 7', (s) => (s.settings.connect_timeout = 7)],
          ['unchanged', () => {}],
          ['[connection x] + [forward x-f] added again', (s) => (s.withX = true)],
          ['ping_interval = 13', (s) => (s.settings.ping_interval = 13)],
          ['invalid: section header without ]', (s) => (s.extra = '[connection broken\n'), ['[connection broken', /section header without/]],
          ['[connection x] + [forward x-f] removed again', (s) => (s.withX = false)],
          ['drain_timeout = 30', (s) => (s.settings.drain_timeout = 30)],
          // A connection string with a real key and a wrong scheme: the
          // error must not quote the key.
          ['invalid: connection_string with an http:// Endpoint', (s) => (s.extra = `\n[connection y]\nconnection_string = Endpoint=http://localhost:${relay.port}/;SharedAccessKeyName=listen;SharedAccessKey=${relay.key('x/listen')};EntityPath=x\n`), ['connection_string = Endpoint=http:', /connection_string: Endpoint must use the sb:\/\/ scheme/]],
          ['invalid: a key set twice', (s) => (s.extra = 'bind = 2222\n'), ['bind = 2222', /set twice/]],
          ['unchanged (valid again)', () => {}],
        ];
        assert.equal(steps.length, SIGHUPS);

        const f = agent.fwd['hc-f'];
        const cli = await gatedClient(f.addr, f.port, TOTAL, gate, 'ops-reload-client');
        const t0 = Date.now();
        let xAddedAt = null;
        let debugFrom = null;
        let infoFrom = null;
        for (let k = 0; k < SIGHUPS; k++) {
          const [what, mutate, bad] = steps[k];
          // What the gate let through so far has crossed, both ways.
          const lim = gate.limit();
          await until(() => ep.big.received >= lim && cli.received >= lim, T(30000), () => `step ${k + 1}: the stream to reach ${lim} bytes (endpoint has ${ep.big.received}, client ${cli.received})`);
          gate.advance(); // the next slice flows while hcmd reloads
          if (what.includes('removed')) {
            // x is live before it goes: connected, and a tunnel through x-f works.
            await agent.waitForLog(/hcmd info: x: connected to \S+ as listener/, T(10000), xAddedAt);
            const xr = await tcpEcho('127.0.0.1', xBind, Buffer.from(`via x-f ${k}`));
            assert.equal(xr.data.toString(), `via x-f ${k}`, `a tunnel through the added [forward x-f] (step ${k + 1})`);
          }
          const { st, text } = apply(mutate);
          if (!bad) {
            good = st;
            const m = await hupAgent(agent).catch((e) => {
              throw new Error(`SIGHUP #${k + 1} (${what}): ${e.message}`);
            });
            if (what.includes('added')) {
              await agent.waitForLog(/hcmd info: reload: x added/, T(3000), m);
              await agent.waitForLog(new RegExp(`hcmd info: forward x-f: listening on 127\\.0\\.0\\.1:${xBind} for x`), T(3000), m);
              xAddedAt = m;
            }
            if (what.includes('removed')) {
              await agent.waitForLog(/hcmd info: reload: x removed: its tunnels may finish/, T(3000), m);
              await agent.waitForLog(/hcmd info: reload: forward x-f removed/, T(3000), m);
              const gone = await tcpWatchClose('127.0.0.1', xBind).then(
                () => 'accepted',
                (e) => e.code,
              );
              assert.equal(gone, 'ECONNREFUSED', `[forward x-f] after its removal (step ${k + 1})`);
            }
            const done = agent.stderr().indexOf('SIGHUP: configuration reloaded', m);
            if (what === 'log_level = debug') debugFrom = done;
            if (what === 'log_level = info') infoFrom = done;
          } else {
            const m = await hupAgent(agent, { ok: false }).catch((e) => {
              throw new Error(`SIGHUP #${k + 1} (${what}): ${e.message}`);
            });
            const re = new RegExp(`hcmd error: ${reEsc(ini)}:${lineOf(text, bad[0])}: .*${bad[1].source}`);
            await agent.waitForLog(re, T(2000), m).catch((e) => {
              throw new Error(`SIGHUP #${k + 1} (${what}): want ${re}\n${agent.stderr().slice(m)}\n${e.message}`);
            });
            assert.equal(agent.count(/configuration reloaded/, m), 0, `SIGHUP #${k + 1} (${what}) was applied`);
          }
          assert.ok(agent.alive(), `hcmd died at SIGHUP #${k + 1} (${what})`);
        }
        const hupMs = Date.now() - t0;
        gate.open();
        const c = await withTimeout(cli.done, T(60000), `the stream to end (client received ${cli.received}, endpoint ${ep.big.received})`);
        const e = await withTimeout(ep.big.done, T(10000), 'the endpoint connection to close');
        const totalMs = Date.now() - t0;
        console.log(`# 20 SIGHUPs in ${hupMs} ms; 2 x 64 MiB in ${totalMs} ms`);
        assert.equal(c.writeError, undefined, `client: ${c.writeError}`);
        assert.equal(e.writeError, undefined, `endpoint: ${e.writeError}`);
        assert.equal(e.received, TOTAL, 'bytes at the endpoint');
        assert.equal(e.hash, c.sentHash, 'SHA-256 at the endpoint = what the client sent');
        assert.equal(c.received, TOTAL, 'bytes back at the client');
        assert.equal(c.recvHash, e.sentHash, 'SHA-256 at the client = what the endpoint sent');
        assert.ok(c.eof, 'the client got EOF');

        // The changed files took effect: debug lines while log_level was
        // debug, none after it went back to info.
        assert.ok(debugFrom > 0 && infoFrom > debugFrom);
        assert.ok(agent.count(/ hcmd debug: /, debugFrom) > 0, 'no debug line after log_level = debug');
        const lateDebug = agent.lines(/ hcmd debug: /, infoFrom);
        assert.deepEqual(lateDebug, [], 'debug lines after log_level = info');

        // The unchanged connection: one control channel the whole time.
        assert.equal(agent.count(/hcmd info: hc: connected to /), 1, `hc connected more than once:\n${agent.lines(/ hc: /).join('\n')}`);
        assert.deepEqual(agent.lines(/ hc: control channel down| hc: relay closed/), [], 'hc control channel');
        const hcLis = relayLines(relay, /listener \S+ on hc connected from/);
        assert.equal(hcLis.length, 1, `the relay saw hc listeners:\n${hcLis.join('\n')}`);
        const lid = hcLis[0].match(/listener (\S+) on hc/)[1];
        assert.deepEqual(relayLines(relay, new RegExp(`listener ${reEsc(lid)} disconnected`)), [], 'hc listener disconnected at the relay');
        // [connection x] came and went twice.
        assert.equal(agent.count(/hcmd info: x: connected to /), 2, 'x connections');
        assert.equal(relayLines(relay, /listener \S+ on x connected from/).length, 2, 'x listeners at the relay');
        await until(() => relayLines(relay, /listener \S+ disconnected/).length >= 2, T(5000), 'the relay to see both x listeners go');
        // The forward still takes new clients.
        const r = await tcpEcho(f.addr, f.port, Buffer.from('after 20 SIGHUPs'));
        assert.equal(r.data.toString(), 'after 20 SIGHUPs');
        const tl = agent.tunnels().filter((t) => t.name === 'hc');
        assert.equal(tl.length, 2, `tunnel lines:\n${tl.map((t) => t.line).join('\n')}`);
        assert.equal(tl[0].toEndpoint, TOTAL, tl[0].line);
        assert.equal(tl[0].toSender, TOTAL, tl[0].line);
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    gate.open();
    await ep.close();
    await echo.close();
  }
});

test('1b. a file hcmd refuses when applying it (unreadable ca_file) changes nothing: not even log_level', { timeout: T(30000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: { rules: [], hcs: [hcEntity('hc')] } }, async (ctl, relay) => {
      const bind = await freePort();
      const opts = {
        relay,
        name: 'hcmd',
        connections: [{ name: 'hc', hc: 'hc', rule: 'hc/listen', endpoint: `127.0.0.1:${echo.port}` }],
        forwards: [{ name: 'hc-f', hc: 'hc', rule: 'hc/send', bind: `127.0.0.1:${bind}` }],
      };
      await withFwdAgents([opts], async (agent) => {
        // The new file parses, but its ca_file cannot be read; it also asks
        // for log_level = debug.
        agent.settings = { ...agent.settings, ca_file: '/nonexistent/hcmd-ops/ca.pem', log_level: 'debug' };
        agent.writeConfig();
        const mark = agent.mark();
        agent.proc.kill('SIGHUP');
        const m = await agent.waitForLog(/hcmd error: SIGHUP: .*; the running configuration stays\n/, T(3000), mark);
        assert.match(m[0], /nonexistent/);
        // A tunnel: at log_level = info it logs no debug line.
        const r = await tcpEcho('127.0.0.1', bind, Buffer.from('after the refused reload'));
        assert.equal(r.data.toString(), 'after the refused reload', 'the old ca_file still in use');
        await sleep(100);
        const dbg = agent.lines(/ hcmd debug: /, mark);
        assert.deepEqual(dbg.slice(0, 5), [], `the refused file's log_level = debug was applied (${dbg.length} debug lines)`);
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, keysOf(ctl.entities));
      });
    });
  } finally {
    await echo.close();
  }
});

// --------------------------------------------------------------- test 3 ----

async function echoOver(sender, text) {
  const before = sender.received;
  await sender.send(Buffer.from(text));
  await sender.waitBytes(before + Buffer.byteLength(text), T(5000));
  return sender.data().subarray(before).toString();
}

test('3. hcrelay SIGHUP: removing an unrelated hybrid connection closes only its listener (1001), live tunnels go on; an invalid relay.ini logs FILE:LINE and changes nothing', { timeout: T(60000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: { rules: [], hcs: [hcEntity('keep'), hcEntity('gone')] } }, async (ctl, relay) => {
      const opts = {
        relay,
        name: 'hcmd',
        settings: { retry_max: 1 },
        connections: ['keep', 'gone'].map((n) => ({ name: n, hc: n, rule: `${n}/listen`, endpoint: `127.0.0.1:${echo.port}` })),
      };
      await withFwdAgents([opts], async (agent) => {
        const keepSender = await openSender(relay, 'keep', { rule: 'keep/send' });
        const goneSender = await openSender(relay, 'gone', { rule: 'gone/send' });
        assert.equal(await echoOver(keepSender, 'keep-1;'), 'keep-1;');
        assert.equal(await echoOver(goneSender, 'gone-1;'), 'gone-1;');
        const keepLid = relay.stderr().match(/listener (\S+) on keep connected/)[1];
        const oldSendKey = relay.key('keep/send');

        // Remove [hybrid-connection gone] and reload.
        const amark = agent.mark();
        ctl.rewrite({ entities: { rules: [], hcs: ctl.entities.hcs.filter((h) => h.name !== 'gone') } });
        const rmark = await ctl.hup();
        await relay.waitForLog(/reload: hybrid connection gone removed: closing its 1 listeners/, T(3000), rmark);
        const closed = await agent.waitForLog(/hcmd warning: gone: relay closed the control channel \((\d+) ([^)]*)\)/, T(5000), amark);
        assert.equal(closed[1], '1001', closed[0]);
        assert.match(closed[2], /hybrid connection removed/);
        await agent.waitForLog(/hcmd warning: gone: control channel down/, T(5000), amark);
        // hcmd tries again and is told the hybrid connection is gone.
        await agent.waitForLog(/gone: control channel down: relay answered 404/, T(10000), amark);

        // keep: same control channel, the live tunnel goes on, new ones work.
        assert.deepEqual(agent.lines(/ keep: control channel down| keep: relay closed/), [], 'keep control channel');
        assert.deepEqual(relayLines(relay, new RegExp(`listener ${reEsc(keepLid)} disconnected`)), [], 'keep listener at the relay');
        assert.equal(await echoOver(keepSender, 'keep-2;'), 'keep-2;', 'live tunnel on keep after the reload');
        // The tunnel that was live on the removed connection is left alone too.
        assert.equal(await echoOver(goneSender, 'gone-2;'), 'gone-2;', 'live tunnel on gone after the reload');
        const fresh = await openSender(relay, 'keep', { rule: 'keep/send' });
        assert.equal(await echoOver(fresh, 'fresh;'), 'fresh;');
        fresh.close();
        await fresh.waitClose();

        // An invalid relay.ini: it would drop keep and change its send key.
        const good = ctl.iniText();
        const newKey = require('node:crypto').randomBytes(32).toString('base64');
        const badKey = 'has;a;semicolon-0123456789abcdef';
        let text = good.replace(oldSendKey, newKey).replace(/\[hybrid-connection keep\][\s\S]*$/, '') + '\nthis is not a setting\n[rule keepless]\nrights = Listen\nprimary_key = ' + badKey + '\n';
        ctl.writeRaw(text);
        const bmark = await ctl.hup({ ok: false });
        const l1 = lineOf(text, 'this is not a setting');
        const l2 = lineOf(text, 'primary_key = ' + badKey);
        await relay.waitForLog(new RegExp(`hcrelay error: ${reEsc(ctl.iniFile)}:${l1}: .*expected 'key = value'`), T(2000), bmark);
        await relay.waitForLog(new RegExp(`hcrelay error: ${reEsc(ctl.iniFile)}:${l2}: primary_key: `), T(2000), bmark);
        assert.equal(relayLines(relay, /configuration reloaded/, bmark).length, 0, 'the invalid file was applied');
        await sleep(300);
        assert.deepEqual(relayLines(relay, /disconnected|removed/, bmark), [], 'the invalid file closed something');
        assert.equal(await echoOver(keepSender, 'keep-3;'), 'keep-3;', 'live tunnel after the invalid reload');
        // The old key still works; the key in the invalid file does not.
        const again = await openSender(relay, 'keep', { rule: 'keep/send' });
        assert.equal(await echoOver(again, 'old key;'), 'old key;');
        again.close();
        await again.waitClose();
        relay.keys['keep/send'] = { primary: newKey };
        const refused = await openSender(relay, 'keep', { rule: 'keep/send' }).then(
          (s) => (s.terminate(), 'opened'),
          (e) => e.result && e.result.status,
        );
        relay.keys['keep/send'] = { primary: oldSendKey };
        assert.equal(refused, 401, 'a sender with the key from the invalid file');
        assert.deepEqual(agent.lines(/ keep: control channel down/), [], 'keep control channel at the end');
        for (const s of [keepSender, goneSender]) {
          s.close();
          await s.waitClose();
        }
        fs.writeFileSync(ctl.iniFile, good); // for the record; not reloaded
        assertNoSecrets({ hcmd: agent.stderr(), hcrelay: relay.stderr() }, [...keysOf(ctl.entities), newKey, badKey, oldSendKey]);
      });
    });
  } finally {
    await echo.close();
  }
});

test('3b. hcrelay: a hybrid connection removed by one SIGHUP stays removed through later SIGHUPs, and hcrelay still exits 0', { timeout: T(40000) }, async () => {
  const echo = await echoServer();
  try {
    await withRelayCtl({ entities: { rules: [], hcs: [hcEntity('keep'), hcEntity('gone')] } }, async (ctl, relay) => {
      const opts = {
        relay,
        name: 'hcmd',
        settings: { retry_max: 1 },
        connections: ['keep', 'gone'].map((n) => ({ name: n, hc: n, rule: `${n}/listen`, endpoint: `127.0.0.1:${echo.port}` })),
      };
      await withFwdAgents([opts], async (agent) => {
        ctl.rewrite({ entities: { rules: [], hcs: ctl.entities.hcs.filter((h) => h.name !== 'gone') } });
        const m1 = await ctl.hup();
        await relay.waitForLog(/reload: hybrid connection gone removed: closing its 1 listeners/, T(3000), m1);
        await agent.waitForLog(/gone: control channel down: relay answered 404/, T(10000));
        // Two more reloads of the same (valid) file: nothing is removed again.
        const m2 = await ctl.hup();
        await ctl.hup();
        await sleep(200);
        const again = relayLines(relay, /reload: hybrid connection \S+ removed/, m2);
        assert.deepEqual(again, [], 'a later SIGHUP removed the same hybrid connection again');
        const s = await openSender(relay, 'keep', { rule: 'keep/send' });
        assert.equal(await echoOver(s, 'keep after 3 reloads'), 'keep after 3 reloads');
        s.close();
        await s.waitClose();
      });
      // withRelayCtl: hcrelay must exit 0 on SIGTERM, with no sanitizer report.
    });
  } finally {
    await echo.close();
  }
});
