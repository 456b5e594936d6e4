'use strict';
// TCP endpoints for the hcmd agent tests (the service behind the agent),
// plus a seeded fast byte generator and redis-server.
//
// Every server listens on 127.0.0.1 port 0; close() destroys what is still
// connected and resolves when the server is closed.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const net = require('node:net');
const { T, withTimeout, freePort, sleep } = require('./relay');

// Servers and redis processes still open, for closeAll().
const live = new Set();

// -------------------------------------------------------------- bytes ------

// Seeded, fast pseudo-random bytes: the AES-128-CTR keystream of a key
// derived from `seed`. Two Prng(seed) produce the same stream.
class Prng {
  constructor(seed) {
    const k = crypto.createHash('sha256').update(String(seed)).digest();
    this.cipher = crypto.createCipheriv('aes-128-ctr', k.subarray(0, 16), k.subarray(16, 32));
    this.zeros = Buffer.alloc(1 << 20);
  }
  next(n) {
    if (n === 0) return Buffer.alloc(0);
    const parts = [];
    let left = n;
    while (left > 0) {
      const m = Math.min(left, this.zeros.length);
      parts.push(this.cipher.update(this.zeros.subarray(0, m)));
      left -= m;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// Writes `total` bytes of prng output to a net.Socket in chunks, honouring
// socket.write()'s return value. Resolves { sent, hash } when everything
// has been handed to the socket; rejects if the socket closes first.
function writeStream(sock, total, prng, { chunk = 64 * 1024, end = false } = {}) {
  const h = crypto.createHash('sha256');
  let sent = 0;
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      reject(new Error(`endpoint write stopped after ${sent} of ${total} bytes: ${why}`));
    };
    sock.once('close', () => fail('socket closed'));
    const pump = () => {
      while (!done && sent < total) {
        const n = Math.min(chunk, total - sent);
        const b = prng.next(n);
        h.update(b);
        sent += n;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      if (!done && sent >= total) {
        done = true;
        if (end) sock.end();
        resolve({ sent, hash: h.digest('hex') });
      }
    };
    pump();
  });
}

// ------------------------------------------------------------ servers ------

// A TCP server on 127.0.0.1:0. onConn(sock, info) is called for every
// connection; info = { index }. Keeps every socket for close().
async function tcpServer(onConn, { allowHalfOpen = true } = {}) {
  const sockets = new Set();
  const srv = net.createServer({ allowHalfOpen });
  const self = {
    server: srv,
    port: 0,
    connections: 0,
    sockets,
    errors: [],
    async close() {
      live.delete(self);
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(() => r()));
    },
  };
  live.add(self);
  srv.on('connection', (sock) => {
    const index = self.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', (e) => self.errors.push(`#${index}: ${e.code || e.message}`));
    onConn(sock, { index });
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  self.port = srv.address().port;
  return self;
}

// Echoes every byte; after the peer's FIN it finishes echoing and sends
// its own FIN (pipe() ends the writable side on 'end').
function echoServer() {
  return tcpServer((sock) => sock.pipe(sock));
}

// For each connection: hashes everything received; optionally writes
// `writeBytes` of Prng(seed + index) concurrently. Ends its side (FIN)
// once it has written everything AND received `endAfter` bytes (or on the
// peer's FIN). Every connection's record: { received, hash, sent,
// sentHash, eof, eofAt, done: Promise }.
function hashServer({ writeBytes = 0, seed = 'endpoint', endAfter = Infinity, chunk = 64 * 1024 } = {}) {
  const records = [];
  const p = tcpServer((sock, { index }) => {
    const rec = { received: 0, hash: null, sent: 0, sentHash: null, eof: false, firstByteAt: null };
    records.push(rec);
    const h = crypto.createHash('sha256');
    let writeDone = writeBytes === 0 ? Promise.resolve({ sent: 0, hash: sha256(Buffer.alloc(0)) }) : null;
    let ended = false;
    let gotAll;
    const allIn = new Promise((r) => (gotAll = r));
    const maybeEnd = () => {
      if (!ended && rec.sentHash !== null && (rec.received >= endAfter || rec.eof)) {
        ended = true;
        sock.end();
      }
    };
    sock.on('data', (c) => {
      if (rec.firstByteAt === null) rec.firstByteAt = Date.now();
      rec.received += c.length;
      h.update(c);
      if (rec.received >= endAfter) gotAll();
      maybeEnd();
    });
    rec.done = new Promise((resolve) => {
      sock.on('end', () => {
        rec.eof = true;
        rec.eofAt = Date.now();
        rec.hash = h.digest('hex');
        gotAll();
        maybeEnd();
      });
      sock.on('close', () => {
        if (rec.hash === null) rec.hash = h.digest('hex');
        resolve(rec);
      });
    });
    if (!writeDone) writeDone = writeStream(sock, writeBytes, new Prng(`${seed}#${index}`), { chunk });
    writeDone.then(
      (r) => {
        rec.sent = r.sent;
        rec.sentHash = r.hash;
        maybeEnd();
      },
      (e) => {
        rec.writeError = e.message;
      },
    );
    rec.allIn = allIn;
  });
  return p.then((s) => Object.assign(s, { records }));
}

// Reads at about `rate` bytes per second by pausing and resuming the
// socket (kernel buffers fill, TCP pushes back). Counts and hashes what it
// has read. records[i] = { received, hash(), closed }.
function slowReader({ rate = 1 << 20, tickMs = 50 } = {}) {
  const records = [];
  const p = tcpServer((sock) => {
    const rec = { received: 0, closed: false, eof: false };
    const h = crypto.createHash('sha256');
    rec.hash = () => h.copy().digest('hex');
    records.push(rec);
    const perTick = Math.max(1, Math.floor((rate * tickMs) / 1000));
    let budget = perTick;
    sock.on('data', (c) => {
      rec.received += c.length;
      h.update(c);
      budget -= c.length;
      if (budget <= 0) sock.pause();
    });
    const timer = setInterval(() => {
      budget = Math.min(budget + perTick, perTick);
      if (budget > 0 && sock.isPaused()) sock.resume();
    }, tickMs);
    sock.on('end', () => {
      rec.eof = true;
    });
    sock.on('close', () => {
      rec.closed = true;
      clearInterval(timer);
    });
  });
  return p.then((s) => Object.assign(s, { records }));
}

// Sends `banner`, keeps reading; calls `decide(rec, sock)` after every read
// so the test chooses when to end() its side. Records: { received: Buffer
// chunks, receivedAtEnd (bytes read when end() was called), eof, done }.
function bannerServer(banner, { endWhen = (rec) => true } = {}) {
  const records = [];
  const p = tcpServer((sock) => {
    const rec = { chunks: [], received: 0, endedAt: null, eof: false };
    records.push(rec);
    const maybeEnd = () => {
      if (rec.endedAt === null && endWhen(rec)) {
        rec.endedAt = rec.received;
        sock.end();
      }
    };
    rec.done = new Promise((resolve) => {
      sock.on('end', () => {
        rec.eof = true;
      });
      sock.on('close', () => resolve(rec));
    });
    sock.on('data', (c) => {
      rec.chunks.push(c);
      rec.received += c.length;
      maybeEnd();
    });
    sock.write(banner, () => maybeEnd());
  });
  return p.then((s) => Object.assign(s, { records }));
}

// ------------------------------------------------------------- redis -------

// redis-server on a free loopback port, no persistence. Resolves
// { port, proc, output(), stop() }.
async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  proc.on('error', (e) => (out += `spawn error: ${e.message}\n`));
  const self = {
    port,
    proc,
    output: () => out,
    async close() {
      return self.stop();
    },
    async stop() {
      live.delete(self);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      try {
        await withTimeout(exited, 5000, 'redis-server exit');
      } catch {
        proc.kill('SIGKILL');
        await withTimeout(exited, 5000, 'redis-server exit after SIGKILL').catch(() => {});
      }
    },
  };
  live.add(self);
  // Ready when it accepts a TCP connection (its log wording varies).
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${out}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return self;
    if (Date.now() - t0 > T(10000)) {
      await self.stop();
      throw new Error(`redis-server did not accept connections on ${port} within ${T(10000)} ms:\n${out}`);
    }
    await sleep(50);
  }
}

// For a test file's after() hook: closes what a timed-out test left open.
async function closeAll() {
  const n = live.size;
  for (const x of [...live]) await x.close().catch(() => {});
  return n;
}

module.exports = {
  closeAll,
  Prng,
  sha256,
  writeStream,
  tcpServer,
  echoServer,
  hashServer,
  slowReader,
  bannerServer,
  startRedis,
};
