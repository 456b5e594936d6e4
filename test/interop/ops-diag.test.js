'use strict';
// Operations (issue 5):
//   7. `hcmd test` names the step that fails: a dead endpoint (endpoint
//      TCP, connection refused), a wrong key (listen authorization, 401),
//      an untrusted certificate (namespace TCP+TLS, certificate
//      verification); all ok, exit 0, with a running listener and forward
//      (round trip ok).
//   8. --strict: a config readable by others is refused with one line;
//      without --strict hcmd warns and runs.
// No key and no "sig=" in any output (9).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { freePort, makeCerts, mkTempDir, rmTempDir, newKey } = require('./lib/relay');
const { cleanupAll, T, connectionString } = require('./lib/agent');
const { closeAll, echoServer } = require('./lib/endpoints');
const { withFwdAgents, runHcmd } = require('./lib/forward');
const { RelayCtl, LooseAgent, assertNoSecrets, keysOf, reEsc, killAllProcs } = require('./lib/ops');

let ctl;
let relay;
let echo;
let dir;

before(async () => {
  dir = mkTempDir('hcmd-ops-diag-');
  echo = await echoServer();
  ctl = new RelayCtl({
    entities: {
      rules: [],
      hcs: [
        {
          name: 'dg',
          rules: [
            { name: 'listen', rights: 'Listen' },
            { name: 'send', rights: 'Send' },
          ],
        },
      ],
    },
  });
  relay = await ctl.start();
}, { timeout: T(30000) });

after(async () => {
  await cleanupAll();
  await closeAll();
  await killAllProcs();
  if (ctl) {
    await ctl.stop();
    ctl.cleanup();
  }
  rmTempDir(dir);
});

let nfile = 0;
function writeIni({ caFile = relay.caFile, key, endpoint }) {
  const f = path.join(dir, `diag-${++nfile}.ini`);
  const text = `[hcmd]\nca_file = ${caFile}\ncontrol_socket = ${path.join(dir, 'hcmd.sock')}\n\n[connection dg]\nconnection_string = ${connectionString(relay, 'dg', 'dg/listen', key)}\nendpoint = ${endpoint}\n`;
  fs.writeFileSync(f, text, { mode: 0o600 });
  return f;
}

// Runs `hcmd test ARGS`; resolves { code, out (stdout), err, lines }.
async function hcmdTest(args) {
  const r = await runHcmd(['test', ...args]);
  assert.equal(r.timedOut, false, `hcmd test ${args.join(' ')} did not finish:\n${r.stdout}${r.stderr}`);
  const out = r.stdout.toString();
  return { code: r.code, out, err: r.stderr, steps: out.split('\n').filter((l) => /^  (ok|FAIL|skip) /.test(l)) };
}

// The step lines: all but the last are ok, the last is `FAIL STEP`.
function assertFailsAt(r, step, detailRe) {
  const what = `hcmd test output:\n${r.out}${r.err}`;
  assert.equal(r.code, 1, `exit status\n${what}`);
  const last = r.steps[r.steps.length - 1];
  console.log(`# ${last}`);
  assert.match(last || '', new RegExp(`^  FAIL  ${reEsc(step)}\\s+.*${detailRe.source}`), what);
  assert.deepEqual(r.steps.slice(0, -1).filter((l) => !/^  ok /.test(l)), [], what);
  assert.match(r.out, /result: FAILED/, what);
  assert.doesNotMatch(r.err, /AddressSanitizer|LeakSanitizer|runtime error/, what);
}

const secrets = () => [...keysOf(ctl.entities)];

test('7a. hcmd test: a dead endpoint fails at "endpoint TCP" (connection refused), by name and as HOST:PORT', { timeout: T(30000) }, async () => {
  const dead = await freePort();
  const r = await hcmdTest(['dg', '-c', writeIni({ endpoint: `127.0.0.1:${dead}` })]);
  assertFailsAt(r, 'endpoint TCP', new RegExp(`127\\.0\\.0\\.1:${dead}: connection refused`));
  assert.equal(r.steps.length, 2, `steps:\n${r.out}`); // endpoint DNS ok, endpoint TCP FAIL
  const r2 = await hcmdTest([`127.0.0.1:${dead}`]);
  assertFailsAt(r2, 'endpoint TCP', /connection refused/);
  assertNoSecrets({ 'hcmd test': r.out + r.err + r2.out + r2.err }, secrets());
});

test('7b. hcmd test: a wrong key fails at "listen authorization" with 401', { timeout: T(30000) }, async () => {
  const key = newKey();
  const r = await hcmdTest(['dg', '-c', writeIni({ key, endpoint: `127.0.0.1:${echo.port}` })]);
  assertFailsAt(r, 'listen authorization', /\b401\b/);
  for (const s of ['endpoint TCP', 'namespace DNS', 'namespace TCP+TLS']) assert.match(r.out, new RegExp(`^  ok    ${reEsc(s)} `, 'm'), r.out);
  assertNoSecrets({ 'hcmd test': r.out + r.err }, [...secrets(), key]);
});

test('7c. hcmd test: a certificate from another CA fails at "namespace TCP+TLS" (certificate verification)', { timeout: T(30000) }, async () => {
  const other = makeCerts(mkTempDir('hcmd-ops-otherca-'));
  try {
    const r = await hcmdTest(['dg', '-c', writeIni({ caFile: other.caFile, endpoint: `127.0.0.1:${echo.port}` })]);
    assertFailsAt(r, 'namespace TCP+TLS', /certificate verification failed/);
    assertNoSecrets({ 'hcmd test': r.out + r.err }, secrets());
  } finally {
    rmTempDir(path.dirname(other.caFile));
  }
});

test('7d. hcmd test: all ok (exit 0) with a correct config and a running listener and forward: round trip ok', { timeout: T(40000) }, async () => {
  const opts = {
    relay,
    name: 'hcmd',
    connections: [{ name: 'dg', hc: 'dg', rule: 'dg/listen', endpoint: `127.0.0.1:${echo.port}` }],
    forwards: [{ name: 'dg-f', hc: 'dg', rule: 'dg/send', bind: `127.0.0.1:${await freePort()}` }],
  };
  await withFwdAgents([opts], async (agent) => {
    const mark = agent.mark();
    const r = await hcmdTest(['dg', '-c', agent.iniFile]);
    const what = `hcmd test output:\n${r.out}${r.err}`;
    assert.equal(r.code, 0, what);
    const names = r.steps.map((l) => l.slice(8, 30).trim());
    assert.deepEqual(names, ['endpoint DNS', 'endpoint TCP', 'namespace DNS', 'namespace TCP+TLS', 'listen authorization', 'round trip'], what);
    assert.deepEqual(r.steps.filter((l) => !/^  ok /.test(l)), [], what);
    assert.match(r.out, /^  ok    round trip .*forward dg-f/m, what);
    assert.match(r.out, /result: all checks passed/, what);
    console.log(r.out.replace(/^/gm, '# '));
    // The round trip was a real tunnel through the running listener.
    await agent.waitForLog(/hcmd info: tunnel dg id=/, T(3000), mark);
    assertNoSecrets({ 'hcmd test': r.out + r.err, hcmd: agent.stderr() }, secrets());
  });
});

test('8. --strict: a config with mode 0644 is refused with one error line; without --strict hcmd warns and runs', { timeout: T(30000) }, async () => {
  const a = new LooseAgent({ relay, name: 'hcmd-0644', connections: [{ name: 'dg', hc: 'dg', rule: 'dg/listen', endpoint: `127.0.0.1:${echo.port}` }] });
  try {
    a.writeConfig();
    const ini = fs.realpathSync(a.iniFile);
    assert.equal(fs.statSync(ini).mode & 0o777, 0o644);
    const s = await runHcmd(['-c', ini, '--strict']);
    assert.equal(s.timedOut, false, `hcmd --strict kept running:\n${s.stderr}`);
    assert.notEqual(s.code, 0, `hcmd --strict exit status:\n${s.stderr}`);
    const lines = s.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `hcmd --strict stderr:\n${s.stderr}`);
    assert.match(lines[0], new RegExp(`hcmd error: ${reEsc(ini)} is readable by group or others \\(mode 644\\).*--strict.*chmod 600`));
    assert.doesNotMatch(s.stderr, /listening|connected|starting/);
    // The same file with mode 0600 passes --strict.
    fs.chmodSync(ini, 0o600);
    const ok = await runHcmd(['-c', ini, '--strict', '--check']);
    assert.equal(ok.code, 0, `--strict --check with mode 0600:\n${ok.stdout}${ok.stderr}`);
    // Without --strict: a warning, then it runs.
    await a.start();
    const w = a.lines(/ hcmd warning: .*readable by group or others/);
    assert.equal(w.length, 1, a.tail(10));
    assert.match(w[0], new RegExp(`${reEsc(ini)} is readable by group or others \\(mode 644\\) and holds keys: chmod 600`));
    const problems = await a.stopAndCheck();
    assert.deepEqual(problems, []);
    assertNoSecrets({ strict: s.stderr, hcmd: a.stderr() }, secrets());
  } finally {
    await a.cleanup();
  }
});

test('hcrelay survived, no sanitizer report, exits 0; no secret in its log', { timeout: T(20000) }, async () => {
  assert.ok(relay.alive(), `hcrelay died: ${JSON.stringify(relay.exit)}`);
  const problems = await ctl.stop();
  assert.deepEqual(problems, [], relay.tail(30));
  assertNoSecrets({ hcrelay: relay.stderr() }, secrets());
});
