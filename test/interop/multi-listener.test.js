'use strict';
// Three hyco-ws listeners on one hybrid connection, 60 sequential senders.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRelay, T } = require('./lib/relay');
const { HycoPeer } = require('./lib/peers');
const { logCtx, relayEpilogue } = require('./lib/suite');

let relay;
const listeners = []; // three child processes, one hyco-ws listener each
let sender;

before(async () => {
  relay = await startRelay();
  for (let i = 0; i < 3; i++) {
    const p = new HycoPeer(relay);
    listeners.push(p);
    await p.listen(relay.listenUrl('hc'), relay.token(relay.listenUrl('hc'), 'RootManageSharedAccessKey'));
  }
  sender = new HycoPeer(relay);
  await sender.ready;
}, { timeout: T(60000) });

after(async () => {
  for (const p of [...listeners, sender]) if (p) await p.stop();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

test('three hyco-ws listeners, 60 sequential relayedConnect senders: all echo, every listener gets some', { timeout: T(120000) }, async () => {
  const token = relay.token(relay.connectUrl('hc'), 'hc/sendOnly');
  const failures = [];
  for (let i = 0; i < 60; i++) {
    const r = await sender.connect(relay.connectUrl('hc'), token);
    if (!r.ok) {
      failures.push(`#${i}: connect ${JSON.stringify(r)}`);
      continue;
    }
    try {
      const text = `message #${i} ${'.'.repeat(i)}`;
      const m = await sender.echo(r.sid, text);
      if (m.data.toString() !== text) failures.push(`#${i}: echoed ${JSON.stringify(m.data.toString())}`);
    } catch (e) {
      failures.push(`#${i}: ${e.message}`);
    } finally {
      await sender.call('senderClose', { sid: r.sid, code: 1000, reason: 'done' });
      await sender.waitEvent((e) => e.event === 'close' && e.side === 'sender' && e.sid === r.sid, T(10000), `sender ${i} close`).catch((e) => failures.push(`#${i}: ${e.message}`));
    }
  }
  assert.deepEqual(failures, [], `failed round trips${logCtx(relay)}`);
  const counts = listeners.map((p) => p.events.filter((e) => e.event === 'connection').length);
  const total = counts.reduce((a, b) => a + b, 0);
  assert.equal(total, 60, `listeners saw ${total} connections (${counts})`);
  for (let i = 0; i < 3; i++) assert.ok(counts[i] >= 1, `listener ${i} got no connection; distribution ${counts}`);
  // Random choice over 60 trials: no single listener should take (nearly) all.
  assert.ok(Math.max(...counts) <= 45, `distribution looks far from random: ${counts}`);
  for (const p of listeners) {
    const n = p.events.filter((e) => e.event === 'listening').length;
    assert.equal(n, 1, `a listener registered ${n} times (its control channel dropped and hyco-ws reconnected)`);
  }
});

test('after one of three listeners leaves, new senders only reach the remaining two', { timeout: T(60000) }, async () => {
  const gone = listeners[0];
  const lid = gone.events.find((e) => e.event === 'listening').lid;
  await gone.call('listenerClose', { lid });
  await gone.waitEvent((e) => e.event === 'server-close', T(10000), 'listener close');
  const before = gone.events.filter((e) => e.event === 'connection').length;
  const token = relay.token(relay.connectUrl('hc'), 'hc/sendOnly');
  for (let i = 0; i < 12; i++) {
    const r = await sender.connect(relay.connectUrl('hc'), token);
    assert.ok(r.ok, `#${i}: ${JSON.stringify(r)}${logCtx(relay)}`);
    const m = await sender.echo(r.sid, `after-leave ${i}`);
    assert.equal(m.data.toString(), `after-leave ${i}`);
    await sender.call('senderTerminate', { sid: r.sid });
  }
  assert.equal(gone.events.filter((e) => e.event === 'connection').length, before, 'a departed listener was still offered connections');
});

relayEpilogue(() => relay);
