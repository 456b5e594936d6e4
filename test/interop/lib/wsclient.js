'use strict';
// In-process clients built on `ws` 8 and raw sockets: handshake probes that
// report the relay's HTTP status, a hand-written listener that reads the raw
// control channel, and raw TLS/TCP helpers for bad-input tests.

const https = require('node:https');
const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { T, withTimeout } = require('./relay');

// Opens a ws 8 WebSocket. Resolves
//   { ok: true, ws, protocol, headers }                on 101
//   { ok: false, status, reason, headers, body }       on any other HTTP answer
//   { ok: false, error }                               on a socket/TLS error
// Never rejects; bounded by ms.
function tryWs(url, { ca, token, headers = {}, protocols, ms = T(10000), wsOptions = {} } = {}) {
  return new Promise((resolve) => {
    const h = { ...headers };
    if (token) h.ServiceBusAuthorization = token;
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(v);
    };
    let ws;
    try {
      ws = new WebSocket(url, protocols, {
        ca,
        headers: h,
        perMessageDeflate: false,
        handshakeTimeout: ms,
        ...wsOptions,
      });
    } catch (error) {
      finish({ ok: false, error });
      return;
    }
    const timer = setTimeout(() => {
      try {
        ws.terminate();
      } catch {}
      finish({ ok: false, error: new Error(`handshake timed out after ${ms} ms`) });
    }, ms + 500);
    ws.on('upgrade', (res) => {
      ws._hcUpgradeHeaders = res.headers;
    });
    ws.on('open', () => finish({ ok: true, ws, protocol: ws.protocol, headers: ws._hcUpgradeHeaders || {} }));
    ws.on('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const end = () =>
        finish({
          ok: false,
          status: res.statusCode,
          reason: res.statusMessage,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
      res.on('end', end);
      res.on('error', end);
      res.on('close', end);
      setTimeout(end, 1000).unref();
      req.on('error', () => {});
    });
    ws.on('error', (error) => finish({ ok: false, error }));
  });
}

function describe(r) {
  if (r.ok) return `101 (open, protocol=${JSON.stringify(r.protocol)})`;
  if (r.status) return `${r.status} ${JSON.stringify(r.reason)} body=${JSON.stringify((r.body || '').slice(0, 200))}`;
  return `error: ${r.error && (r.error.code || r.error.message)}`;
}

// Waits for ws 'close'; resolves { code, reason } (reason as string).
function waitClose(ws, ms = T(10000)) {
  if (ws.readyState === WebSocket.CLOSED && ws._hcClosed) return Promise.resolve(ws._hcClosed);
  return withTimeout(
    new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }),
    ms,
    'WebSocket close',
  );
}

// Resolves with the next message { data: Buffer, isBinary }.
function nextMessage(ws, ms = T(10000)) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const onMsg = (data, isBinary) => {
        ws.off('close', onClose);
        resolve({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary });
      };
      const onClose = (code, reason) => {
        ws.off('message', onMsg);
        reject(new Error(`closed (${code} ${reason}) before a message arrived`));
      };
      ws.once('message', onMsg);
      ws.once('close', onClose);
    }),
    ms,
    'WebSocket message',
  );
}

async function closeQuietly(ws) {
  if (!ws) return;
  if (ws.readyState === WebSocket.CLOSED) return;
  try {
    ws.terminate();
  } catch {}
}

// Hand-written listener on the raw control channel (ws 8). Keeps every
// control message; `accepts` are queued for nextAccept().
class RawListener {
  constructor(ws, ca) {
    this.ws = ws;
    this.ca = ca;
    this.messages = [];
    this._acceptQ = [];
    this._acceptWaiters = [];
    this.rendezvous = [];
    this.closed = null;
    this.closedP = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString(), at: Date.now() };
        for (const w of this._acceptWaiters) w.reject(new Error(`control channel closed ${code} ${reason}`));
        this._acceptWaiters = [];
        resolve(this.closed);
      });
    });
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {}
      this.messages.push({ text, json, isBinary });
      if (json && json.accept) {
        const w = this._acceptWaiters.shift();
        if (w) w.resolve(json.accept);
        else this._acceptQ.push(json.accept);
      }
    });
  }

  static async open(url, opts) {
    const r = await tryWs(url, opts);
    if (!r.ok) {
      const e = new Error(`listen failed: ${describe(r)}`);
      e.result = r;
      throw e;
    }
    return new RawListener(r.ws, opts.ca);
  }

  nextAccept(ms = T(10000)) {
    if (this._acceptQ.length) return Promise.resolve(this._acceptQ.shift());
    if (this.closed) return Promise.reject(new Error(`control channel closed ${this.closed.code}`));
    return withTimeout(
      new Promise((resolve, reject) => this._acceptWaiters.push({ resolve, reject })),
      ms,
      'accept message on control channel',
    );
  }

  // Opens the rendezvous address (optionally with extra query) with ws 8;
  // returns the tryWs result. With echo, echoes every message back.
  async join(address, { extra = '', protocols, echo = true } = {}) {
    const r = await tryWs(address + extra, { ca: this.ca, protocols });
    if (r.ok) {
      this.rendezvous.push(r.ws);
      if (echo) r.ws.on('message', (d, isBinary) => r.ws.send(d, { binary: isBinary }));
      r.ws.on('error', () => {});
    }
    return r;
  }

  // Accept every incoming sender and echo its messages.
  autoEcho() {
    const loop = async () => {
      while (!this.closed) {
        let a;
        try {
          a = await this.nextAccept(24 * 3600 * 1000);
        } catch {
          return;
        }
        let protocols;
        const p = headerValue(a.connectHeaders, 'Sec-WebSocket-Protocol');
        if (p) protocols = [p.split(/,\s*/)[0]];
        this.join(a.address, { protocols }).catch(() => {});
      }
    };
    loop();
    return this;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  close() {
    for (const r of this.rendezvous) closeQuietly(r);
    closeQuietly(this.ws);
  }
}

function headerValue(headers, name) {
  if (!headers) return undefined;
  const k = Object.keys(headers).find((h) => h.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : headers[k];
}

// Sends one text message and waits for the echo.
async function echoOnce(ws, text, ms) {
  const p = nextMessage(ws, ms);
  ws.send(text);
  const m = await p;
  return m.isBinary ? `<binary ${m.data.length}>` : m.data.toString('utf8');
}

// ------------------------------------------------------- raw sockets -------

// Raw TLS connection to the relay, trusting the test CA. Resolves the socket
// once the TLS handshake is done.
function tlsConnect(relay, { ms = T(10000), ca = relay.ca, servername = 'localhost' } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: relay.port, ca, servername }, () => resolve(s));
      s.once('error', reject);
    }),
    ms,
    'TLS handshake',
  );
}

function tcpConnect(relay, { ms = T(10000) } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: relay.port }, () => resolve(s));
      s.once('error', reject);
    }),
    ms,
    'TCP connect',
  );
}

// Collects everything the peer sends until it closes the connection (or ms
// pass). Resolves { data: Buffer, closed: bool, error, elapsed }.
function readUntilClose(sock, ms = T(10000)) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const chunks = [];
    let error = null;
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed, error, elapsed: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    if (sock.destroyed) finish(true);
  });
}

// Reads an HTTP response head from the socket. Resolves
// { status, reason, headers, head, rest } or null if the socket closes first.
function readHttpHead(sock, ms = T(10000)) {
  return withTimeout(
    new Promise((resolve) => {
      let buf = Buffer.alloc(0);
      const onData = (c) => {
        buf = Buffer.concat([buf, c]);
        const i = buf.indexOf('\r\n\r\n');
        if (i >= 0) {
          sock.off('data', onData);
          sock.pause(); // the caller resumes it (e.g. FrameReader)
          const head = buf.slice(0, i).toString('latin1');
          const rest = buf.slice(i + 4);
          const [statusLine, ...hl] = head.split('\r\n');
          const m = statusLine.match(/^HTTP\/1\.[01] (\d{3}) ?(.*)$/);
          const headers = {};
          for (const l of hl) {
            const j = l.indexOf(':');
            if (j > 0) headers[l.slice(0, j).trim().toLowerCase()] = l.slice(j + 1).trim();
          }
          resolve({ status: m ? Number(m[1]) : null, reason: m ? m[2] : null, statusLine, headers, head, rest });
        }
      };
      sock.on('data', onData);
      const onEnd = () => resolve(null);
      sock.once('end', onEnd);
      sock.once('close', onEnd);
      sock.on('error', () => {});
    }),
    ms,
    'HTTP response head',
  );
}

// Builds an HTTP/1.1 WebSocket upgrade request.
function upgradeRequest(relay, pathAndQuery, extraHeaders = {}, { key = crypto.randomBytes(16).toString('base64') } = {}) {
  const lines = [
    `GET ${pathAndQuery} HTTP/1.1`,
    `Host: localhost:${relay.port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
  ];
  for (const [k, v] of Object.entries(extraHeaders)) {
    if (v === null) {
      const i = lines.findIndex((l) => l.toLowerCase().startsWith(k.toLowerCase() + ':'));
      if (i >= 0) lines.splice(i, 1);
    } else lines.push(`${k}: ${v}`);
  }
  return lines.join('\r\n') + '\r\n\r\n';
}

function wsAcceptFor(key) {
  return crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// Encodes one WebSocket frame. opts: { fin=true, opcode, mask=true, rsv=0 }
function encodeFrame(payload, { fin = true, opcode = 1, mask = true, rsv = 0 } = {}) {
  payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = payload.length;
  let hdr;
  if (len < 126) {
    hdr = Buffer.alloc(2);
    hdr[1] = len;
  } else if (len < 65536) {
    hdr = Buffer.alloc(4);
    hdr[1] = 126;
    hdr.writeUInt16BE(len, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[1] = 127;
    hdr.writeBigUInt64BE(BigInt(len), 2);
  }
  hdr[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([hdr, payload]);
  hdr[1] |= 0x80;
  const m = crypto.randomBytes(4);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = payload[i] ^ m[i & 3];
  return Buffer.concat([hdr, m, out]);
}

// Parses the first server frame in buf (server frames are unmasked).
function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const fin = !!(buf[0] & 0x80);
  const opcode = buf[0] & 0x0f;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const masked = !!(buf[1] & 0x80);
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = buf.slice(off, off + len);
  return { fin, opcode, masked, payload, size: off + len };
}

// Opens a raw (hand-framed) WebSocket over TLS; resolves { sock, head, rest }
// after a 101, or throws with the status.
async function rawWsOpen(relay, pathAndQuery, headers = {}, { key = crypto.randomBytes(16).toString('base64') } = {}) {
  const sock = await tlsConnect(relay);
  const headP = readHttpHead(sock);
  sock.write(upgradeRequest(relay, pathAndQuery, headers, { key }));
  const head = await headP;
  if (!head || head.status !== 101) {
    sock.destroy();
    throw new Error(`raw upgrade failed: ${head ? head.statusLine : 'connection closed'}`);
  }
  if (head.headers['sec-websocket-accept'] !== wsAcceptFor(key)) {
    sock.destroy();
    throw new Error(`bad Sec-WebSocket-Accept: ${head.headers['sec-websocket-accept']}`);
  }
  return { sock, head, rest: head.rest };
}

// Reads server frames from a raw socket (after the 101). Records whether
// the peer closed the TCP connection.
class FrameReader {
  constructor(sock, initial = Buffer.alloc(0)) {
    this.sock = sock;
    this.buf = initial;
    this.frames = [];
    this.ended = false;
    this._waiters = [];
    sock.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      this._parse();
    });
    const end = () => {
      this.ended = true;
      this._wake();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', () => {});
    sock.resume();
    this._parse();
  }
  _parse() {
    for (;;) {
      const f = decodeFrame(this.buf);
      if (!f) break;
      this.buf = this.buf.slice(f.size);
      this.frames.push(f);
    }
    this._wake();
  }
  _wake() {
    this._waiters = this._waiters.filter((w) => {
      if (w.check()) return false;
      return true;
    });
  }
  // Resolves the first frame (from index `from`) matching pred, or null if
  // the connection ends first.
  waitFrame(pred = () => true, ms = T(10000), from = 0) {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          const f = this.frames.slice(from).find(pred);
          if (f) {
            resolve(f);
            return true;
          }
          if (this.ended) {
            resolve(null);
            return true;
          }
          return false;
        };
        if (!check()) this._waiters.push({ check });
      }),
      ms,
      'WebSocket frame',
    );
  }
  // Resolves true once the TCP connection is closed by the peer.
  waitEnd(ms = T(10000)) {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          if (this.ended) {
            resolve(true);
            return true;
          }
          return false;
        };
        if (!check()) this._waiters.push({ check });
      }),
      ms,
      'connection close',
    );
  }
}

// Runtime-description GET. Resolves { status, reason, headers, body }.
function httpsGet(relay, pathAndQuery, headers = {}, ms = T(10000)) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          servername: 'localhost',
          port: relay.port,
          path: pathAndQuery,
          method: 'GET',
          ca: relay.ca,
          headers: { Host: `localhost:${relay.port}`, ...headers },
          agent: false,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              reason: res.statusMessage,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    }),
    ms,
    `GET ${pathAndQuery}`,
  );
}

module.exports = {
  WebSocket,
  tryWs,
  describe,
  waitClose,
  nextMessage,
  closeQuietly,
  RawListener,
  headerValue,
  echoOnce,
  tlsConnect,
  tcpConnect,
  readUntilClose,
  readHttpHead,
  upgradeRequest,
  wsAcceptFor,
  encodeFrame,
  decodeFrame,
  FrameReader,
  rawWsOpen,
  httpsGet,
};
