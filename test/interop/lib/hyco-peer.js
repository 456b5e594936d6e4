'use strict';
// Child process hosting hyco-ws@1.0.5 listeners and senders, driven over IPC
// by lib/peers.js. Runs in its own process because hyco-ws can crash its
// process, and because NODE_EXTRA_CA_CERTS (the only way to make hyco-ws
// trust the test CA) is read at process start only.
//
// Parent -> child: { id, op, args }        child -> parent: { reply: id, ok, result | error }
// Child -> parent events: { event, ... }

const dns = require('node:dns');
dns.setDefaultResultOrder('ipv4first');
const crypto = require('node:crypto');
const WS = require('hyco-ws');

const servers = new Map(); // lid -> RelayedServer
const conns = new Map(); // cid -> listener-side WebSocket (ws 1.x)
const senders = new Map(); // sid -> sender WebSocket (ws 1.x)
let nextId = 1;

function emit(ev) {
  if (process.connected) process.send(ev);
}

function digest(data) {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
  return { length: b.length, sha256: crypto.createHash('sha256').update(b).digest('hex') };
}

function closeReason(reason) {
  if (reason === undefined || reason === null) return '';
  return Buffer.isBuffer(reason) ? reason.toString('utf8') : String(reason);
}

const ops = {
  // Starts a hyco-ws listener. Resolves { lid } on 'listening'; on the
  // first error it closes the server (hyco-ws would retry in a tight loop)
  // and rejects.
  listen({ url, token, echo = true }) {
    return new Promise((resolve, reject) => {
      const lid = nextId++;
      let listening = false;
      const server = WS.createRelayedServer({ server: url, token }, (client) => {
        const cid = nextId++;
        conns.set(cid, client);
        emit({ event: 'connection', lid, cid });
        client.on('open', () => emit({ event: 'open', side: 'listener', lid, cid, protocol: client.protocol || null }));
        client.on('message', (data, flags) => {
          const binary = !!(flags && flags.binary);
          emit({ event: 'message', side: 'listener', lid, cid, binary, ...digest(data) });
          if (echo) client.send(data, { binary });
        });
        client.on('close', (code, reason) => {
          conns.delete(cid);
          emit({ event: 'close', side: 'listener', lid, cid, code, reason: closeReason(reason) });
        });
        client.on('error', (e) => emit({ event: 'error', side: 'listener', lid, cid, error: String(e && e.message || e) }));
      });
      servers.set(lid, server);
      server.on('listening', () => {
        emit({ event: 'listening', lid });
        if (!listening) {
          listening = true;
          resolve({ lid });
        }
      });
      server.on('error', (e) => {
        const msg = String((e && e.message) || e);
        emit({ event: 'error', side: 'server', lid, error: msg });
        if (!listening) {
          try {
            server.close();
          } catch {}
          servers.delete(lid);
          reject(new Error(msg));
        }
      });
      server.on('close', () => emit({ event: 'server-close', lid }));
    });
  },

  listenerClose({ lid }) {
    const s = servers.get(lid);
    if (!s) throw new Error(`no listener ${lid}`);
    servers.delete(lid);
    s.close();
    return {};
  },

  // Listener side closes one accepted connection.
  connClose({ cid, code, reason }) {
    const c = conns.get(cid);
    if (!c) throw new Error(`no connection ${cid}`);
    c.close(code, reason);
    return {};
  },

  // Sender. Without protocols: exactly WS.relayedConnect(url, token, cb).
  // With protocols: hyco-ws's ws constructor (what relayedConnect calls),
  // plus the protocol list. Resolves { ok, sid, protocol } or
  // { ok:false, status, reason } / { ok:false, error }.
  connect({ url, token, protocols, headers }) {
    return new Promise((resolve) => {
      let ws;
      let done = false;
      const finish = (v) => {
        if (!done) {
          done = true;
          resolve(v);
        }
      };
      const sid = nextId++;
      try {
        if (protocols || headers) {
          const h = { ...(headers || {}) };
          if (token) h.ServiceBusAuthorization = token;
          ws = new WS(url, protocols || null, { headers: h });
        } else {
          ws = WS.relayedConnect(url, token, () => {});
        }
      } catch (e) {
        finish({ ok: false, error: String(e && e.message || e) });
        return;
      }
      senders.set(sid, ws);
      ws.on('unexpected-response', (req, res) => {
        finish({ ok: false, status: res.statusCode, reason: res.statusMessage });
        try {
          res.resume();
          req.abort();
        } catch {}
        senders.delete(sid);
      });
      ws.on('open', () => finish({ ok: true, sid, protocol: ws.protocol || null }));
      ws.on('message', (data, flags) => {
        const binary = !!(flags && flags.binary);
        const b = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
        emit({ event: 'message', side: 'sender', sid, binary, b64: b.toString('base64') });
      });
      ws.on('close', (code, reason) => {
        senders.delete(sid);
        emit({ event: 'close', side: 'sender', sid, code, reason: closeReason(reason) });
      });
      ws.on('error', (e) => {
        const msg = String((e && e.message) || e);
        emit({ event: 'error', side: 'sender', sid, error: msg });
        finish({ ok: false, error: msg });
      });
    });
  },

  // Sender sends one message: { text } or { b64 } (binary).
  send({ sid, text, b64 }) {
    const ws = senders.get(sid);
    if (!ws) throw new Error(`no sender ${sid}`);
    return new Promise((resolve, reject) => {
      const cb = (err) => (err ? reject(err) : resolve({}));
      if (b64 !== undefined) ws.send(Buffer.from(b64, 'base64'), { binary: true }, cb);
      else ws.send(text, cb);
    });
  },

  senderClose({ sid, code, reason }) {
    const ws = senders.get(sid);
    if (!ws) throw new Error(`no sender ${sid}`);
    ws.close(code, reason);
    return {};
  },

  senderTerminate({ sid }) {
    const ws = senders.get(sid);
    if (ws) ws.terminate();
    senders.delete(sid);
    return {};
  },

  status() {
    return { servers: [...servers.keys()], conns: [...conns.keys()], senders: [...senders.keys()] };
  },

  shutdown() {
    for (const s of servers.values()) {
      try {
        s.close();
      } catch {}
    }
    for (const ws of senders.values()) {
      try {
        ws.terminate();
      } catch {}
    }
    setTimeout(() => process.exit(0), 50);
    return {};
  },
};

process.on('message', async (m) => {
  if (!m || typeof m.op !== 'string') return;
  try {
    if (!ops[m.op]) throw new Error(`unknown op ${m.op}`);
    const result = await ops[m.op](m.args || {});
    emit({ reply: m.id, ok: true, result });
  } catch (e) {
    emit({ reply: m.id, ok: false, error: String((e && e.message) || e) });
  }
});

process.on('uncaughtException', (e) => {
  emit({ event: 'crash', error: String((e && e.stack) || e) });
  process.exit(70);
});

process.on('disconnect', () => process.exit(0));
emit({ event: 'ready' });
