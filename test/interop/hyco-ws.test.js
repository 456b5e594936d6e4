'use strict';
// hyco-ws@1.0.5 listener + hyco-ws relayedConnect sender through hcrelay:
// echo, binary fidelity, sub-protocol, close code/reason both ways, TLS trust.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startRelay, T, withTimeout } = require('./lib/relay');
const { HycoPeer } = require('./lib/peers');
const { tryWs, nextMessage, waitClose, closeQuietly, describe } = require('./lib/wsclient');
const { logCtx, relayEpilogue } = require('./lib/suite');

let relay;
let peer; // hosts the hyco-ws listener and senders
let lid;

const listenToken = () => relay.token(relay.listenUrl('hc'), 'hc/listenOnly');
const sendToken = () => relay.token(relay.connectUrl('hc'), 'hc/sendOnly');

before(async () => {
  relay = await startRelay();
  peer = new HycoPeer(relay);
  const r = await peer.listen(relay.listenUrl('hc'), listenToken());
  lid = r.lid;
}, { timeout: T(60000) });

after(async () => {
  if (peer) await peer.stop();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

async function connectSender(opts) {
  const r = await peer.connect(relay.connectUrl('hc'), sendToken(), opts);
  assert.ok(r.ok, `hyco-ws sender connect failed: ${JSON.stringify(r)}${logCtx(relay)}`);
  return r;
}

test('hyco-ws: listener registers on the control channel (listening event)', { timeout: T(15000) }, async () => {
  assert.ok(peer.events.some((e) => e.event === 'listening' && e.lid === lid), 'no listening event');
  assert.ok(!peer.events.some((e) => e.event === 'error'), `hyco-ws reported errors: ${JSON.stringify(peer.events.filter((e) => e.event === 'error'))}`);
});

test('hyco-ws: text echo through relayedConnect', { timeout: T(20000) }, async () => {
  const s = await connectSender();
  try {
    const text = 'hello through hcrelay \u00e9\u4e2d\ud83d\ude00';
    const m = await peer.echo(s.sid, text);
    assert.equal(m.binary, false, 'echo of a text message came back binary');
    assert.equal(m.data.toString('utf8'), text);
    const conn = await peer.waitEvent((e) => e.event === 'connection' && e.lid === lid, T(5000), 'listener connection event');
    assert.ok(conn.cid > 0);
  } finally {
    await peer.call('senderTerminate', { sid: s.sid });
  }
});

test('hyco-ws: random 100 KiB binary message echoes byte-exact', { timeout: T(30000) }, async () => {
  const s = await connectSender();
  try {
    const buf = crypto.randomBytes(100 * 1024);
    const m = await peer.echo(s.sid, buf, T(20000));
    assert.equal(m.binary, true, 'echo of a binary message came back as text');
    assert.equal(m.data.length, buf.length, 'length differs');
    assert.ok(m.data.equals(buf), 'payload differs');
    const seen = peer.events.find(
      (e) => e.event === 'message' && e.side === 'listener' && e.length === buf.length,
    );
    assert.ok(seen, 'listener never saw a 100 KiB message');
    assert.equal(seen.sha256, crypto.createHash('sha256').update(buf).digest('hex'), 'listener saw different bytes');
    assert.equal(seen.binary, true, 'listener saw the message as text');
  } finally {
    await peer.call('senderTerminate', { sid: s.sid });
  }
});

test('hyco-ws: sub-protocol "proto-a, proto-b" offered, listener picks proto-a, sender gets proto-a', { timeout: T(20000) }, async () => {
  // relayedConnect cannot offer protocols; this is the same ws 1.x
  // constructor hyco-ws uses, with a protocol list (joined as "proto-a, proto-b").
  const mark = peer.events.length;
  const s = await connectSender({ protocols: ['proto-a', ' proto-b'] });
  try {
    assert.equal(s.protocol, 'proto-a', `sender negotiated ${JSON.stringify(s.protocol)}`);
    const open = await peer.waitEvent(
      (e) => e.event === 'open' && e.side === 'listener' && peer.events.indexOf(e) >= mark,
      T(5000),
      'listener rendezvous open',
    );
    assert.equal(open.protocol, 'proto-a', 'listener rendezvous socket did not get proto-a back from the relay');
    const m = await peer.echo(s.sid, 'with protocol');
    assert.equal(m.data.toString(), 'with protocol');
  } finally {
    await peer.call('senderTerminate', { sid: s.sid });
  }
});

test('ws 8 sender (ServiceBusAuthorization header): sub-protocol passthrough and echo', { timeout: T(20000) }, async () => {
  const r = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: sendToken(), protocols: ['proto-a', 'proto-b'] });
  assert.ok(r.ok, `ws 8 sender: ${describe(r)}${logCtx(relay)}`);
  try {
    assert.equal(r.protocol, 'proto-a');
    assert.equal(r.headers['sec-websocket-protocol'], 'proto-a');
    assert.equal(r.headers['sec-websocket-extensions'], undefined, 'relay negotiated an extension');
    const p = nextMessage(r.ws);
    r.ws.send('ws8 text');
    const m = await p;
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), 'ws8 text');
  } finally {
    closeQuietly(r.ws);
  }
});

test('ws 8 sender: 200 pipelined messages (text/binary, 0 B..64 KiB) keep order, type and boundaries', { timeout: T(40000) }, async () => {
  const r = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: sendToken() });
  assert.ok(r.ok, `ws 8 sender: ${describe(r)}${logCtx(relay)}`);
  try {
    const sent = [];
    for (let i = 0; i < 200; i++) {
      const size = [0, 1, 125, 126, 127, 65535, 65536, 1000][i % 8] + (i % 3);
      const binary = i % 2 === 1;
      const payload = binary ? crypto.randomBytes(size) : Buffer.from(`${i}:`.padEnd(size, 'x').slice(0, Math.max(size, 0)));
      sent.push({ binary, payload });
    }
    const got = [];
    const all = new Promise((resolve, reject) => {
      r.ws.on('message', (d, isBinary) => {
        got.push({ binary: isBinary, payload: d });
        if (got.length === sent.length) resolve();
      });
      r.ws.on('close', (c) => reject(new Error(`closed ${c} after ${got.length} messages`)));
    });
    for (const s of sent) r.ws.send(s.payload, { binary: s.binary });
    await withTimeout(all, T(30000), '200 echoes').catch((e) => assert.fail(`${e.message}: got ${got.length}/200${logCtx(relay, 15)}`));
    for (let i = 0; i < sent.length; i++) {
      assert.equal(got[i].binary, sent[i].binary, `message ${i} type`);
      assert.ok(got[i].payload.equals(sent[i].payload), `message ${i} payload (len ${sent[i].payload.length} vs ${got[i].payload.length})`);
    }
  } finally {
    closeQuietly(r.ws);
  }
});

test('ws 8 sender: one 4 MiB binary message is relayed intact', { timeout: T(40000) }, async () => {
  const r = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: sendToken() });
  assert.ok(r.ok, `ws 8 sender: ${describe(r)}${logCtx(relay)}`);
  try {
    const buf = crypto.randomBytes(4 * 1024 * 1024);
    const p = nextMessage(r.ws, T(30000));
    r.ws.send(buf);
    const m = await p;
    assert.equal(m.data.length, buf.length);
    assert.ok(m.data.equals(buf), '4 MiB payload differs');
  } finally {
    closeQuietly(r.ws);
  }
});

test('close code and reason: sender closes 4001 "bye-from-sender", listener sees it', { timeout: T(25000) }, async () => {
  const mark = peer.events.length;
  const s = await connectSender();
  const conn = await peer.waitEvent((e) => e.event === 'open' && e.side === 'listener' && peer.events.indexOf(e) >= mark, T(5000), 'listener open');
  const m = await peer.echo(s.sid, 'before close');
  assert.equal(m.data.toString(), 'before close');
  await peer.call('senderClose', { sid: s.sid, code: 4001, reason: 'bye-from-sender' });
  const lc = await peer.waitEvent((e) => e.event === 'close' && e.side === 'listener' && e.cid === conn.cid, T(15000), 'listener close event');
  assert.equal(lc.code, 4001, `listener close code${logCtx(relay)}`);
  assert.equal(lc.reason, 'bye-from-sender');
  const sc = await peer.waitEvent((e) => e.event === 'close' && e.side === 'sender' && e.sid === s.sid, T(15000), 'sender close event');
  assert.ok(sc, 'sender close event');
});

test('close code and reason: listener closes 4002 "bye-from-listener", sender sees it', { timeout: T(25000) }, async () => {
  const mark = peer.events.length;
  const s = await connectSender();
  const conn = await peer.waitEvent((e) => e.event === 'open' && e.side === 'listener' && peer.events.indexOf(e) >= mark, T(5000), 'listener open');
  const m = await peer.echo(s.sid, 'before close');
  assert.equal(m.data.toString(), 'before close');
  await peer.call('connClose', { cid: conn.cid, code: 4002, reason: 'bye-from-listener' });
  const sc = await peer.waitEvent((e) => e.event === 'close' && e.side === 'sender' && e.sid === s.sid, T(15000), 'sender close event');
  assert.equal(sc.code, 4002, `sender close code${logCtx(relay)}`);
  assert.equal(sc.reason, 'bye-from-listener');
  await peer.waitEvent((e) => e.event === 'close' && e.side === 'listener' && e.cid === conn.cid, T(15000), 'listener close event');
});

test('ws 8 sender: close 1000 with a 123-byte reason reaches the listener and is echoed back', { timeout: T(20000) }, async () => {
  const mark = peer.events.length;
  const r = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: sendToken() });
  assert.ok(r.ok, describe(r));
  const reason = 'r'.repeat(123);
  const closedP = waitClose(r.ws, T(15000));
  r.ws.close(1000, reason);
  const lc = await peer.waitEvent((e) => e.event === 'close' && e.side === 'listener' && peer.events.indexOf(e) >= mark, T(15000), 'listener close');
  assert.equal(lc.code, 1000);
  assert.equal(lc.reason, reason);
  const c = await closedP;
  assert.equal(c.code, 1000);
});

test('TLS trust: a hyco-ws peer without the test CA fails verification; the same peer with verification off connects', { timeout: T(40000) }, async () => {
  // Without the CA the TLS handshake must fail on certificate verification.
  const untrusting = new HycoPeer(relay, { trustCA: false });
  try {
    const r = await untrusting.connect(relay.connectUrl('hc'), sendToken());
    assert.equal(r.ok, false, 'connected although the test CA is not trusted');
    assert.match(String(r.error), /self[- ]signed|unable to verify|certificate/i, `unexpected error: ${JSON.stringify(r)}`);
  } finally {
    await untrusting.stop();
  }
  // ws 8 without `ca`: same failure.
  const w = await tryWs(relay.connectUrl('hc'), { token: sendToken() });
  assert.equal(w.ok, false);
  assert.match(String(w.error && w.error.code), /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
  // Contrast (the only place verification is switched off): the failure was
  // about trust only.
  const lax = new HycoPeer(relay, { trustCA: false, env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' } });
  try {
    const r = await lax.connect(relay.connectUrl('hc'), sendToken());
    assert.ok(r.ok, `with verification off: ${JSON.stringify(r)}`);
    await lax.call('senderTerminate', { sid: r.sid });
  } finally {
    await lax.stop();
  }
});

relayEpilogue(() => relay);
