'use strict';
// Helpers for the hcmd forwarder tests (the sender role): an Agent that
// also writes [forward NAME] sections, withFwdAgents() (withAgents() for
// such agents), plain TCP clients that measure what the forwarder does to
// them, external programs run with a deadline, and hosts-file helpers.
//
// Loopback only. Reuses lib/agent.js and lib/relay.js read-only.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { saveOutput } = require('./suitelog');
const agentLib = require('./agent');
const { withTimeout, rmTempDir } = require('./relay');

const { Agent, T, HCMD, connectionString } = agentLib;

const reEsc = (s) => String(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// An Agent whose hcm.ini also has [forward NAME] sections.
//   opts.forwards: [{ name, hc, rule, key, connectionString, bind, hostname }]
//   opts.extraIni: raw text appended to the file (for config-error tests)
// After start(), this.fwd[NAME] = { addr, port, entity, hostname, line }
// from its `forward NAME: listening on ADDR:PORT for ENTITY[, name HOST]`.
class FwdAgent extends Agent {
  constructor(opts) {
    super(opts);
    // One control socket per agent (several hcmds run at once in a test);
    // the default path is shared by every hcmd of the user.
    if (this.settings.control_socket === undefined) this.settings.control_socket = path.join(this.dir, 'hcmd.sock');
    this.forwards = opts.forwards || [];
    this.extraIni = opts.extraIni || '';
    this.fwd = {};
  }

  iniText() {
    const lines = [super.iniText().replace(/\n$/, '')];
    for (const f of this.forwards) {
      lines.push('', `[forward ${f.name}]`);
      const cs = f.connectionString || connectionString(this.relay, f.hc, f.rule, f.key);
      lines.push(`connection_string = ${cs}`);
      if (f.bind !== undefined) lines.push(`bind = ${f.bind}`);
      if (f.hostname !== undefined) lines.push(`hostname = ${f.hostname}`);
    }
    return lines.join('\n') + '\n' + this.extraIni;
  }

  // Like Agent.start; with waitConnected (default) it also waits for every
  // forward's `listening on` line.
  async start(opts = {}) {
    const { waitConnected = true, ms = T(10000) } = opts;
    await super.start(opts);
    if (!waitConnected) return this;
    try {
      for (const f of this.forwards) {
        const re = new RegExp(`hcmd info: forward ${reEsc(f.name)}: listening on (\\S+):(\\d+) for (\\S+?)(?:, name (\\S+))?\\n`);
        const m = await this.waitForLog(re, ms);
        this.fwd[f.name] = { addr: m[1], port: Number(m[2]), entity: m[3], hostname: m[4] || null, line: m[0].trim() };
      }
    } catch (e) {
      await this.stop();
      e.message += `\n--- ${this.name} stderr ---\n${this.tail(40)}`;
      throw e;
    }
    return this;
  }

  // SIGKILL (a crash): no cleanup by hcmd. Resolves the exit status.
  async kill9(ms = T(5000)) {
    if (!this.alive()) return this.exit;
    this.proc.kill('SIGKILL');
    return withTimeout(this._exited, ms, `${this.name} exit after SIGKILL`);
  }

  // Parsed `forward NAME id=...` audit lines written after offset `from`.
  fwdLines(from = 0) {
    const re =
      /hcmd info: forward (\S+) id=(\S+) client=(\S+):(\d+) bytes_to_relay=(\d+) bytes_to_client=(\d+) duration_ms=(\d+) reason="([^"]*)"/g;
    const out = [];
    for (const m of this._text.slice(from).matchAll(re)) {
      out.push({
        name: m[1],
        id: m[2],
        client: m[3],
        clientPort: Number(m[4]),
        toRelay: Number(m[5]),
        toClient: Number(m[6]),
        durationMs: Number(m[7]),
        reason: m[8],
        line: m[0],
      });
    }
    return out;
  }
}

// withAgents() from lib/agent.js, for FwdAgents: starts them in order, runs
// body(...agents), stops them; a passing body fails if an agent did not
// exit 0 on SIGTERM or printed a sanitizer report.
function withFwdAgents(optsList, body) {
  return agentLib.withAgents(optsList, body, FwdAgent);
}

// ------------------------------------------------------------ clients ------

// Connects to host:port. Resolves { sock, connectedAt }.
function tcpOpen(host, port, ms = T(5000)) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, allowHalfOpen: true });
      sock.once('connect', () => resolve({ sock, connectedAt: Date.now() }));
      sock.once('error', reject);
    }),
    ms,
    `TCP connect to ${host}:${port}`,
  );
}

// Sends `data` to host:port, half-closes once it is all written, reads
// until the peer closes. Resolves { data, eof, error, ms, localPort }.
// Bounded by ms (then the socket is destroyed and timedOut is set).
async function tcpExchange(host, port, data, { ms = T(20000), halfClose = true } = {}) {
  const { sock, connectedAt } = await tcpOpen(host, port);
  const localPort = sock.localPort;
  return new Promise((resolve) => {
    const chunks = [];
    let eof = false;
    let error = null;
    let done = false;
    const finish = (timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), eof, error, ms: Date.now() - connectedAt, localPort, timedOut });
    };
    const timer = setTimeout(() => finish(true), ms);
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => {
      eof = true;
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => finish(false));
    sock.write(data, () => {
      if (halfClose) sock.end();
    });
  });
}

// Sends `data`, waits until the same number of bytes came back (an echo),
// then ends and waits for the close. Like tcpExchange, but does not
// half-close before the echo arrived.
async function tcpEcho(host, port, data, { ms = T(20000) } = {}) {
  const { sock, connectedAt } = await tcpOpen(host, port);
  const localPort = sock.localPort;
  return new Promise((resolve) => {
    const chunks = [];
    let got = 0;
    let eof = false;
    let error = null;
    let done = false;
    let echoedAt = null;
    const finish = (timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), eof, error, ms: Date.now() - connectedAt, echoMs: echoedAt && echoedAt - connectedAt, localPort, timedOut });
    };
    const timer = setTimeout(() => finish(true), ms);
    sock.on('data', (c) => {
      chunks.push(c);
      got += c.length;
      if (got >= data.length && echoedAt === null) {
        echoedAt = Date.now();
        sock.end();
      }
    });
    sock.on('end', () => {
      eof = true;
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => finish(false));
    if (data.length === 0) {
      echoedAt = Date.now();
      sock.end();
    } else sock.write(data);
  });
}

// Connects and does nothing: resolves how the forwarder ended it,
// { ms (connect to EOF/close), eof, reset, received, localPort, timedOut }.
async function tcpWatchClose(host, port, { ms = T(10000), send = null } = {}) {
  const { sock, connectedAt } = await tcpOpen(host, port);
  const localPort = sock.localPort;
  if (send) sock.write(send);
  return new Promise((resolve) => {
    let received = 0;
    let done = false;
    let eof = false;
    let error = null;
    const finish = (timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const r = { ms: Date.now() - connectedAt, eof, error, reset: !!(error && error.code === 'ECONNRESET'), received, localPort, timedOut };
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(true), ms);
    sock.on('data', (c) => (received += c.length));
    sock.on('end', () => {
      eof = true;
      finish(false);
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => finish(false));
  });
}

// ----------------------------------------------------------- programs ------

// Runs a program with a deadline. Resolves { code, signal, stdout: Buffer,
// stderr: string, ms, timedOut }; never rejects for a non-zero exit.
function run(cmd, args, { input = null, ms = T(30000), env, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env || process.env, cwd });
    const out = [];
    let err = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        p.kill('SIGKILL');
      } catch {}
    }, ms);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    p.stdout.on('data', (c) => out.push(c));
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (c) => (err += c));
    p.stdin.on('error', () => {});
    if (input !== null) p.stdin.end(input);
    else p.stdin.end();
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      saveOutput(path.basename(cmd), Buffer.concat(out).toString('latin1') + err);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - t0, timedOut });
    });
  });
}

// hcmd with arguments (no relay needed): for config errors.
function runHcmd(args, opts = {}) {
  const env = { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1' };
  delete env.JOURNAL_STREAM;
  return run(HCMD, args, { ms: T(10000), env, ...opts });
}

// ---------------------------------------------------------- hosts file -----

const BEGIN = '# BEGIN hcmd: managed by hcmd; do not edit';
const END = '# END hcmd';

// The file hcmd should write: the user's bytes, then the block.
function expectedHosts(original, entries) {
  const s = original.toString('latin1');
  const joined = s.length > 0 && !s.endsWith('\n');
  let out = s + (joined ? '\n' : '') + BEGIN + (joined ? ' (newline added above)' : '') + '\n';
  for (const e of entries) out += `${e.addr}\t${e.hostname}\t# hcmd forward ${e.forward}\n`;
  return Buffer.from(out + END + '\n', 'latin1');
}

// Counts BEGIN/END markers and parses the entries inside blocks.
function parseHostsBlocks(buf) {
  const lines = buf.toString('latin1').split('\n');
  let begins = 0;
  let ends = 0;
  const entries = [];
  let inBlock = false;
  for (const l of lines) {
    if (l.startsWith('# BEGIN hcmd')) {
      begins++;
      inBlock = true;
    } else if (l.startsWith(END)) {
      ends++;
      inBlock = false;
    } else if (inBlock) {
      const m = l.match(/^(\S+)\t(\S+)\t# hcmd forward (\S+)$/);
      if (m) entries.push({ addr: m[1], hostname: m[2], forward: m[3] });
    }
  }
  return { begins, ends, entries };
}

// hcmd's temp files for `hostsFile` (NAME.hcmd-XXXXXX) left in its directory.
function strayFiles(hostsFile) {
  const base = path.basename(hostsFile);
  return fs.readdirSync(path.dirname(hostsFile)).filter((n) => n.startsWith(`${base}.`));
}

// A free port on `host` (any 127/8 address works on Linux loopback).
function freePortOn(host) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

module.exports = {
  FwdAgent,
  withFwdAgents,
  tcpOpen,
  tcpExchange,
  tcpEcho,
  tcpWatchClose,
  run,
  runHcmd,
  expectedHosts,
  parseHostsBlocks,
  strayFiles,
  freePortOn,
  reEsc,
  BEGIN,
  END,
};
