'use strict';
// hcmd forwarder and hosts_file (issue 4): the marked block is written on
// start with each named forward's own loopback address, the user's lines
// stay byte-identical, clients reach the service at the block's address;
// SIGTERM gives back the original bytes; kill -9 leaves the block; the
// next start repairs it (one block, same addresses); SIGTERM again gives
// back the original bytes. hosts_file is a temp file, never /etc/hosts.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startRelay, listenSendEntities, freePort, mkTempDir, rmTempDir, withTimeout } = require('./lib/relay');
const { relayEpilogue } = require('./lib/suite');
const { cleanupAll, T } = require('./lib/agent');
const { closeAll, Prng, echoServer } = require('./lib/endpoints');
const { FwdAgent, withFwdAgents, tcpEcho, expectedHosts, parseHostsBlocks, strayFiles, freePortOn, reEsc } = require('./lib/forward');

let relay;
let echo;
const started = []; // FwdAgents started outside withFwdAgents, for after()

before(async () => {
  echo = await echoServer();
  relay = await startRelay({
    relay: { log_level: 'info' },
    entities: listenSendEntities(['db', 'cache']),
  });
}, { timeout: T(30000) });

after(async () => {
  for (const a of started) await a.cleanup().catch(() => {});
  await cleanupAll();
  await closeAll();
  if (echo) await echo.close();
  if (relay) await relay.cleanup();
});

const USER_HOSTS =
  '# /etc/hosts of a test machine\n' +
  '127.0.0.1\tlocalhost\n' +
  '127.0.1.1\tbuild-box.example\tbuild-box\n' +
  '\n' +
  '# The following lines are desirable for IPv6 capable hosts\n' +
  '::1     localhost ip6-localhost ip6-loopback\n' +
  'ff02::1 ip6-allnodes\n' +
  '   # an indented comment, trailing spaces   \n' +
  '10.0.0.5 sql.corp.local.old # a user line that mentions hcmd\n' +
  '192.168.7.7\tintranet';

// The agent that serves both hybrid connections (echo behind them).
function listenerOpts() {
  return {
    relay,
    name: 'hcmd-listener',
    connections: [
      { name: 'db', hc: 'db', rule: 'db/listen', endpoint: `127.0.0.1:${echo.port}` },
      { name: 'cache', hc: 'cache', rule: 'cache/listen', endpoint: `127.0.0.1:${echo.port}` },
    ],
  };
}

// Three forwards: two named (own 127.77.x.y addresses, in the block), one
// without a hostname (127.0.0.1, not in the block).
function forwarderOpts(dir, hostsFile, ports) {
  return {
    relay,
    dir,
    name: 'hcmd-forwarder',
    settings: { hosts_file: hostsFile },
    forwards: [
      { name: 'dbf', hc: 'db', rule: 'db/send', bind: ports.dbf, hostname: 'sql.corp.local' },
      { name: 'cachef', hc: 'cache', rule: 'cache/send', bind: ports.cachef, hostname: 'cache.corp.local' },
      { name: 'plain', hc: 'db', rule: 'db/send', bind: ports.plain },
    ],
  };
}

function tailOf(buf) {
  return JSON.stringify(buf.toString('latin1').slice(-300));
}

async function startForwarder(dir, hostsFile, ports) {
  const a = new FwdAgent(forwarderOpts(dir, hostsFile, ports));
  started.push(a);
  await a.start();
  await a.waitForLog(new RegExp(`hcmd info: hosts file ${reEsc(hostsFile)}: hcmd block written`), T(5000));
  return a;
}

// The block written: its addresses are the ones the log names, the user's
// bytes are untouched, every entry answers. Returns the entries.
async function checkBlock(a, original, hostsFile) {
  const dbf = a.fwd.dbf;
  const cachef = a.fwd.cachef;
  const plain = a.fwd.plain;
  assert.match(dbf.addr, /^127\.77\.\d{1,3}\.\d{1,3}$/, dbf.line);
  assert.match(cachef.addr, /^127\.77\.\d{1,3}\.\d{1,3}$/, cachef.line);
  assert.notEqual(dbf.addr, cachef.addr, 'two named forwards share an address');
  assert.equal(dbf.hostname, 'sql.corp.local', dbf.line);
  assert.equal(cachef.hostname, 'cache.corp.local', cachef.line);
  assert.equal(plain.addr, '127.0.0.1', plain.line);
  assert.equal(plain.hostname, null, plain.line);
  const entries = [
    { addr: dbf.addr, hostname: 'sql.corp.local', forward: 'dbf' },
    { addr: cachef.addr, hostname: 'cache.corp.local', forward: 'cachef' },
  ];
  const now = fs.readFileSync(hostsFile);
  const want = expectedHosts(original, entries);
  assert.equal(now.toString('latin1'), want.toString('latin1'), 'hosts file after start (user bytes + one block)');
  const p = parseHostsBlocks(now);
  assert.equal(p.begins, 1, 'BEGIN lines');
  assert.equal(p.ends, 1, 'END lines');
  assert.ok(now.subarray(0, original.length).equals(original), 'the user\'s bytes are a byte-identical prefix');
  // A client that looked the name up in this file reaches the service.
  for (const e of p.entries) {
    const port = e.forward === 'dbf' ? dbf.port : cachef.port;
    const data = new Prng(`hosts-${e.forward}`).next(50000);
    const r = await tcpEcho(e.addr, port, data);
    assert.ok(r.data.equals(data), `echo via ${e.hostname} = ${e.addr}:${port}: got ${r.data.length} of ${data.length} bytes`);
  }
  const r = await tcpEcho('127.0.0.1', plain.port, Buffer.from('plain'));
  assert.equal(r.data.toString(), 'plain', 'the forward without a hostname');
  return entries;
}

async function hostsLifecycle(original) {
  const dir = mkTempDir('hcmd-fwd-hosts-');
  try {
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, original);
    fs.chmodSync(hostsFile, 0o644);
    // Ports free on 127.0.0.1 are free on 127.77.x.y too (nothing else binds there).
    const ports = { dbf: await freePort(), cachef: await freePort(), plain: await freePortOn('127.0.0.1') };
    await withFwdAgents([listenerOpts()], async () => {
      // 1. start: block written.
      const a1 = await startForwarder(dir, hostsFile, ports);
      const entries = await checkBlock(a1, original, hostsFile);
      const blockText = fs.readFileSync(hostsFile);
      assert.equal((fs.statSync(hostsFile).mode & 0o777).toString(8), '644', 'hosts file mode kept');
      // 2. SIGTERM: original bytes.
      const p1 = await a1.stopAndCheck();
      assert.deepEqual(p1, [], 'forwarder stop');
      assert.equal(fs.readFileSync(hostsFile).toString('latin1'), original.toString('latin1'), 'hosts file after SIGTERM');
      assert.deepEqual(strayFiles(hostsFile), [], 'files hcmd left next to the hosts file');
      // 3. start, kill -9: the block stays.
      const a2 = await startForwarder(dir, hostsFile, ports);
      assert.equal(a2.fwd.dbf.addr, entries[0].addr, 'the address is stable across restarts');
      assert.ok(fs.readFileSync(hostsFile).equals(blockText), 'second start wrote the same file');
      const e2 = await a2.kill9();
      assert.equal(e2.signal, 'SIGKILL');
      const left = fs.readFileSync(hostsFile);
      assert.ok(left.equals(blockText), `after kill -9 the block is left behind as it was: ${tailOf(left)}`);
      // 4. next start repairs: exactly one block, same addresses.
      const a3 = await startForwarder(dir, hostsFile, ports);
      await checkBlock(a3, original, hostsFile);
      assert.deepEqual(parseHostsBlocks(fs.readFileSync(hostsFile)).entries, entries, 'entries after the repair');
      // 5. SIGTERM: original bytes again.
      const p3 = await a3.stopAndCheck();
      assert.deepEqual(p3, [], 'forwarder stop after the repair');
      const end = fs.readFileSync(hostsFile);
      assert.equal(end.toString('latin1'), original.toString('latin1'), 'hosts file after the last SIGTERM');
      assert.deepEqual(strayFiles(hostsFile), [], 'files hcmd left next to the hosts file');
    });
  } finally {
    rmTempDir(dir);
  }
}

test('5a. hosts file ending without a newline: block added (newline added above), kept on kill -9, repaired, removed byte-exactly', { timeout: T(60000) }, async () => {
  await hostsLifecycle(Buffer.from(USER_HOSTS, 'latin1'));
});

test('5b. hosts file ending with a newline (and a non-ASCII comment): same lifecycle, original bytes back', { timeout: T(60000) }, async () => {
  await hostsLifecycle(Buffer.from(USER_HOSTS + '\n# caf\u00e9 \u2014 utf-8 comment\n\n', 'utf8'));
});

test('5c. a leftover block in the middle of the file (from a crash) is replaced, and SIGTERM leaves only the user lines', { timeout: T(60000) }, async () => {
  const dir = mkTempDir('hcmd-fwd-hosts-');
  try {
    const hostsFile = path.join(dir, 'hosts');
    const head = '127.0.0.1\tlocalhost\n';
    const tail = '10.1.2.3\tafter.block.local\n';
    const stale =
      '# BEGIN hcmd: managed by hcmd; do not edit\n' +
      '127.77.1.2\told.corp.local\t# hcmd forward gone\n' +
      '127.77.3.4\tsql.corp.local\t# hcmd forward dbf\n' +
      '# END hcmd\n';
    fs.writeFileSync(hostsFile, head + stale + tail);
    const ports = { dbf: await freePort(), cachef: await freePort(), plain: await freePort() };
    await withFwdAgents([listenerOpts()], async () => {
      const a = await startForwarder(dir, hostsFile, ports);
      const user = Buffer.from(head + tail);
      await checkBlock(a, user, hostsFile);
      assert.deepEqual(await a.stopAndCheck(), [], 'forwarder stop');
      assert.equal(fs.readFileSync(hostsFile, 'latin1'), head + tail, 'hosts file after SIGTERM');
    });
  } finally {
    rmTempDir(dir);
  }
});

// A user (or another tool: `echo ... >> /etc/hosts`) adds a line after
// hcmd's block while hcmd runs. The user's last line, which had no newline
// of its own, must not be glued to the added line when hcmd removes its
// block, neither on SIGTERM nor when it repairs the block after a crash.
const NOEOL_ORIGINAL = '127.0.0.1\tlocalhost\n192.168.7.7\tintranet';
const APPENDED = '10.9.9.9\tadded.while.running\n';
const WANT_USER_LINES = ['127.0.0.1\tlocalhost', '192.168.7.7\tintranet', '10.9.9.9\tadded.while.running'];
const userLines = (text) => text.split('\n').filter((l) => l !== '' && !/hcmd/.test(l));

test('5d. no final newline, a line appended after the block while hcmd runs: SIGTERM keeps every user line intact', { timeout: T(60000) }, async () => {
  const dir = mkTempDir('hcmd-fwd-hosts-');
  try {
    const hostsFile = path.join(dir, 'hosts');
    const ports = { dbf: await freePort(), cachef: await freePort(), plain: await freePort() };
    await withFwdAgents([listenerOpts()], async () => {
      fs.writeFileSync(hostsFile, NOEOL_ORIGINAL);
      const a = await startForwarder(dir, hostsFile, ports);
      fs.appendFileSync(hostsFile, APPENDED);
      assert.deepEqual(await a.stopAndCheck(), [], 'forwarder stop');
      const after = fs.readFileSync(hostsFile, 'latin1');
      assert.deepEqual(userLines(after), WANT_USER_LINES, `user lines after SIGTERM; the file: ${JSON.stringify(after)}`);
      assert.equal(after, NOEOL_ORIGINAL + '\n' + APPENDED, 'hosts file after SIGTERM');
    });
  } finally {
    rmTempDir(dir);
  }
});

test('5e. no final newline, a line appended after the block, then kill -9: the repairing start keeps every user line intact', { timeout: T(60000) }, async () => {
  const dir = mkTempDir('hcmd-fwd-hosts-');
  try {
    const hostsFile = path.join(dir, 'hosts');
    const ports = { dbf: await freePort(), cachef: await freePort(), plain: await freePort() };
    await withFwdAgents([listenerOpts()], async () => {
      fs.writeFileSync(hostsFile, NOEOL_ORIGINAL);
      const a1 = await startForwarder(dir, hostsFile, ports);
      fs.appendFileSync(hostsFile, APPENDED);
      await a1.kill9();
      const a2 = await startForwarder(dir, hostsFile, ports);
      const repaired = fs.readFileSync(hostsFile, 'latin1');
      assert.deepEqual(userLines(repaired), WANT_USER_LINES, `user lines after the repair; the file: ${JSON.stringify(repaired)}`);
      const p = parseHostsBlocks(Buffer.from(repaired, 'latin1'));
      assert.equal(p.begins, 1, 'one block after the repair');
      assert.deepEqual(p.entries.map((e) => e.addr), [a2.fwd.dbf.addr, a2.fwd.cachef.addr], 'entries after the repair');
      assert.deepEqual(await a2.stopAndCheck(), [], 'forwarder stop after the repair');
      const end = fs.readFileSync(hostsFile, 'latin1');
      assert.deepEqual(userLines(end), WANT_USER_LINES, `user lines after the last SIGTERM; the file: ${JSON.stringify(end)}`);
    });
  } finally {
    rmTempDir(dir);
  }
});

// A second hcmd started by mistake with the same hosts_file (an admin
// runs `hcmd -c /etc/hcmd/hcm.ini` while the service runs) must fail
// without touching the running hcmd's block: the names it maps are in use.
async function secondInstanceCase(secondOpts) {
  const dir = mkTempDir('hcmd-fwd-hosts-');
  const dir2 = mkTempDir('hcmd-fwd-hosts2-');
  try {
    const hostsFile = path.join(dir, 'hosts');
    const original = '127.0.0.1\tlocalhost\n10.0.0.1\tkeep.me\n';
    fs.writeFileSync(hostsFile, original);
    const ports = { dbf: await freePort(), cachef: await freePort(), plain: await freePort() };
    await withFwdAgents([listenerOpts()], async () => {
      const a = await startForwarder(dir, hostsFile, ports);
      const before = fs.readFileSync(hostsFile, 'latin1');
      const b = new FwdAgent({ ...forwarderOpts(dir2, hostsFile, ports), name: 'hcmd-second', ...secondOpts(a, ports) });
      started.push(b);
      await b.start({ waitConnected: false });
      const e = await withTimeout(b._exited, T(10000), 'the second hcmd to exit');
      assert.notEqual(e.code, 0, `second hcmd exit status ${JSON.stringify(e)}\n${b.tail(10)}`);
      const errs = b.lines(/ hcmd error: /);
      assert.equal(errs.length, 1, `second hcmd error lines:\n${b.tail(10)}`);
      const after = fs.readFileSync(hostsFile, 'latin1');
      assert.equal(after, before, `the running hcmd's hosts block after a second hcmd failed to start (its error: ${errs[0]}); the file now: ${JSON.stringify(after)}`);
      assert.ok(a.alive(), 'the first hcmd died');
      const r = await tcpEcho(a.fwd.dbf.addr, a.fwd.dbf.port, Buffer.from('still mine'));
      assert.equal(r.data.toString(), 'still mine', 'the first hcmd still serves its address');
      assert.deepEqual(await a.stopAndCheck(), [], 'first forwarder stop');
      assert.equal(fs.readFileSync(hostsFile, 'latin1'), original, 'hosts file after the first hcmd stopped');
    });
  } finally {
    rmTempDir(dir);
    rmTempDir(dir2);
  }
}

test('5f. a second hcmd with the same config (its bind ports in use) fails to start and leaves the running hcmd\'s hosts block alone', { timeout: T(60000) }, async () => {
  await secondInstanceCase(() => ({}));
});

test('5g. a second hcmd refused because the control socket is taken leaves the running hcmd\'s hosts block alone', { timeout: T(60000) }, async () => {
  const other = { dbf: await freePort(), cachef: await freePort(), plain: await freePort() };
  await secondInstanceCase((a) => ({
    settings: { hosts_file: a.settings.hosts_file, control_socket: a.settings.control_socket },
    forwards: forwarderOpts(null, a.settings.hosts_file, other).forwards,
  }));
});

relayEpilogue(() => relay);
