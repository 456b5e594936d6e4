'use strict';
// A relay that can be killed and started again on the same port with the
// same keys: one directory, one port, every incarnation kept (for fault
// tests). Keys: rootKey (namespace, Manage Listen Send), and on each
// hybrid connection listenKey (rule "listen") and sendKey (rule "send").

const assert = require('node:assert/strict');
const { Relay, makeCerts, writeConfig, newKey, freePort, mkTempDir, rmTempDir } = require('./relay');

// Hosts not stopped yet (a timed-out test leaves them behind), and all.
const liveHosts = new Set();
const allHosts = [];

class RelayHost {
  constructor({ relay = {}, hcs = ['hc'], tag = 'hcmd-faults-' } = {}) {
    this.dir = mkTempDir(tag);
    this.certs = makeCerts(this.dir);
    this.relayOpts = { log_level: 'debug', ...relay };
    this.rootKey = newKey();
    this.listenKey = newKey();
    this.sendKey = newKey();
    this.hcs = hcs;
    this.current = null;
    this.all = [];
    liveHosts.add(this);
    allHosts.push(this);
  }
  entities() {
    return {
      rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send', primary: this.rootKey }],
      hcs: this.hcs.map((name) => ({
        name,
        rules: [
          { name: 'listen', rights: 'Listen', primary: this.listenKey },
          { name: 'send', rights: 'Send', primary: this.sendKey },
        ],
      })),
    };
  }
  async start() {
    if (!this.port) this.port = await freePort();
    const entities = this.entities();
    const { iniFile, keys } = writeConfig(this.dir, this.certs, {
      relay: { ...this.relayOpts, listen: `127.0.0.1:${this.port}` },
      ...entities,
    });
    const r = new Relay(this.dir, this.certs, iniFile, keys, entities);
    r.ownDir = false;
    this.all.push(r);
    await r.start();
    this.current = r;
    return r;
  }
  // Problems of any incarnation: sanitizer output, an unclean exit (the
  // SIGKILLed ones excepted, but not one killed because SIGTERM failed).
  problems() {
    const out = [];
    for (const r of this.all) {
      const rep = r.sanitizerReport();
      if (rep) out.push(`sanitizer output in hcrelay stderr:\n${rep}`);
      const e = r.exit;
      if (e && (e.forced || (e.signal !== 'SIGKILL' && (e.code !== 0 || e.signal !== null)))) out.push(`hcrelay exit ${JSON.stringify(e)}`);
    }
    return out;
  }
  async stopAll() {
    liveHosts.delete(this);
    for (const r of this.all) {
      const killed = r.exit && r.exit.signal === 'SIGKILL';
      const e = await r.stop();
      if (!killed && e && e.forced) r.exit = { ...e };
    }
    rmTempDir(this.dir);
    return this.problems();
  }
  tail(n = 30) {
    return this.current ? this.current.tail(n) : '';
  }
}

async function stopLiveHosts() {
  for (const h of [...liveHosts]) await h.stopAll();
}

// Runs body(host) and always stops every relay; relay problems fail the
// test when the body passed.
async function withRelayHost(opts, body) {
  const host = new RelayHost(opts);
  let err = null;
  try {
    await body(host);
  } catch (e) {
    err = e;
  }
  const problems = await host.stopAll();
  if (err) {
    err.message += problems.length ? `\n[relay teardown] ${problems.join('\n')}` : '';
    throw err;
  }
  assert.deepEqual(problems, [], 'hcrelay teardown');
}

// Timestamp (ms) of a log line `YYYY-MM-DDTHH:MM:SS.mmmZ prog level: ...`.
function lineTime(line) {
  const m = String(line).match(/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)/);
  return m ? Date.parse(m[1]) : NaN;
}

// When the relay logged "listening on".
function relayListeningAt(relay) {
  const line = relay.stderr().split('\n').find((l) => /listening on /.test(l));
  return lineTime(line || '');
}

module.exports = { RelayHost, withRelayHost, stopLiveHosts, allHosts, lineTime, relayListeningAt };
