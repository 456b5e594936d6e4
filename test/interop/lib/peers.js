'use strict';
// Parent-side handle on a hyco-ws child process (lib/hyco-peer.js).

const { fork } = require('node:child_process');
const path = require('node:path');
const { T, withTimeout } = require('./relay');

class HycoPeer {
  constructor(relay, { trustCA = true, env = {} } = {}) {
    const e = { ...process.env, NODE_NO_WARNINGS: '1' };
    delete e.NODE_TLS_REJECT_UNAUTHORIZED;
    if (trustCA) e.NODE_EXTRA_CA_CERTS = relay.caFile;
    else delete e.NODE_EXTRA_CA_CERTS;
    // NODE_OPTIONS may carry the test runner's flags; the child needs none.
    delete e.NODE_OPTIONS;
    delete e.NODE_TEST_CONTEXT;
    Object.assign(e, env);
    this.relay = relay;
    this.events = [];
    this._waiters = [];
    this._pending = new Map();
    this._nextId = 1;
    this.exit = null;
    this.crash = null;
    this.child = fork(path.join(__dirname, 'hyco-peer.js'), [], {
      env: e,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: [],
    });
    this.output = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (c) => (this.output += c));
    this.child.stderr.on('data', (c) => (this.output += c));
    this.child.on('message', (m) => this._onMessage(m));
    this._exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const p of this._pending.values()) p.reject(new Error(`hyco peer exited (${code}/${signal}) ${this.crash || ''}\n${this.output.slice(-2000)}`));
        this._pending.clear();
        resolve(this.exit);
      });
    });
    this.ready = this.waitEvent((ev) => ev.event === 'ready', T(15000), 'hyco peer start');
  }

  _onMessage(m) {
    if (m && m.reply !== undefined) {
      const p = this._pending.get(m.reply);
      if (!p) return;
      this._pending.delete(m.reply);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
      return;
    }
    if (m && m.event === 'crash') this.crash = m.error;
    this.events.push(m);
    this._waiters = this._waiters.filter((w) => {
      if (w.pred(m)) {
        w.resolve(m);
        return false;
      }
      return true;
    });
  }

  async call(op, args = {}, ms = T(15000)) {
    await this.ready;
    if (this.exit) throw new Error(`hyco peer already exited (${this.exit.code}) ${this.crash || ''}`);
    const id = this._nextId++;
    const p = new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
    this.child.send({ id, op, args });
    return withTimeout(p, ms, `hyco peer op ${op}`).finally(() => this._pending.delete(id));
  }

  // Waits for an event matching pred (past events included unless
  // onlyNew). Resolves the event.
  waitEvent(pred, ms = T(10000), what = 'hyco peer event', { onlyNew = false } = {}) {
    if (!onlyNew) {
      const ev = this.events.find(pred);
      if (ev) return Promise.resolve(ev);
    }
    return withTimeout(
      new Promise((resolve) => this._waiters.push({ pred, resolve })),
      ms,
      what,
    );
  }

  listen(url, token, opts = {}) {
    return this.call('listen', { url, token, ...opts });
  }

  connect(url, token, opts = {}) {
    return this.call('connect', { url, token, ...opts });
  }

  // Sender sends text (string) or binary (Buffer); resolves the echoed
  // message { binary, data: Buffer }.
  async echo(sid, payload, ms = T(10000)) {
    const mark = this.events.length;
    const p = new Promise((resolve, reject) => {
      const pred = (ev) => ev.event === 'message' && ev.side === 'sender' && ev.sid === sid;
      const found = this.events.slice(mark).find(pred);
      if (found) return resolve(found);
      withTimeout(new Promise((r) => this._waiters.push({ pred, resolve: r })), ms, `echo on sender ${sid}`).then(resolve, reject);
    });
    if (Buffer.isBuffer(payload)) await this.call('send', { sid, b64: payload.toString('base64') });
    else await this.call('send', { sid, text: payload });
    const ev = await p;
    return { binary: ev.binary, data: Buffer.from(ev.b64, 'base64') };
  }

  async stop() {
    if (this.exit) return this.exit;
    try {
      await this.call('shutdown', {}, 2000);
    } catch {}
    try {
      return await withTimeout(this._exited, 3000, 'hyco peer exit');
    } catch {
      try {
        this.child.kill('SIGKILL');
      } catch {}
      return withTimeout(this._exited, 3000, 'hyco peer exit after SIGKILL').catch(() => null);
    }
  }
}

// One connect + echo + close through hyco-ws, used as a health check.
// Returns the echoed text.
async function hycoRoundTrip(peer, relay, hc, token, text = `ping-${Date.now()}`) {
  const r = await peer.connect(relay.connectUrl(hc), token);
  if (!r.ok) throw new Error(`sender connect failed: ${JSON.stringify(r)}`);
  try {
    const m = await peer.echo(r.sid, text);
    return m.data.toString('utf8');
  } finally {
    await peer.call('senderTerminate', { sid: r.sid }).catch(() => {});
  }
}

module.exports = { HycoPeer, hycoRoundTrip };
