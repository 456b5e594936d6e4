'use strict';
// Hand-written listener (ws 8, raw control channel): the accept message,
// rejecting senders (both query spellings), single-use accept addresses,
// path suffix / app query dispatch, rendezvous timeout.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startRelay, T, sleep } = require('./lib/relay');
const {
  tryWs, describe, nextMessage, closeQuietly, RawListener, rawWsOpen, encodeFrame, FrameReader, headerValue,
  tlsConnect, upgradeRequest,
} = require('./lib/wsclient');
const { logCtx, relayEpilogue } = require('./lib/suite');

const RENDEZVOUS_TIMEOUT = 3;
let relay;
let listener; // the only listener on "hc"

before(async () => {
  relay = await startRelay({ relay: { rendezvous_timeout: RENDEZVOUS_TIMEOUT } });
  listener = await RawListener.open(relay.listenUrl('hc'), {
    ca: relay.ca,
    token: relay.token(relay.listenUrl('hc'), 'hc/listenOnly'),
  });
}, { timeout: T(60000) });

after(async () => {
  if (listener) listener.close();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

const sendToken = () => relay.token(relay.connectUrl('hc'), 'hc/sendOnly');

// Starts a ws 8 sender (does not wait for the outcome).
function startSender(url = relay.connectUrl('hc'), opts = {}) {
  return tryWs(url, { ca: relay.ca, token: sendToken(), ...opts });
}

test('accept JSON carries address, id, connectHeaders (incl. Sec-WebSocket-Key) and remoteEndpoint with an integer port', { timeout: T(30000) }, async () => {
  const key = crypto.randomBytes(16).toString('base64');
  const senderP = rawWsOpen(relay, `/$hc/hc?sb-hc-action=connect`, {
    ServiceBusAuthorization: sendToken(),
    'X-Interop-Test': 'hello header',
  }, { key });
  senderP.catch(() => {});
  const a = await listener.nextAccept();
  const raw = listener.messages.find((m) => m.json && m.json.accept === a);
  assert.ok(raw && !raw.isBinary, 'accept must be a text frame');
  assert.deepEqual(Object.keys(raw.json), ['accept'], 'exactly one top-level key');
  assert.equal(typeof a.address, 'string');
  assert.equal(typeof a.id, 'string');
  assert.ok(a.id.length > 0);
  const u = new URL(a.address);
  assert.equal(u.protocol, 'wss:');
  assert.equal(u.hostname, 'localhost');
  assert.equal(Number(u.port), relay.port);
  assert.equal(u.pathname, '/$hc/hc');
  assert.equal(u.searchParams.get('sb-hc-action'), 'accept');
  assert.equal(u.searchParams.get('sb-hc-id'), a.id, 'sb-hc-id in the address equals id');
  assert.equal(u.searchParams.get('sb-hc-token'), null, 'no token in the accept address');
  assert.equal(typeof a.connectHeaders, 'object');
  assert.equal(headerValue(a.connectHeaders, 'Sec-WebSocket-Key'), key, 'connectHeaders carries the sender Sec-WebSocket-Key');
  assert.equal(headerValue(a.connectHeaders, 'Sec-WebSocket-Version'), '13');
  assert.equal(headerValue(a.connectHeaders, 'X-Interop-Test'), 'hello header', 'custom sender header forwarded');
  for (const v of Object.values(a.connectHeaders)) assert.equal(typeof v, 'string', 'connectHeaders values are strings');
  assert.equal(headerValue(a.connectHeaders, 'ServiceBusAuthorization'), undefined, 'sender token must not be forwarded to the listener');
  assert.ok(a.remoteEndpoint, 'remoteEndpoint present');
  assert.equal(a.remoteEndpoint.address, '127.0.0.1');
  assert.ok(Number.isInteger(a.remoteEndpoint.port), `remoteEndpoint.port is ${JSON.stringify(a.remoteEndpoint.port)}`);
  assert.ok(a.remoteEndpoint.port > 0 && a.remoteEndpoint.port < 65536);

  // Join and check the sender's 101 and a frame both ways.
  const j = await listener.join(a.address, { echo: true });
  assert.ok(j.ok, `join: ${describe(j)}`);
  const s = await senderP; // throws unless 101 with the right Sec-WebSocket-Accept
  const fr = new FrameReader(s.sock, s.rest);
  try {
    s.sock.write(encodeFrame('raw hello', { opcode: 1 }));
    const f = await fr.waitFrame((x) => x.opcode === 1);
    assert.ok(f, 'connection ended before the echo');
    assert.equal(f.masked, false, 'relay must not mask frames towards a client');
    assert.equal(f.payload.toString(), 'raw hello');
  } finally {
    s.sock.destroy();
    closeQuietly(j.ws);
  }
});

async function rejectCase(extra, what) {
  const senderP = startSender();
  const a = await listener.nextAccept();
  const j = await listener.join(a.address, { extra });
  if (j.ok) closeQuietly(j.ws);
  assert.equal(j.status, 410, `${what}: rejecting listener expected 410, got ${describe(j)}${logCtx(relay, 15)}`);
  const s = await senderP;
  if (s.ok) closeQuietly(s.ws);
  assert.equal(s.status, 401, `${what}: sender expected 401, got ${describe(s)}${logCtx(relay, 15)}`);
  assert.equal(s.reason, 'Nope from test', `${what}: sender status line reason`);
}

test('reject with sb-hc-statusCode=401&sb-hc-statusDescription: listener gets 410, sender gets "401 Nope from test"', { timeout: T(30000) }, async () => {
  await rejectCase('&sb-hc-statusCode=401&sb-hc-statusDescription=Nope%20from%20test', 'sb-hc- spelling');
});

test('reject with the Node spelling statusCode=401&statusDescription: same result', { timeout: T(30000) }, async () => {
  await rejectCase('&statusCode=401&statusDescription=Nope%20from%20test', 'unprefixed spelling');
});

test('reject with another status (503) and a "+"-free description passes through', { timeout: T(30000) }, async () => {
  const senderP = startSender();
  const a = await listener.nextAccept();
  const j = await listener.join(a.address, { extra: '&sb-hc-statusCode=503&sb-hc-statusDescription=Busy%2C%20try%20later' });
  assert.equal(j.status, 410, `listener: ${describe(j)}`);
  const s = await senderP;
  assert.equal(s.status, 503, `sender: ${describe(s)}`);
  assert.equal(s.reason, 'Busy, try later');
});

test('an accept address works once; a second use fails', { timeout: T(30000) }, async () => {
  const senderP = startSender();
  const a = await listener.nextAccept();
  const j1 = await listener.join(a.address);
  assert.ok(j1.ok, `first join: ${describe(j1)}`);
  const s = await senderP;
  assert.ok(s.ok, `sender: ${describe(s)}`);
  try {
    const j2 = await listener.join(a.address);
    if (j2.ok) closeQuietly(j2.ws);
    assert.equal(j2.ok, false, 'second use of an accept address was accepted');
    assert.ok(j2.status >= 400 && j2.status < 500, `second join: ${describe(j2)}`);
    // the first pair is unaffected
    const p = nextMessage(s.ws);
    s.ws.send('still joined');
    assert.equal((await p).data.toString(), 'still joined');
  } finally {
    closeQuietly(s.ws);
    closeQuietly(j1.ws);
  }
});

test('a made-up accept id is refused with 4xx', { timeout: T(20000) }, async () => {
  const j = await tryWs(`${relay.base}/$hc/hc?sb-hc-action=accept&sb-hc-id=${crypto.randomUUID()}`, { ca: relay.ca });
  if (j.ok) closeQuietly(j.ws);
  assert.ok(!j.ok && j.status >= 400 && j.status < 500, `bogus accept: ${describe(j)}`);
});

test('sender path suffix and app query appear in the accept address (sb-hc-* removed except action/id)', { timeout: T(30000) }, async () => {
  const t = sendToken();
  const url = `${relay.base}/$hc/hc/sub/path?x=1&y=two%20words&sb-hc-action=connect&sb-hc-token=${encodeURIComponent(t)}`;
  const senderP = tryWs(url, { ca: relay.ca });
  const a = await listener.nextAccept();
  const u = new URL(a.address);
  assert.equal(u.pathname, '/$hc/hc/sub/path', `accept address ${a.address}`);
  assert.equal(u.searchParams.get('x'), '1');
  assert.equal(u.searchParams.get('y'), 'two words');
  assert.equal(u.searchParams.get('sb-hc-action'), 'accept');
  assert.equal(u.searchParams.get('sb-hc-id'), a.id);
  assert.equal(u.searchParams.get('sb-hc-token'), null, 'sender token leaked into the accept address');
  assert.ok(a.address.indexOf('x=1') < a.address.indexOf('sb-hc-action'), 'app query comes before sb-hc-action');
  const j = await listener.join(a.address);
  assert.ok(j.ok, `join: ${describe(j)}`);
  const s = await senderP;
  assert.ok(s.ok, `sender: ${describe(s)}`);
  const p = nextMessage(s.ws);
  s.ws.send('suffix ok');
  assert.equal((await p).data.toString(), 'suffix ok');
  closeQuietly(s.ws);
  closeQuietly(j.ws);
});

test('listener never joins: sender gets 404 after rendezvous_timeout; the stale address is then refused', { timeout: T(40000) }, async () => {
  const t0 = Date.now();
  const senderP = startSender(relay.connectUrl('hc'), { ms: T(20000) });
  const a = await listener.nextAccept();
  const s = await senderP;
  const elapsed = Date.now() - t0;
  if (s.ok) closeQuietly(s.ws);
  assert.equal(s.status, 404, `sender: ${describe(s)}${logCtx(relay, 15)}`);
  assert.match(s.reason || '', /ConnectionNotEstablished|not established|accept/i, 'reason phrase');
  assert.ok(elapsed >= (RENDEZVOUS_TIMEOUT - 1) * 1000, `gave up after ${elapsed} ms, before rendezvous_timeout`);
  const j = await listener.join(a.address);
  if (j.ok) closeQuietly(j.ws);
  assert.equal(j.ok, false, 'stale accept address was accepted');
});

test('sender leaves before the listener joins: the late join does not produce a live pipe', { timeout: T(30000) }, async () => {
  const sock = await tlsConnect(relay);
  sock.on('error', () => {});
  sock.write(upgradeRequest(relay, '/$hc/hc?sb-hc-action=connect', { ServiceBusAuthorization: sendToken() }));
  const a = await listener.nextAccept();
  sock.destroy(); // the sender gives up while its upgrade is pending
  await sleep(300);
  const j = await listener.join(a.address);
  if (j.ok) {
    // acceptable only if the relay closes it promptly (the sender is gone)
    const code = await new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), T(5000));
      j.ws.once('close', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    closeQuietly(j.ws);
    assert.notEqual(code, null, 'relay kept a rendezvous open for a sender that is gone');
  } else {
    assert.ok(j.status >= 400, describe(j));
  }
});

test('the listener control channel survived all of the above', { timeout: T(10000) }, async () => {
  assert.equal(listener.closed, null, `control channel closed: ${JSON.stringify(listener.closed)}`);
  const senderP = startSender();
  const a = await listener.nextAccept();
  const j = await listener.join(a.address);
  const s = await senderP;
  assert.ok(j.ok && s.ok, `join ${describe(j)} / sender ${describe(s)}`);
  closeQuietly(s.ws);
  closeQuietly(j.ws);
});

relayEpilogue(() => relay);
