'use strict';
// Runtime description: GET https://localhost:PORT/{hc}?api-version=2016-07
// (what HybridConnectionListener.GetRuntimeInformationAsync reads).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRelay, standardEntities, T, sleep } = require('./lib/relay');
const { RawListener, httpsGet } = require('./lib/wsclient');
const { logCtx, relayEpilogue } = require('./lib/suite');

const METADATA = '[{"key":"endpoint","value":"db.corp.local:1433"},{"key":"x","value":"<a & \'b\' > \\"c\\">"}]';
let relay;
const listeners = [];

before(async () => {
  const entities = standardEntities();
  entities.hcs[0].userMetadata = METADATA;
  relay = await startRelay({ entities });
}, { timeout: T(60000) });

after(async () => {
  for (const l of listeners) l.close();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

const path = (hc) => `/${hc}?api-version=2016-07`;
const auth = (rule, hc = 'hc') => ({ Authorization: relay.sas(`http://localhost/${hc}/`, rule, { ttl: 600 }), 'X-PROCESS-AT': 'ServiceBus' });

function xmlUnescape(s) {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}

function element(body, name) {
  const m = body.match(new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`));
  return m ? m[1] : null;
}

async function listenerCount(headers = auth('hc/listenOnly')) {
  const r = await httpsGet(relay, path('hc'), headers);
  assert.equal(r.status, 200, `GET: ${r.status} ${r.reason} ${r.body.slice(0, 300)}${logCtx(relay, 15)}`);
  const v = element(r.body, 'ListenerCount');
  assert.notEqual(v, null, `no ListenerCount in ${r.body}`);
  return Number(v);
}

async function expectCount(n) {
  let got;
  for (let i = 0; i < 30; i++) {
    got = await listenerCount();
    if (got === n) return;
    await sleep(100);
  }
  assert.equal(got, n, 'ListenerCount');
}

test('Listen-rule token in Authorization → 200 Atom entry with HybridConnectionDescription', { timeout: T(20000) }, async () => {
  const r = await httpsGet(relay, path('hc'), auth('hc/listenOnly'));
  assert.equal(r.status, 200, `${r.status} ${r.reason} ${r.body.slice(0, 300)}${logCtx(relay, 15)}`);
  assert.match(r.headers['content-type'] || '', /application\/(atom\+)?xml/, 'content-type');
  assert.match(r.body, /<entry[\s>][\s\S]*xmlns="http:\/\/www\.w3\.org\/2005\/Atom"/, 'Atom entry');
  assert.match(r.body, /<content[^>]*type="application\/xml"/, 'content type=application/xml');
  assert.match(r.body, /<HybridConnectionDescription[^>]*xmlns="http:\/\/schemas\.microsoft\.com\/netservices\/2010\/10\/servicebus\/connect"/);
  const order = ['CreatedAt', 'UpdatedAt', 'RequiresClientAuthorization', 'UserMetadata', 'ListenerCount'];
  const pos = order.map((n) => r.body.indexOf(`<${n}>`));
  for (let i = 0; i < order.length; i++) assert.ok(pos[i] >= 0, `missing <${order[i]}>`);
  for (let i = 1; i < order.length; i++) assert.ok(pos[i] > pos[i - 1], `<${order[i]}> must come after <${order[i - 1]}>`);
  assert.equal(element(r.body, 'RequiresClientAuthorization'), 'true');
  assert.ok(!Number.isNaN(Date.parse(element(r.body, 'CreatedAt'))), 'CreatedAt is a date');
  assert.ok(!Number.isNaN(Date.parse(element(r.body, 'UpdatedAt'))), 'UpdatedAt is a date');
});

test('UserMetadata is the configured text, XML-escaped', { timeout: T(20000) }, async () => {
  const r = await httpsGet(relay, path('hc'), auth('hc/listenOnly'));
  assert.equal(r.status, 200);
  const raw = element(r.body, 'UserMetadata');
  assert.notEqual(raw, null);
  assert.ok(!/<|&(?!(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(raw), `unescaped markup in UserMetadata: ${raw}`);
  assert.equal(xmlUnescape(raw), METADATA);
});

test('ListenerCount equals the number of connected listeners (0, 2, 1)', { timeout: T(30000) }, async () => {
  await expectCount(0);
  for (let i = 0; i < 2; i++) {
    listeners.push(await RawListener.open(relay.listenUrl('hc'), { ca: relay.ca, token: relay.token(relay.listenUrl('hc'), 'hc/listenOnly') }));
  }
  await expectCount(2);
  listeners.shift().close();
  await expectCount(1);
});

test('token in ServiceBusAuthorization and Manage/namespace tokens also work', { timeout: T(20000) }, async () => {
  const t = relay.sas('http://localhost/hc/', 'hc/listenOnly');
  assert.equal(await listenerCount({ ServiceBusAuthorization: t }), 1);
  const m = relay.sas('http://localhost/', 'RootManageSharedAccessKey');
  assert.equal(await listenerCount({ Authorization: m }), 1);
});

test('Send-only token → 403 (or 401); no token → 401; wrong key → 401', { timeout: T(20000) }, async () => {
  const s = await httpsGet(relay, path('hc'), auth('hc/sendOnly'));
  assert.ok(s.status === 403 || s.status === 401, `Send-only: ${s.status} ${s.reason}`);
  assert.doesNotMatch(s.body, /UserMetadata/, 'metadata leaked to a Send-only token');
  const n = await httpsGet(relay, path('hc'), {});
  assert.equal(n.status, 401, `no token: ${n.status} ${n.reason}`);
  assert.doesNotMatch(n.body, /UserMetadata/);
  const w = await httpsGet(relay, path('hc'), { Authorization: require('./lib/relay').sasToken('http://localhost/hc/', 'listenOnly', 'not-the-key') });
  assert.equal(w.status, 401, `wrong key: ${w.status} ${w.reason}`);
});

test('unknown HC → 200 Atom feed without an entry', { timeout: T(20000) }, async () => {
  const r = await httpsGet(relay, path('nope'), { Authorization: relay.sas('http://localhost/', 'RootManageSharedAccessKey') });
  assert.equal(r.status, 200, `${r.status} ${r.reason}${logCtx(relay, 15)}`);
  assert.match(r.headers['content-type'] || '', /type=feed/, 'content-type names type=feed');
  assert.match(r.body, /<feed[\s>]/, 'body is a feed');
  assert.doesNotMatch(r.body, /<entry[\s>]/, 'feed must have no entry');
  assert.doesNotMatch(r.body, /HybridConnectionDescription/);
});

test('requires_client_authorization = false HC reports false', { timeout: T(20000) }, async () => {
  const r = await httpsGet(relay, path('open'), { Authorization: relay.sas('http://localhost/', 'RootManageSharedAccessKey') });
  assert.equal(r.status, 200, `${r.status} ${r.reason}`);
  assert.equal(element(r.body, 'RequiresClientAuthorization'), 'false');
  assert.equal(element(r.body, 'ListenerCount'), '0');
});

relayEpilogue(() => relay);
