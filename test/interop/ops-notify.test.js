'use strict';
// Operations (issue 5), test 5: the systemd notify protocol and journald
// log lines. hcrelay and hcmd run with NOTIFY_SOCKET (a datagram socket
// read by a small python3 program), WATCHDOG_USEC = 400000 and
// JOURNAL_STREAM set:
//   READY=1 with STATUS=, WATCHDOG=1 at least 3 times a second,
//   RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM;
//   every stderr line starts with its priority: <3> error, <4> warning,
//   <6> info, and no timestamp.
// No key and no "sig=" in any log (9).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { makeCerts, writeConfig, mkTempDir, rmTempDir, sleep, withTimeout } = require('./lib/relay');
const { T, connectionString } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { HCMD, HCRELAY, Proc, NotifySink, withRelayCtl, assertNoSecrets, keysOf, lineOf, reEsc, killAllProcs } = require('./lib/ops');

after(async () => {
  await closeAll();
  await killAllProcs();
});

const PRIORITY = { error: 3, warning: 4, info: 6, debug: 7 };

// Every line is `<N>LEVEL: text` with N the journald priority of LEVEL;
// lines with each of `want` (levels) are there.
function assertJournalLines(name, text, want) {
  const lines = text.split('\n').filter((l) => l !== '');
  assert.ok(lines.length > 0, `${name}: no stderr`);
  const bad = lines.filter((l) => {
    const m = l.match(/^<(\d)>(\w+): /);
    return !m || PRIORITY[m[2]] !== Number(m[1]);
  });
  assert.deepEqual(bad, [], `${name}: stderr lines without a matching <priority> prefix`);
  for (const lv of want) assert.ok(lines.some((l) => l.startsWith(`<${PRIORITY[lv]}>${lv}: `)), `${name}: no <${PRIORITY[lv]}> ${lv} line:\n${text}`);
}

// The notify steps both programs share, after start: READY, watchdog,
// SIGHUP (valid file written by writeGood), SIGHUP (invalid file written by
// writeBad; resolves its FILE:LINE), SIGTERM. Returns a summary.
async function notifyCycle(name, proc, sink, { status, writeGood, writeBad, goodLog, badLogRe }) {
  const ready = await sink.waitFor((t) => /^READY=1$/m.test(t) && /^STATUS=\S/m.test(t), 'READY=1 with STATUS=', T(5000));
  assert.match(ready.text, new RegExp(`^STATUS=${status}$`, 'm'), `${name}: READY datagram`);

  // Watchdog: WATCHDOG_USEC = 400000, so one every 200 ms.
  const w0 = sink.mark();
  const t0 = Date.now();
  await sleep(1000);
  const wd = sink.msgs.slice(w0).filter((m) => m.text === 'WATCHDOG=1' && m.at - t0 <= 1000).length;
  assert.ok(wd >= 3, `${name}: ${wd} WATCHDOG=1 in 1 s (WATCHDOG_USEC = 400000): ${JSON.stringify(sink.texts(w0))}`);

  // SIGHUP with a valid file: RELOADING=1, then READY=1.
  writeGood();
  const h0 = sink.mark();
  const l0 = proc.mark();
  proc.kill('SIGHUP');
  await proc.waitForLog(goodLog, T(5000), l0);
  const rel = await sink.waitFor((t) => /^RELOADING=1$/m.test(t), 'RELOADING=1', T(3000), h0);
  const rdy = await sink.waitFor((t) => /^READY=1$/m.test(t), 'READY=1 after RELOADING=1', T(3000), rel.index + 1);
  assert.ok(rdy.index > rel.index);

  // SIGHUP with an invalid file: errors, the process goes on.
  const badLine = writeBad();
  const l1 = proc.mark();
  proc.kill('SIGHUP');
  await proc.waitForLog(badLogRe(badLine), T(5000), l1);
  await sleep(300);
  assert.ok(proc.alive(), `${name} exited after an invalid file`);
  // The watchdog goes on after the reloads.
  const w1 = sink.mark();
  await sink.waitFor((t) => t === 'WATCHDOG=1', 'WATCHDOG=1 after the reloads', T(2000), w1);

  // SIGTERM: STOPPING=1, exit 0.
  const s0 = sink.mark();
  proc.kill('SIGTERM');
  await sink.waitFor((t) => /^STOPPING=1$/m.test(t), 'STOPPING=1', T(5000), s0);
  const e = await withTimeout(proc.exited, T(10000), `${name} exit after SIGTERM`);
  assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `${name} exit status\n${proc.tail()}`);
  assert.doesNotMatch(proc.text, /AddressSanitizer|LeakSanitizer|runtime error/, `${name}: sanitizer output`);
  return { wd, datagrams: sink.texts() };
}

test('5a. hcrelay: READY=1 with STATUS=, WATCHDOG=1 >= 3/s, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM; JOURNAL_STREAM: <6> info, <4> warning, <3> error lines', { timeout: T(40000) }, async () => {
  const dir = mkTempDir('hcmd-ops-notify-');
  const sink = await NotifySink.open(dir);
  let proc;
  try {
    const certs = makeCerts(dir);
    const entities = { rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send', secondary: true }], hcs: [{ name: 'hc', rules: [{ name: 'listen', rights: 'Listen' }] }] };
    const { iniFile, keys } = writeConfig(dir, certs, { relay: { log_level: 'info' }, ...entities });
    const fixed = {
      rules: [{ ...entities.rules[0], primary: keys.RootManageSharedAccessKey.primary, secondary: keys.RootManageSharedAccessKey.secondary }],
      hcs: [{ name: 'hc', rules: [{ name: 'listen', rights: 'Listen', primary: keys['hc/listen'].primary }] }],
    };
    const env = { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '400000', JOURNAL_STREAM: '8:123456' };
    proc = new Proc(HCRELAY, ['-c', iniFile], { env, cwd: dir, name: 'hcrelay', dropEnv: ['WATCHDOG_PID'] });
    await proc.waitForLog(/^<6>info: hcrelay \S+ listening on 127\.0\.0\.1:\d+/m, T(10000));
    const r = await notifyCycle('hcrelay', proc, sink, {
      status: 'listening',
      // A new listen address: a warning (it takes effect at the next start).
      writeGood: () => writeConfig(dir, certs, { relay: { log_level: 'info', listen: '127.0.0.1:1' }, ...fixed }),
      goodLog: /^<4>warning: reload: listen, cert_file and key_file take effect at the next start\n(.*\n)*<6>info: SIGHUP: configuration reloaded/m,
      writeBad: () => {
        const text = fs.readFileSync(iniFile, 'utf8') + 'not a setting\n';
        fs.writeFileSync(iniFile, text);
        return lineOf(text, 'not a setting');
      },
      badLogRe: (line) => new RegExp(`^<3>error: SIGHUP: .* has errors; the running configuration stays\\n<3>error: ${reEsc(iniFile)}:${line}: `, 'm'),
    });
    console.log(`# hcrelay: ${r.wd} watchdog pings in 1 s; datagrams: ${JSON.stringify([...new Set(r.datagrams)])}`);
    assertJournalLines('hcrelay', proc.text, ['info', 'warning', 'error']);
    assertNoSecrets({ hcrelay: proc.text }, keysOf(fixed));
  } finally {
    if (proc) await proc.stop();
    await sink.close();
    rmTempDir(dir);
  }
});

test('5b. hcmd: READY=1 with STATUS=, WATCHDOG=1 >= 3/s, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM; JOURNAL_STREAM: <6> info, <4> warning, <3> error lines', { timeout: T(40000) }, async () => {
  const echo = await echoServer();
  const dir = mkTempDir('hcmd-ops-notify-');
  const sink = await NotifySink.open(dir);
  let proc;
  try {
    await withRelayCtl({ entities: { rules: [], hcs: [{ name: 'nt', rules: [{ name: 'listen', rights: 'Listen' }] }] } }, async (ctl, relay) => {
      const ini = path.join(dir, 'hcm.ini');
      const text = (extra = '') =>
        `[hcmd]\nca_file = ${relay.caFile}\ncontrol_socket = ${path.join(dir, 'hcmd.sock')}\n${extra}` +
        `\n[connection nt]\nconnection_string = ${connectionString(relay, 'nt', 'nt/listen')}\nendpoint = 127.0.0.1:${echo.port}\n`;
      // Mode 0644: hcmd warns about it (a <4> line).
      fs.writeFileSync(ini, text());
      fs.chmodSync(ini, 0o644);
      const env = { NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '400000', JOURNAL_STREAM: '8:123456' };
      proc = new Proc(HCMD, ['-c', ini], { env, cwd: dir, name: 'hcmd', dropEnv: ['WATCHDOG_PID'] });
      await proc.waitForLog(/^<4>warning: \S+ is readable by group or others/m, T(10000));
      await proc.waitForLog(/^<6>info: nt: connected to \S+ as listener/m, T(10000));
      const r = await notifyCycle('hcmd', proc, sink, {
        status: 'running',
        writeGood: () => fs.writeFileSync(ini, text('retry_max = 5\n')),
        goodLog: /^<6>info: SIGHUP: configuration reloaded/m,
        writeBad: () => {
          const t = text('retry_max = soon\n');
          fs.writeFileSync(ini, t);
          return lineOf(t, 'retry_max');
        },
        badLogRe: (line) => new RegExp(`^<3>error: SIGHUP: .* has errors; the running configuration stays\\n<3>error: ${reEsc(fs.realpathSync(ini))}:${line}: retry_max`, 'm'),
      });
      console.log(`# hcmd: ${r.wd} watchdog pings in 1 s; datagrams: ${JSON.stringify([...new Set(r.datagrams)])}`);
      assert.match(proc.text, /^<6>info: stopped$/m);
      assertJournalLines('hcmd', proc.text, ['info', 'warning', 'error']);
      assertNoSecrets({ hcmd: proc.text, hcrelay: relay.stderr() }, keysOf(ctl.entities));
    });
  } finally {
    if (proc) await proc.stop();
    await sink.close();
    await echo.close();
    rmTempDir(dir);
  }
});

test('5c. with JOURNAL_STREAM set, configuration errors at start also carry a priority prefix (<3>), for hcmd and hcrelay', { timeout: T(30000) }, async () => {
  const dir = mkTempDir('hcmd-ops-journal-');
  try {
    const env = { JOURNAL_STREAM: '8:123456' };
    const hIni = path.join(dir, 'hcm.ini');
    fs.writeFileSync(hIni, '[hcmd]\nlog_level = info\nnot a setting\n', { mode: 0o600 });
    const rIni = path.join(dir, 'relay.ini');
    fs.writeFileSync(rIni, '[relay]\nlisten = 127.0.0.1:0\nnot a setting\n', { mode: 0o600 });
    const out = {};
    for (const [name, cmd, ini] of [
      ['hcmd', HCMD, hIni],
      ['hcrelay', HCRELAY, rIni],
    ]) {
      const p = new Proc(cmd, ['-c', ini], { env, cwd: dir, name });
      const e = await withTimeout(p.exited, T(10000), `${name} exit with a bad config`);
      assert.notEqual(e.code, 0, `${name} exit status with a bad config`);
      assert.match(p.text, /:3: /, `${name} names the bad line:\n${p.text}`);
      out[name] = p.text;
    }
    const bad = Object.entries(out).flatMap(([name, text]) =>
      text
        .split('\n')
        .filter((l) => l !== '' && !/^<3>/.test(l))
        .map((l) => `${name}: ${l}`),
    );
    assert.deepEqual(bad, [], 'stderr lines without <3> (journald files them as info)');
  } finally {
    rmTempDir(dir);
  }
});
