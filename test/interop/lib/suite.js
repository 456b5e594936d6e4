'use strict';
// Shared test-file scaffolding.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { T } = require('./relay');

// Text appended to assertion messages: the relay's recent log.
function logCtx(relay, n = 30) {
  if (!relay) return '';
  return `\n--- relay stderr (last ${n} lines) ---\n${relay.tail(n)}`;
}

// Adds the closing test of a file: the relay survived everything above,
// printed no sanitizer report, and shuts down cleanly (exit 0) on SIGTERM.
function relayEpilogue(getRelay, name = 'relay survived, no sanitizer report, exits 0 on SIGTERM') {
  test(name, { timeout: T(30000) }, async () => {
    const relay = getRelay();
    assert.ok(relay, 'relay was never started');
    assert.ok(relay.alive(), `relay process died: ${JSON.stringify(relay.exit)}${logCtx(relay, 60)}`);
    const e = await relay.stop(T(10000));
    const report = relay.sanitizerReport();
    assert.equal(report, null, `sanitizer output in relay stderr:\n${report}`);
    assert.ok(!e.forced, `relay did not exit within ${T(10000)} ms of SIGTERM${logCtx(relay)}`);
    assert.deepEqual({ code: e.code, signal: e.signal }, { code: 0, signal: null }, `relay exit status${logCtx(relay)}`);
  });
}

module.exports = { logCtx, relayEpilogue };
