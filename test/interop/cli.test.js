'use strict';
// hcmd's command line beside the daemon: list, show, add, remove (src/cli.c).
//
// Against a live hcmd (its own control_socket in a temp dir) and a live
// hcrelay: add -> the daemon reloads and the new connection is Connected in
// `list`; show prints namespace:port and the key name, never the key;
// remove -> it leaves `list` and the relay sees that listener disconnect;
// the file is byte-identical after add + remove. The same without a
// daemon, and every refusal (duplicate name, no EntityPath, bad endpoint)
// leaves the file untouched. Loopback only; every wait is bounded.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startRelay, T, sleep, mkTempDir, rmTempDir, freePort, withTimeout, SANITIZER_RE } = require('./lib/relay');
const { HCMD, connectionString, cleanupAll } = require('./lib/agent');
const { FwdAgent } = require('./lib/forward');
const { logCtx, relayEpilogue } = require('./lib/suite');
const { saveOutput } = require('./lib/suitelog');

let relay;
const dirs = [];
// Every byte the CLI printed in this file; no key may ever be in it.
const printed = [];

before(async () => {
  relay = await startRelay();
}, { timeout: T(60000) });

after(async () => {
  await cleanupAll();
  for (const d of dirs) rmTempDir(d);
}, { timeout: T(30000) });

function tempDir() {
  const d = mkTempDir('hcmd-cli-');
  dirs.push(d);
  return d;
}

// Runs `hcmd ARGS` with a deadline. Resolves { code, signal, stdout, stderr }.
function hcmd(args, { input = null, ms = T(20000) } = {}) {
  const env = { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1' };
  delete env.JOURNAL_STREAM;
  return new Promise((resolve, reject) => {
    const p = spawn(HCMD, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`hcmd ${args.join(' ')}: no exit within ${ms} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, ms);
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      printed.push(stdout, stderr);
      saveOutput(`hcmd-${args[0] || ''}`, stdout + stderr);
      const r = { code, signal, stdout, stderr, args };
      if (SANITIZER_RE.test(stderr)) reject(new Error(`sanitizer report from hcmd ${args.join(' ')}:\n${stderr}`));
      else resolve(r);
    });
    if (input !== null) p.stdin.end(input);
    else p.stdin.end();
  });
}

const show = (r) => `\n$ hcmd ${r.args.join(' ')}\nexit ${r.code}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;

// A failure: non-zero exit, exactly one line on stderr, "hcmd: ...".
function assertRefused(r, re) {
  assert.notEqual(r.code, 0, `expected a failure${show(r)}`);
  assert.equal(r.signal, null, show(r));
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one stderr line${show(r)}`);
  assert.match(lines[0], /^hcmd: /, show(r));
  if (re) assert.match(lines[0], re, show(r));
}

// `hcmd list` as rows of { NAME, NAMESPACE, ... } cut at the header's
// column starts; also the lines before the header.
function parseList(text) {
  const lines = text.split('\n');
  const h = lines.findIndex((l) => /^NAME\s+NAMESPACE\s+ENTITY\s+ENDPOINT\s+STATUS\s+TUNNELS\s+SINCE$/.test(l));
  assert.ok(h >= 0, `no table header in:\n${text}`);
  const cols = [];
  for (const m of lines[h].matchAll(/\S+/g)) cols.push({ name: m[0], at: m.index });
  const rows = [];
  for (const l of lines.slice(h + 1)) {
    if (l === '' || l.startsWith('*')) continue;
    const row = {};
    cols.forEach((c, i) => {
      row[c.name] = l.slice(c.at, i + 1 < cols.length ? cols[i + 1].at : undefined).trim();
    });
    rows.push(row);
  }
  return { before: lines.slice(0, h), rows };
}

// Polls `hcmd list` until pred(rows) holds. Resolves the last parse.
async function waitList(args, pred, what, ms = T(10000)) {
  const t0 = Date.now();
  let last;
  for (;;) {
    const r = await hcmd(['list', ...args]);
    assert.equal(r.code, 0, show(r));
    last = parseList(r.stdout);
    if (pred(last.rows)) return last;
    if (Date.now() - t0 > ms) assert.fail(`${what} not seen within ${ms} ms; last list:\n${r.stdout}`);
    await sleep(100);
  }
}

const mode = (f) => fs.statSync(f).mode & 0o777;

// A file with comments everywhere, a [forward] and odd spacing: what an
// editor must keep byte for byte.
function handWritten(dir, cs1, csFwd, bindPort) {
  return [
    '; hcm.ini written by hand',
    '',
    '[hcmd]',
    '; the socket of this test',
    `control_socket = ${path.join(dir, 'hcmd.sock')}`,
    `ca_file = ${relay.caFile}`,
    'log_level   =   info   ; spaces kept',
    '',
    '; the first connection',
    '[connection first]',
    `connection_string = ${cs1}`,
    'endpoint = 127.0.0.1:9',
    '; a comment at its end',
    '',
    '',
    '# the forward',
    '[forward out]',
    `connection_string = ${csFwd}`,
    `bind = 127.0.0.1:${bindPort}`,
    '; last line, no newline after it',
  ].join('\n');
}

// ----------------------------------------------------------------- help ----

test('--help for list, show, add and remove: usage on stdout, exit 0', { timeout: T(20000) }, async () => {
  for (const cmd of ['list', 'show', 'add', 'remove']) {
    for (const flag of ['--help', '-h']) {
      const r = await hcmd([cmd, flag]);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, new RegExp(`^usage: hcmd ${cmd}\\b`), show(r));
      assert.match(r.stdout, /-c FILE/, show(r));
      assert.equal(r.stderr, '', show(r));
    }
  }
  const add = await hcmd(['add', '--help']);
  assert.match(add.stdout, /created when missing: mode 0600/, show(add));
  const list = await hcmd(['list', '--help']);
  assert.match(list.stdout, /hcmd is not running/, show(list));
});

test('usage errors: one line on stderr, exit 2', { timeout: T(20000) }, async () => {
  const cases = [
    [['add'], /--connection-string is missing/],
    [['add', '--bogus'], /unknown option '--bogus'/],
    [['add', '--name'], /--name needs a value/],
    [['remove'], /NAME is missing/],
    [['show'], /NAME is missing/],
    [['list', 'extra'], /unexpected argument 'extra'/],
    [['show', 'a', 'b'], /unexpected argument 'b'/],
  ];
  for (const [args, re] of cases) {
    const r = await hcmd(args);
    assert.equal(r.code, 2, show(r));
    assertRefused(r, re);
    assert.equal(r.stdout, '', show(r));
  }
});

// ------------------------------------------------------------ no daemon ----

test('no daemon: add, list, show, remove edit the file and say hcmd is not running; add + remove is byte-identical', { timeout: T(60000) }, async () => {
  const dir = tempDir();
  const ini = path.join(dir, 'hcm.ini');
  const sock = path.join(dir, 'hcmd.sock');
  const text = handWritten(dir, connectionString(relay, 'other', 'RootManageSharedAccessKey'), connectionString(relay, 'other', 'nsSend'), 1);
  fs.writeFileSync(ini, text, { mode: 0o644 });
  fs.chmodSync(ini, 0o644);
  const key = relay.key('nsListen');
  const cs = connectionString(relay, 'hc', 'nsListen');

  let r = await hcmd(['list', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  let l = parseList(r.stdout);
  assert.deepEqual(l.before, [`hcmd is not running (no answer on ${sock})`], show(r));
  assert.deepEqual(
    l.rows.map((x) => [x.NAME, x.NAMESPACE, x.ENTITY, x.ENDPOINT, x.STATUS, x.TUNNELS, x.SINCE]),
    [
      ['first', `localhost:${relay.port}`, 'other', '127.0.0.1:9', '-', '-', '-'],
      ['out', `localhost:${relay.port}`, 'other', 'bind 127.0.0.1:1', '-', '-', '-'],
    ],
    show(r),
  );

  // The key on stdin ("-"): out of the process list.
  r = await hcmd(['add', '--connection-string', '-', '--endpoint', 'localhost:6379', '-c', ini], { input: cs + '\n' });
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^added \[connection hc\] to /m, show(r));
  assert.match(r.stdout, new RegExp(`hcmd is not running \\(no answer on ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\): the change applies at next start`), show(r));
  assert.equal(r.stderr, '', show(r));
  assert.equal(mode(ini), 0o600, 'mode after add');
  const added = fs.readFileSync(ini, 'utf8');
  assert.ok(added.startsWith(text + '\n'), 'the old text is a prefix of the new one');
  assert.equal(added.slice(text.length), `\n\n[connection hc]\nconnection_string = ${cs}\nendpoint = localhost:6379\n`);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['hcm.ini'], 'no temporary file left');

  r = await hcmd(['list', '-c', ini]);
  l = parseList(r.stdout);
  assert.deepEqual(l.rows.map((x) => x.NAME), ['first', 'out', 'hc'], show(r));
  assert.deepEqual(l.rows[2], { NAME: 'hc', NAMESPACE: `localhost:${relay.port}`, ENTITY: 'hc', ENDPOINT: 'localhost:6379', STATUS: '-', TUNNELS: '-', SINCE: '-' }, show(r));

  r = await hcmd(['show', 'hc', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^hcmd is not running \(no answer on /, show(r));
  assert.match(r.stdout, new RegExp(`^Namespace: +localhost:${relay.port}\\b`, 'm'), show(r));
  assert.match(r.stdout, /^Key name: +nsListen$/m, show(r));
  assert.match(r.stdout, /^Endpoint: +localhost:6379 \(from the config\)$/m, show(r));
  assert.match(r.stdout, /^Status: +- \(hcmd is not running\)$/m, show(r));
  assert.ok(!r.stdout.includes(key), 'show printed the key');

  r = await hcmd(['show', 'out', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^Bind: +127\.0\.0\.1:1$/m, show(r));
  assert.match(r.stdout, /^Key name: +nsSend$/m, show(r));

  r = await hcmd(['remove', 'hc', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^removed \[connection hc\] from /m, show(r));
  assert.match(r.stdout, /the change applies at next start/, show(r));
  // The file had no final newline; add gave it one, remove keeps it.
  assert.equal(fs.readFileSync(ini, 'utf8'), text + '\n', 'file after add + remove');

  // Once more with a final newline: now byte-identical to the original.
  fs.writeFileSync(ini, text + '\n');
  const orig = fs.readFileSync(ini);
  r = await hcmd(['add', '--connection-string', cs, '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /endpoint from the user metadata/, show(r));
  r = await hcmd(['remove', 'hc', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.ok(fs.readFileSync(ini).equals(orig), 'file after add + remove is not byte-identical');

  // remove takes a [forward] and its comment block, nothing else.
  r = await hcmd(['remove', 'out', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^removed \[forward out\] from /m, show(r));
  // The blank line before it that add would write goes too; one of two stays.
  assert.equal(fs.readFileSync(ini, 'utf8'), text.slice(0, text.indexOf('\n\n\n# the forward')) + '\n\n');

  // The last connection stays: hcmd would have nothing to do.
  r = await hcmd(['remove', 'first', '-c', ini]);
  assertRefused(r, /only connection/);
  assert.ok(!printed.join('').includes(key), 'the key was printed');
});

test('add creates a missing file (and folder) with mode 0600 that hcmd --check accepts', { timeout: T(30000) }, async () => {
  const dir = tempDir();
  const ini = path.join(dir, 'etc', 'hcm.ini');
  const cs = connectionString(relay, 'hc', 'nsListen');
  let r = await hcmd(['add', '--connection-string', cs, '--endpoint', '[::1]:5432', '--name', 'pg.v6', '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^created \[connection pg\.v6\] in /, show(r));
  assert.equal(mode(ini), 0o600);
  const t = fs.readFileSync(ini, 'utf8');
  assert.match(t, /^\[hcmd\]$/m);
  assert.match(t, /^\[connection pg\.v6\]\nconnection_string = .*\nendpoint = \[::1\]:5432\n$/m);
  r = await hcmd(['-c', ini, '--check']);
  assert.equal(r.code, 0, show(r));
  // NAME defaults to the EntityPath with other characters as '-'.
  r = await hcmd(['add', '--connection-string', connectionString(relay, 'a/b c', 'nsListen'), '-c', ini]);
  assert.equal(r.code, 0, show(r));
  assert.match(fs.readFileSync(ini, 'utf8'), /^\[connection a-b-c\]$/m);
});

test('refused: duplicate name, no EntityPath, bad --endpoint, bad name, unknown NAME; the file is untouched', { timeout: T(60000) }, async () => {
  const dir = tempDir();
  const ini = path.join(dir, 'hcm.ini');
  const text = handWritten(dir, connectionString(relay, 'other', 'RootManageSharedAccessKey'), connectionString(relay, 'other', 'nsSend'), 1) + '\n';
  fs.writeFileSync(ini, text, { mode: 0o600 });
  const before = fs.statSync(ini);
  const key = relay.key('nsListen');
  const cs = connectionString(relay, 'hc', 'nsListen');
  const noEntity = `Endpoint=sb://localhost:${relay.port}/;SharedAccessKeyName=nsListen;SharedAccessKey=${key}`;
  const cases = [
    [['add', '--connection-string', cs, '--name', 'first'], /the name first is already used by \[connection first\]/],
    [['add', '--connection-string', cs, '--name', 'out'], /already used by \[forward out\]/],
    [['add', '--connection-string', connectionString(relay, 'first', 'nsListen')], /already used/],
    [['add', '--connection-string', noEntity], /no EntityPath/],
    [['add', '--connection-string', `${cs};Bogus=1`], /bad connection string/],
    [['add', '--connection-string', `Endpoint=sb://localhost:1/;EntityPath=x`], /no SharedAccessKeyName/],
    [['add', '--connection-string', cs.replace(';EntityPath', '\n[hcmd]\n;EntityPath')], /control character/],
    [['add', '--connection-string', cs, '--name', 'bad name'], /--name 'bad name'/],
    [['add', '--connection-string', cs, '--name', 'x'.repeat(65)], /--name/],
    [['remove', 'nope'], /no \[connection nope\] or \[forward nope\]/],
    [['show', 'nope'], /no \[connection nope\] or \[forward nope\]/],
  ];
  for (const ep of ['nohost', 'host:0', 'host:65536', 'a b:1', ':80', 'h:1x', 'h:', '[::1:80', 'h:-1']) {
    cases.push([['add', '--connection-string', cs, '--endpoint', ep], /--endpoint .*expected HOST:PORT/]);
  }
  for (const [args, re] of cases) {
    const r = await hcmd([...args, '-c', ini]);
    assertRefused(r, re);
    assert.ok(!r.stderr.includes(key) && !r.stdout.includes(key), `the key was printed${show(r)}`);
  }
  assert.equal(fs.readFileSync(ini, 'utf8'), text, 'file changed');
  assert.equal(fs.statSync(ini).mtimeMs, before.mtimeMs, 'file rewritten');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['hcm.ini'], 'no temporary file left');
});

test('a file that would not load is not written: FILE:LINE errors name the real file', { timeout: T(30000) }, async () => {
  const dir = tempDir();
  const ini = path.join(dir, 'hcm.ini');
  const text = `[hcmd]\nmax_tunnels = lots\n\n[connection first]\nconnection_string = ${connectionString(relay, 'other', 'nsListen')}\n`;
  fs.writeFileSync(ini, text, { mode: 0o600 });
  const r = await hcmd(['add', '--connection-string', connectionString(relay, 'hc', 'nsListen'), '-c', ini]);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, new RegExp(`^${ini.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: max_tunnels`, 'm'), show(r));
  assert.match(r.stderr, /^hcmd: .* would not load with this change; nothing changed$/m, show(r));
  assert.ok(!r.stderr.includes('.hcm.ini.'), `temporary name in the errors${show(r)}`);
  assert.equal(fs.readFileSync(ini, 'utf8'), text);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['hcm.ini'], 'no temporary file left');
});

// ---------------------------------------------------------- live daemon ----

// An agent whose hcm.ini is handWritten() (comments, a forward, no final
// newline).
class HandAgent extends FwdAgent {
  constructor(opts) {
    super(opts);
    this.text = opts.text;
  }
  iniText() {
    return this.text;
  }
}

test('live: add -> reload -> Connected in list; show; remove -> gone, the relay sees the listener leave; file byte-identical', { timeout: T(90000) }, async () => {
  const dir = tempDir();
  const bindPort = await freePort();
  const text = handWritten(dir, connectionString(relay, 'other', 'RootManageSharedAccessKey'), connectionString(relay, 'other', 'nsSend'), bindPort) + '\n';
  const agent = new HandAgent({
    relay,
    dir,
    text,
    connections: [{ name: 'first', hc: 'other', rule: 'RootManageSharedAccessKey' }],
    forwards: [{ name: 'out', hc: 'other', rule: 'nsSend', bind: `127.0.0.1:${bindPort}` }],
  });
  const ini = agent.iniFile;
  const c = ['-c', ini];
  const key = relay.key('nsListen');
  const cs = connectionString(relay, 'hc', 'nsListen');
  let err = null;
  try {
    await agent.start();
    const orig = fs.readFileSync(ini);

    let l = await waitList(c, (rows) => rows.length === 2 && rows[0].STATUS === 'Connected', 'first Connected');
    assert.deepEqual(l.before, [], 'lines before the table with a daemon');
    assert.deepEqual(l.rows[1], { NAME: 'out', NAMESPACE: `localhost:${relay.port}`, ENTITY: 'other', ENDPOINT: `bind 127.0.0.1:${bindPort}`, STATUS: 'Listening', TUNNELS: '0', SINCE: '-' });
    assert.match(l.rows[0].SINCE, /^\d+s ago$/);
    assert.equal(l.rows[0].TUNNELS, '0');

    const amark = agent.mark();
    const rmark = relay.stderr().length;
    let r = await hcmd(['add', '--connection-string', cs, '--endpoint', '127.0.0.1:6379', ...c]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^added \[connection hc\] to /m, show(r));
    assert.match(r.stdout, new RegExp(`^hcmd \\(pid ${agent.pid}\\) reloaded .*: the change is live$`, 'm'), show(r));
    assert.equal(r.stderr, '', show(r));
    assert.equal(mode(ini), 0o600, 'mode after add');
    await agent.waitForLog(/reload request: configuration reloaded from /, T(5000), amark);
    await agent.waitForLog(/reload: hc added/, T(5000), amark);
    const m = await relay.waitForLog(/listener (\S+) on hc connected from/, T(10000), rmark);
    const lid = m[1];

    l = await waitList(c, (rows) => rows.some((x) => x.NAME === 'hc' && x.STATUS === 'Connected'), 'hc Connected');
    assert.deepEqual(
      l.rows.map((x) => x.NAME),
      ['first', 'out', 'hc'],
    );
    const hc = l.rows.find((x) => x.NAME === 'hc');
    assert.equal(hc.NAMESPACE, `localhost:${relay.port}`);
    assert.equal(hc.ENTITY, 'hc');
    assert.equal(hc.ENDPOINT, '127.0.0.1:6379');
    assert.equal(hc.TUNNELS, '0');
    assert.match(hc.SINCE, /^\d+s ago$/);

    r = await hcmd(['show', 'hc', ...c]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^Name: +hc \(\[connection hc\] in .*, line \d+\)$/m, show(r));
    assert.match(r.stdout, new RegExp(`^Namespace: +localhost:${relay.port} `, 'm'), show(r));
    assert.match(r.stdout, /^Key name: +nsListen$/m, show(r));
    assert.match(r.stdout, /^Endpoint: +127\.0\.0\.1:6379 \(from the config\)$/m, show(r));
    assert.match(r.stdout, /^Status: +Connected$/m, show(r));
    assert.match(r.stdout, /^Since: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+s ago\)$/m, show(r));
    assert.match(r.stdout, /^Last error: +none$/m, show(r));
    assert.match(r.stdout, /^Tunnels: +0 active, 0 in all$/m, show(r));
    assert.match(r.stdout, /^Rejects: +0$/m, show(r));
    assert.match(r.stdout, /^Bytes: +0 to the endpoint, 0 to senders$/m, show(r));
    assert.match(r.stdout, /^Token expiry: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in \d+[mh]\); renewed before it$/m, show(r));
    assert.ok(!r.stdout.includes(key), 'show printed the key');
    assert.ok(!r.stdout.includes('SharedAccessKey='), 'show printed the connection string');

    r = await hcmd(['show', 'out', ...c]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`^Bind: +127\\.0\\.0\\.1:${bindPort}$`, 'm'), show(r));
    assert.match(r.stdout, /^Status: +Listening$/m, show(r));
    assert.match(r.stdout, /^Refused: +0$/m, show(r));

    const amark2 = agent.mark();
    const rmark2 = relay.stderr().length;
    r = await hcmd(['remove', 'hc', ...c]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^removed \[connection hc\] from /m, show(r));
    assert.match(r.stdout, /: the change is live$/m, show(r));
    await agent.waitForLog(/reload: hc removed/, T(5000), amark2);
    await relay.waitForLog(new RegExp(`listener ${lid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} disconnected`), T(10000), rmark2);
    l = await waitList(c, (rows) => !rows.some((x) => x.NAME === 'hc'), 'hc gone');
    assert.deepEqual(l.rows.map((x) => [x.NAME, x.STATUS]), [['first', 'Connected'], ['out', 'Listening']]);
    assert.ok(fs.readFileSync(ini).equals(orig), 'file after add + remove is not byte-identical');
    assert.equal(mode(ini), 0o600);

    // A refused change does not reach the daemon.
    const amark3 = agent.mark();
    r = await hcmd(['add', '--connection-string', cs, '--name', 'first', ...c]);
    assertRefused(r, /already used/);
    await sleep(T(200));
    assert.equal(agent.count(/reload/, amark3), 0, 'the daemon reloaded after a refused add');
    assert.ok(!printed.join('').includes(key), 'the key was printed');
  } catch (e) {
    err = e;
  }
  const problems = await agent.stopAndCheck();
  if (err) {
    err.message += `\n--- hcmd stderr ---\n${agent.tail(40)}${logCtx(relay, 30)}`;
    throw err;
  }
  assert.deepEqual(problems, [], `unclean hcmd shutdown\n${agent.tail(40)}`);
});

test('live: list with a daemon that has a connection the file no longer has marks it with *', { timeout: T(60000) }, async () => {
  const dir = tempDir();
  const agent = new FwdAgent({
    relay,
    dir,
    connections: [
      { name: 'one', hc: 'other', rule: 'RootManageSharedAccessKey', endpoint: '127.0.0.1:9' },
      { name: 'two', hc: 'hc', rule: 'nsListen', endpoint: '127.0.0.1:9' },
    ],
  });
  let err = null;
  try {
    await agent.start();
    // Edit behind the daemon's back: no reload.
    const t = fs.readFileSync(agent.iniFile, 'utf8');
    fs.writeFileSync(agent.iniFile, t.slice(0, t.indexOf('\n[connection two]')) + '\n');
    const r = await hcmd(['list', '-c', agent.iniFile]);
    assert.equal(r.code, 0, show(r));
    const l = parseList(r.stdout);
    assert.deepEqual(l.rows.map((x) => x.NAME), ['one', 'two*'], show(r));
    assert.match(r.stdout, /^\* runs in hcmd but is not in /m, show(r));
    const s = await hcmd(['show', 'two', '-c', agent.iniFile]);
    assert.equal(s.code, 0, show(s));
    assert.match(s.stdout, /not in .* any more/, show(s));
  } catch (e) {
    err = e;
  }
  const problems = await agent.stopAndCheck();
  if (err) {
    err.message += `\n--- hcmd stderr ---\n${agent.tail(40)}`;
    throw err;
  }
  assert.deepEqual(problems, []);
});

relayEpilogue(() => relay);
