'use strict';
// SAS token and rights matrix on listen and connect; 25-listener quota;
// requires_client_authorization = false.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRelay, standardEntities, newKey, T } = require('./lib/relay');
const { HycoPeer } = require('./lib/peers');
const { tryWs, describe, nextMessage, closeQuietly, RawListener, waitClose } = require('./lib/wsclient');
const { logCtx, relayEpilogue } = require('./lib/suite');

let relay;
let peer; // hyco-ws echo listener on "hc"

before(async () => {
  const entities = standardEntities();
  entities.hcs.push({ name: 'quota', rules: [] });
  relay = await startRelay({ entities });
  peer = new HycoPeer(relay);
  await peer.listen(relay.listenUrl('hc'), relay.token(relay.listenUrl('hc'), 'hc/listenOnly'));
}, { timeout: T(60000) });

after(async () => {
  if (peer) await peer.stop();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

const now = () => Math.floor(Date.now() / 1000);
const nodeUri = (hc) => `http://localhost:${relay.port}/${hc}`; // what createRelayToken signs

// Expects the handshake to fail with `status`; optional reason regexp.
async function expectStatus(url, opts, status, reasonRe, what) {
  const r = await tryWs(url, { ca: relay.ca, ...opts });
  if (r.ok) closeQuietly(r.ws);
  assert.equal(r.status, status, `${what}: expected ${status}, got ${describe(r)}${logCtx(relay, 15)}`);
  if (reasonRe) assert.match(r.reason, reasonRe, `${what}: reason phrase`);
  return r;
}

// Expects a control channel to open (then closes it).
async function expectListenOk(url, opts, what) {
  const r = await tryWs(url, { ca: relay.ca, ...opts });
  assert.ok(r.ok, `${what}: listen failed: ${describe(r)}${logCtx(relay, 15)}`);
  const c = waitClose(r.ws, T(5000)).catch(() => null);
  r.ws.close(1000);
  await c;
}

// Expects a sender to get through to the hyco-ws echo listener on "hc".
async function expectConnectOk(url, opts, what) {
  const r = await tryWs(url, { ca: relay.ca, ...opts });
  assert.ok(r.ok, `${what}: connect failed: ${describe(r)}${logCtx(relay, 15)}`);
  try {
    const p = nextMessage(r.ws);
    r.ws.send(what);
    const m = await p;
    assert.equal(m.data.toString(), what, `${what}: echo`);
  } finally {
    closeQuietly(r.ws);
  }
}

test('missing token → 401 on listen and on connect', { timeout: T(20000) }, async () => {
  await expectStatus(relay.listenUrl('hc'), {}, 401, null, 'listen without token');
  await expectStatus(relay.connectUrl('hc'), {}, 401, null, 'connect without token');
});

test('wrong key → 401 on listen and on connect', { timeout: T(20000) }, async () => {
  const bad = newKey();
  const lt = require('hyco-ws').createRelayToken(relay.listenUrl('hc'), 'RootManageSharedAccessKey', bad);
  const ct = require('hyco-ws').createRelayToken(relay.connectUrl('hc'), 'RootManageSharedAccessKey', bad);
  await expectStatus(relay.listenUrl('hc'), { token: lt }, 401, null, 'listen, wrong key');
  await expectStatus(relay.connectUrl('hc'), { token: ct }, 401, null, 'connect, wrong key');
  // a rule name nobody configured
  const ut = require('hyco-ws').createRelayToken(relay.connectUrl('hc'), 'noSuchRule', relay.key('RootManageSharedAccessKey'));
  await expectStatus(relay.connectUrl('hc'), { token: ut }, 401, null, 'connect, unknown rule name');
});

test('Send-only rule used to listen → 403 (namespace rule and entity rule)', { timeout: T(20000) }, async () => {
  await expectStatus(relay.listenUrl('hc'), { token: relay.token(relay.listenUrl('hc'), 'nsSend') }, 403, null, 'listen with nsSend');
  await expectStatus(relay.listenUrl('hc'), { token: relay.token(relay.listenUrl('hc'), 'hc/sendOnly') }, 403, null, 'listen with hc/sendOnly');
});

test('Listen-only rule used to send → 403 (namespace rule and entity rule)', { timeout: T(20000) }, async () => {
  // a listener is connected, so 403 cannot be confused with "no listener"
  await expectStatus(relay.connectUrl('hc'), { token: relay.token(relay.connectUrl('hc'), 'nsListen') }, 403, null, 'connect with nsListen');
  await expectStatus(relay.connectUrl('hc'), { token: relay.token(relay.connectUrl('hc'), 'hc/listenOnly') }, 403, null, 'connect with hc/listenOnly');
});

test('unknown HC → 404 "Endpoint does not exist" on listen and on connect', { timeout: T(20000) }, async () => {
  const lt = relay.sas('http://localhost/', 'RootManageSharedAccessKey');
  await expectStatus(relay.listenUrl('nope'), { token: lt }, 404, /Endpoint does not exist/, 'listen on unknown HC');
  await expectStatus(relay.connectUrl('nope'), { token: lt }, 404, /Endpoint does not exist/, 'connect to unknown HC');
});

test('no listener connected → 404 "There are no listeners connected for the endpoint"', { timeout: T(20000) }, async () => {
  const t = relay.token(relay.connectUrl('other'), 'RootManageSharedAccessKey');
  await expectStatus(relay.connectUrl('other'), { token: t }, 404, /^There are no listeners connected for the endpoint/, 'connect to HC without listener');
});

test('token scoped to another HC → 403 on listen and on connect', { timeout: T(20000) }, async () => {
  const t = relay.sas('http://localhost/other', 'RootManageSharedAccessKey');
  await expectStatus(relay.listenUrl('hc'), { token: t }, 403, null, 'listen on hc with token for other');
  await expectStatus(relay.connectUrl('hc'), { token: t }, 403, null, 'connect to hc with token for other');
  // a prefix that is not on a / boundary ("h" is not a parent of "hc")
  const p = relay.sas('http://localhost/h', 'RootManageSharedAccessKey');
  await expectStatus(relay.connectUrl('hc'), { token: p }, 403, null, 'connect to hc with token for "h"');
});

test('expired token → 401 on listen and on connect', { timeout: T(20000) }, async () => {
  const se = now() - 3600;
  await expectStatus(relay.listenUrl('hc'), { token: relay.sas(nodeUri('hc'), 'hc/listenOnly', { se }) }, 401, null, 'listen, expired');
  await expectStatus(relay.connectUrl('hc'), { token: relay.sas(nodeUri('hc'), 'hc/sendOnly', { se }) }, 401, null, 'connect, expired');
});

test('token in sb-hc-token query (encodeURIComponent) works exactly like the header', { timeout: T(30000) }, async () => {
  const lt = relay.token(relay.listenUrl('hc'), 'hc/listenOnly');
  const ct = relay.token(relay.connectUrl('hc'), 'hc/sendOnly');
  await expectListenOk(relay.listenUrl('hc', `&sb-hc-token=${encodeURIComponent(lt)}`), {}, 'listen, query token');
  await expectConnectOk(relay.connectUrl('hc', `&sb-hc-token=${encodeURIComponent(ct)}`), {}, 'connect, query token');
  // and the failures are the same as with the header
  const bad = require('hyco-ws').createRelayToken(relay.connectUrl('hc'), 'sendOnly', newKey());
  await expectStatus(relay.connectUrl('hc', `&sb-hc-token=${encodeURIComponent(bad)}`), {}, 401, null, 'connect, query token, wrong key');
  const wrongRight = relay.token(relay.listenUrl('hc'), 'hc/sendOnly');
  await expectStatus(relay.listenUrl('hc', `&sb-hc-token=${encodeURIComponent(wrongRight)}`), {}, 403, null, 'listen, query token, Send-only');
  // token first in the query, action after it
  await expectConnectOk(`${relay.base}/$hc/hc?sb-hc-token=${encodeURIComponent(ct)}&sb-hc-action=connect`, {}, 'connect, token before action');
});

test('query token with "+" for the space (.NET form encoding) works', { timeout: T(20000) }, async () => {
  const ct = relay.token(relay.connectUrl('hc'), 'hc/sendOnly');
  const q = encodeURIComponent(ct).replace(/%20/g, '+');
  assert.ok(q.startsWith('SharedAccessSignature+sr%3D'), q.slice(0, 40));
  await expectConnectOk(relay.connectUrl('hc', `&sb-hc-token=${q}`), {}, 'connect, + query token');
});

test('.NET-style token (sr=http://localhost/hc/, trailing slash, no port) works on listen and connect', { timeout: T(30000) }, async () => {
  await expectListenOk(relay.listenUrl('hc'), { token: relay.sas('http://localhost/hc/', 'hc/listenOnly') }, 'listen, .NET token');
  await expectConnectOk(relay.connectUrl('hc'), { token: relay.sas('http://localhost/hc/', 'hc/sendOnly') }, 'connect, .NET token');
});

test('namespace-wide token (sr=http://localhost/) works on listen and connect', { timeout: T(30000) }, async () => {
  const t = relay.sas('http://localhost/', 'RootManageSharedAccessKey');
  await expectListenOk(relay.listenUrl('hc'), { token: t }, 'listen, namespace token');
  await expectConnectOk(relay.connectUrl('hc'), { token: t }, 'connect, namespace token');
  const s = relay.sas('http://localhost/', 'nsSend');
  await expectConnectOk(relay.connectUrl('hc'), { token: s }, 'connect, namespace Send-rule token');
});

test('sr variants: sb:// scheme, lower-case %2f escapes, upper-case host, other field order, secondary key', { timeout: T(30000) }, async () => {
  await expectConnectOk(relay.connectUrl('hc'), { token: relay.sas('sb://localhost/hc', 'hc/sendOnly') }, 'sb scheme');
  await expectConnectOk(relay.connectUrl('hc'), { token: relay.sas('http://localhost/hc/', 'hc/sendOnly', { lowerEscapes: true }) }, 'lower-case escapes');
  await expectConnectOk(relay.connectUrl('hc'), { token: relay.sas('http://LOCALHOST/hc', 'hc/sendOnly') }, 'upper-case host');
  await expectConnectOk(relay.connectUrl('hc'), { token: relay.sas('http://localhost/hc', 'hc/sendOnly', { order: ['skn', 'se', 'sig', 'sr'] }) }, 'field order');
  const { sasToken } = require('./lib/relay');
  const sec = sasToken('http://localhost/hc', 'RootManageSharedAccessKey', relay.keys.RootManageSharedAccessKey.secondary);
  await expectConnectOk(relay.connectUrl('hc'), { token: sec }, 'secondary key');
});

test('a sender request without sb-hc-action is a connect', { timeout: T(20000) }, async () => {
  await expectConnectOk(`${relay.base}/$hc/hc`, { token: relay.token(relay.connectUrl('hc'), 'hc/sendOnly') }, 'no action');
});

test('25 listeners on one HC succeed, the 26th is refused with 403 naming the quota', { timeout: T(90000) }, async () => {
  const t = relay.token(relay.listenUrl('quota'), 'RootManageSharedAccessKey');
  const open = [];
  try {
    for (let i = 0; i < 25; i++) {
      const r = await tryWs(relay.listenUrl('quota'), { ca: relay.ca, token: t });
      assert.ok(r.ok, `listener #${i + 1}: ${describe(r)}${logCtx(relay, 15)}`);
      r.ws.on('error', () => {});
      open.push(r.ws);
    }
    const r26 = await tryWs(relay.listenUrl('quota'), { ca: relay.ca, token: t });
    if (r26.ok) open.push(r26.ws);
    assert.equal(r26.status, 403, `26th listener: ${describe(r26)}`);
    assert.match(r26.reason || '', /quota|listeners|25/i, 'reason phrase should name the quota');
    // the 25 are untouched
    for (const ws of open.slice(0, 25)) assert.equal(ws.readyState, 1, 'an existing listener was dropped');
    // after one leaves, a new one fits again
    const c = waitClose(open[0], T(5000)).catch(() => null);
    open[0].close(1000);
    await c;
    let again;
    for (let tries = 0; tries < 20; tries++) {
      again = await tryWs(relay.listenUrl('quota'), { ca: relay.ca, token: t });
      if (again.ok || again.status !== 403) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(again.ok, `listener after one left: ${describe(again)}`);
    open.push(again.ws);
  } finally {
    for (const ws of open) closeQuietly(ws);
  }
});

test('requires_client_authorization = false: a sender with no token gets through', { timeout: T(30000) }, async () => {
  const l = await RawListener.open(relay.listenUrl('open'), { ca: relay.ca, token: relay.token(relay.listenUrl('open'), 'RootManageSharedAccessKey') });
  l.autoEcho();
  const hp = new HycoPeer(relay);
  try {
    // ws 8, no header at all
    const r = await tryWs(relay.connectUrl('open'), { ca: relay.ca });
    assert.ok(r.ok, `ws 8 sender without token: ${describe(r)}${logCtx(relay)}`);
    const p = nextMessage(r.ws);
    r.ws.send('open sesame');
    assert.equal((await p).data.toString(), 'open sesame');
    closeQuietly(r.ws);
    // hyco-ws relayedConnect with a null token
    const s = await hp.connect(relay.connectUrl('open'), null);
    assert.ok(s.ok, `hyco-ws sender without token: ${JSON.stringify(s)}`);
    const m = await hp.echo(s.sid, 'no token needed');
    assert.equal(m.data.toString(), 'no token needed');
  } finally {
    await hp.stop();
    l.close();
  }
});

test('requires_client_authorization = false: listening there still needs a valid Listen token', { timeout: T(20000) }, async () => {
  await expectStatus(relay.listenUrl('open'), {}, 401, null, 'listen on open HC without token');
  await expectStatus(relay.listenUrl('open'), { token: relay.sas('http://localhost/open', 'RootManageSharedAccessKey', { se: now() - 900 }) }, 401, null, 'listen on open HC, expired');
  await expectStatus(relay.listenUrl('open'), { token: relay.token(relay.listenUrl('open'), 'nsSend') }, 403, null, 'listen on open HC with Send rule');
  await expectListenOk(relay.listenUrl('open'), { token: relay.token(relay.listenUrl('open'), 'nsListen') }, 'listen on open HC with nsListen');
});

relayEpilogue(() => relay);
