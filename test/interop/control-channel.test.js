'use strict';
// Control channel: ping/pong, renewToken (good and bad), token expiry with
// token_grace, oversized control messages, client close.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRelay, T, sleep, newKey, withTimeout, sasToken } = require('./lib/relay');
const { tryWs, describe, RawListener, closeQuietly, waitClose, nextMessage, rawWsOpen, FrameReader } = require('./lib/wsclient');
const { ASAN } = require('./lib/agent');
const { logCtx, relayEpilogue } = require('./lib/suite');

const GRACE = 2;
let relay;

before(async () => {
  relay = await startRelay({ relay: { token_grace: GRACE, clock_skew: 0 } });
}, { timeout: T(60000) });

after(async () => {
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

const now = () => Math.floor(Date.now() / 1000);
const hcUri = () => `http://localhost:${relay.port}/hc`;
const listenToken = (opts) => relay.sas(hcUri(), 'hc/listenOnly', opts);

function openListener(token = listenToken()) {
  return RawListener.open(relay.listenUrl('hc'), { ca: relay.ca, token });
}

// One sender through the listener (which must autoEcho); returns the echo.
async function roundTrip(text) {
  const s = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: relay.token(relay.connectUrl('hc'), 'hc/sendOnly') });
  assert.ok(s.ok, `sender: ${describe(s)}${logCtx(relay, 15)}`);
  try {
    const p = nextMessage(s.ws);
    s.ws.send(text);
    return (await p).data.toString();
  } finally {
    closeQuietly(s.ws);
  }
}

test('a WebSocket ping on the control channel gets a pong with the same payload', { timeout: T(15000) }, async () => {
  const l = await openListener();
  try {
    const pong = withTimeout(new Promise((r) => l.ws.once('pong', (d) => r(d.toString()))), T(5000), 'pong');
    l.ws.ping('are-you-there');
    assert.equal(await pong, 'are-you-there');
    // an unsolicited pong (what hyco-https sends as keep-alive) is harmless
    l.ws.pong('keepalive');
    await sleep(300);
    const pong2 = withTimeout(new Promise((r) => l.ws.once('pong', (d) => r(d.toString()))), T(5000), 'second pong');
    l.ws.ping('');
    assert.equal(await pong2, '');
    assert.equal(l.closed, null);
  } finally {
    l.close();
  }
});

test('renewToken with a fresh token is accepted: channel stays open and keeps receiving accepts', { timeout: T(20000) }, async () => {
  const l = await openListener();
  l.autoEcho();
  try {
    l.send({ renewToken: { token: listenToken({ ttl: 7200 }) } });
    // a second renewal with a .NET-style token, JSON written with escapes
    const t2 = relay.sas('http://localhost/hc/', 'hc/listenOnly', { ttl: 7200 });
    l.send(JSON.stringify({ renewToken: { token: t2 } }).replace('SharedAccess', '\\u0053haredAccess'));
    await sleep(1000);
    assert.equal(l.closed, null, `channel closed after renewToken: ${JSON.stringify(l.closed)}${logCtx(relay, 15)}`);
    assert.equal(await roundTrip('after renew'), 'after renew');
    const pong = withTimeout(new Promise((r) => l.ws.once('pong', r)), T(5000), 'pong after renew');
    l.ws.ping();
    await pong;
  } finally {
    l.close();
  }
});

test('renewToken with a bad token closes the channel with 1008 (wrong key, expired, Send-only rule, garbage)', { timeout: T(40000) }, async () => {
  const bad = {
    'wrong key': sasToken(hcUri(), 'listenOnly', newKey()),
    expired: listenToken({ se: now() - 600 }),
    'Send-only rule': relay.sas(hcUri(), 'hc/sendOnly'),
    garbage: 'SharedAccessSignature sr=&sig=&se=x&skn=',
  };
  for (const [what, token] of Object.entries(bad)) {
    const l = await openListener();
    try {
      const closed = waitClose(l.ws, T(8000));
      l.send({ renewToken: { token } });
      let c;
      try {
        c = await closed;
      } catch (e) {
        assert.fail(`${what}: channel not closed after a bad renewToken${logCtx(relay, 15)}`);
      }
      assert.equal(c.code, 1008, `${what}: close code${logCtx(relay, 15)}`);
    } finally {
      l.close();
    }
  }
});

test(`token expiring in ~3 s, no renewal, token_grace = ${GRACE}: relay closes with 1008 in bounded time`, { timeout: T(40000) }, async () => {
  const se = now() + 3;
  const l = await openListener(listenToken({ se }));
  try {
    const c = await waitClose(l.ws, T(20000)).catch(() => null);
    assert.ok(c, `control channel still open ${Date.now() / 1000 - se} s after expiry${logCtx(relay, 15)}`);
    assert.equal(c.code, 1008, `close code${logCtx(relay, 15)}`);
    const lateBy = Date.now() / 1000 - se;
    // not before expiry + grace (1 s slack for whole-second clocks)
    assert.ok(lateBy >= GRACE - 1, `closed ${lateBy.toFixed(2)} s after expiry, before the ${GRACE} s grace`);
    assert.ok(lateBy <= GRACE + (T(8000) / 1000), `closed ${lateBy.toFixed(2)} s after expiry`);
  } finally {
    l.close();
  }
});

test('token expiring in ~3 s but renewed after ~1 s: the channel outlives expiry + grace', { timeout: T(40000) }, async () => {
  const se = now() + 3;
  const l = await openListener(listenToken({ se }));
  l.autoEcho();
  try {
    await sleep(1000);
    l.send({ renewToken: { token: listenToken({ ttl: 3600 }) } });
    const waitUntil = (se + GRACE + 3) * 1000;
    while (Date.now() < waitUntil && !l.closed) await sleep(200);
    assert.equal(l.closed, null, `renewed channel was closed: ${JSON.stringify(l.closed)}${logCtx(relay, 15)}`);
    assert.equal(await roundTrip('renewed'), 'renewed');
  } finally {
    l.close();
  }
});

test('a control message over 64 KiB closes the channel with 1009', { timeout: T(20000) }, async () => {
  const l = await openListener();
  try {
    const closed = waitClose(l.ws, T(10000));
    l.send({ renewToken: { token: listenToken() }, pad: 'x'.repeat(70 * 1024) });
    const c = await closed.catch(() => null);
    assert.ok(c, `channel not closed${logCtx(relay, 15)}`);
    assert.equal(c.code, 1009, `close code${logCtx(relay, 15)}`);
  } finally {
    l.close();
  }
});

test('listener-initiated close (1000, and a close frame without status code) is answered', { timeout: T(20000) }, async () => {
  const l1 = await openListener();
  const c1 = waitClose(l1.ws, T(8000));
  l1.ws.close(1000, 'bye');
  const r1 = await c1.catch(() => null);
  assert.ok(r1, 'no close handshake after close(1000)');
  assert.equal(r1.code, 1000);
  const l2 = await openListener();
  const c2 = waitClose(l2.ws, T(8000));
  l2.ws.close(); // empty close payload, as hyco-https sends
  const r2 = await c2.catch(() => null);
  assert.ok(r2, 'no close handshake after an empty close frame');
  // echoing "no status" (1005) or answering 1000 are both fine
  assert.ok(r2.code === 1005 || r2.code === 1000, `answered ${r2.code}`);
});

test('a listener that goes away is no longer offered senders (404 no listeners)', { timeout: T(20000) }, async () => {
  const l = await openListener();
  const c = waitClose(l.ws, T(8000));
  l.ws.close(1000);
  await c;
  let r;
  for (let i = 0; i < 20; i++) {
    r = await tryWs(relay.connectUrl('hc'), { ca: relay.ca, token: relay.token(relay.connectUrl('hc'), 'hc/sendOnly'), ms: T(5000) });
    if (r.ok) closeQuietly(r.ws);
    if (r.status === 404) break;
    await sleep(100);
  }
  assert.equal(r.status, 404, `sender after the only listener left: ${describe(r)}`);
});

relayEpilogue(() => relay);

test('hcrelay pings its listeners (ping_interval = 1): one that never answers is closed after two unanswered pings, one that answers stays', { timeout: T(40000) }, async () => {
  const r2 = await startRelay({ relay: { ping_interval: 1 } });
  try {
    const token = r2.token(r2.listenUrl('hc'), 'hc/listenOnly');
    const good = await RawListener.open(r2.listenUrl('hc'), { ca: r2.ca, token }); // ws answers pings
    const mute = await rawWsOpen(r2, '/$hc/hc?sb-hc-action=listen', { ServiceBusAuthorization: token });
    const frames = new FrameReader(mute.sock, mute.rest);
    const t0 = Date.now();
    await withTimeout(r2.waitForLog(/listener \S+: no answer to two pings, closing/, T(10000)), T(10000), 'relay closes the mute listener');
    const ms = Date.now() - t0;
    await frames.waitEnd(T(5000)).catch(() => {});
    const pings = frames.frames.filter((f) => f.opcode === 0x9).length;
    assert.ok(pings >= 2, `the mute listener got ${pings} pings`);
    assert.ok(ms >= 2000 && ms <= 4000 + (ASAN ? 2000 : 0), `closed ${ms} ms after it joined (two pings a second apart, then the check)`);
    assert.ok(frames.ended, 'the mute listener connection ended');
    await sleep(2500);
    assert.equal(good.closed, null, `the answering listener was closed: ${JSON.stringify(good.closed)}${logCtx(r2, 10)}`);
    assert.equal((r2.stderr().match(/no answer to two pings/g) || []).length, 1, `only the mute listener was closed${logCtx(r2, 10)}`);
    good.close();
    const e = await r2.stop(T(10000));
    assert.equal(r2.sanitizerReport(), null, 'sanitizer report');
    assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `hcrelay exit${logCtx(r2, 10)}`);
  } finally {
    await r2.cleanup();
  }
});
