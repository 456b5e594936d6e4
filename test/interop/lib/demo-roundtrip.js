#!/usr/bin/env node
'use strict';
// Demo: one message through hcrelay with the official npm client hyco-ws.
//
//   HCRELAY=/path/to/hcrelay node test/interop/lib/demo-roundtrip.js [DIR] [MESSAGE]
//
// Starts hcrelay (config, test CA and certificate written into DIR, plus
// relay.log at the end; or a fresh temp dir that is removed afterwards), a hyco-ws listener that
// echoes, and a hyco-ws relayedConnect sender that sends one message.
// Prints what went through; exits 0 on success, 1 otherwise.

const fs = require('node:fs');
const path = require('node:path');
const { startRelay, HCRELAY } = require('./relay');
const { HycoPeer } = require('./peers');

const dir = process.argv[2] ? path.resolve(process.argv[2]) : undefined;
const message = process.argv[3] || 'hello from hyco-ws through hcrelay';

async function main() {
  const entities = {
    rules: [{ name: 'RootManageSharedAccessKey', rights: 'Manage Listen Send' }],
    hcs: [
      {
        name: 'demo',
        userMetadata: '[{"key":"endpoint","value":"localhost:8080"}]',
        rules: [
          { name: 'defaultListener', rights: 'Listen' },
          { name: 'defaultSender', rights: 'Send' },
        ],
      },
    ],
  };
  console.log(`relay binary: ${HCRELAY}`);
  const relay = await startRelay({ dir, entities, relay: { log_level: 'info' } });
  let listenerPeer;
  let senderPeer;
  try {
    console.log(`relay: listening on localhost:${relay.port} (config ${relay.iniFile})`);
    const listenUrl = relay.listenUrl('demo');
    const connectUrl = relay.connectUrl('demo');

    listenerPeer = new HycoPeer(relay);
    await listenerPeer.listen(listenUrl, relay.token(listenUrl, 'demo/defaultListener'));
    console.log(`listener: hyco-ws createRelayedServer listening on ${listenUrl}`);

    senderPeer = new HycoPeer(relay);
    const s = await senderPeer.connect(connectUrl, relay.token(connectUrl, 'demo/defaultSender'));
    if (!s.ok) throw new Error(`sender could not connect: ${JSON.stringify(s)}`);
    console.log(`sender: hyco-ws relayedConnect to ${connectUrl} is open`);

    console.log(`sender -> ${JSON.stringify(message)}`);
    const echoed = await senderPeer.echo(s.sid, message);
    const seen = listenerPeer.events.find((e) => e.event === 'message' && e.side === 'listener');
    if (seen) console.log(`listener <- ${seen.length} bytes (${seen.binary ? 'binary' : 'text'}), echoing`);
    const text = echoed.data.toString('utf8');
    console.log(`sender <- ${JSON.stringify(text)}`);
    await senderPeer.call('senderClose', { sid: s.sid, code: 1000, reason: 'demo done' });
    if (text !== message) throw new Error('echo differs from what was sent');
    console.log('OK: round trip through hcrelay succeeded');
  } finally {
    if (senderPeer) await senderPeer.stop();
    if (listenerPeer) await listenerPeer.stop();
    await relay.stop();
    if (dir) {
      fs.writeFileSync(path.join(dir, 'relay.log'), relay.stderr());
      console.log(`relay log: ${path.join(dir, 'relay.log')}`);
    }
    await relay.cleanup();
  }
}

const guard = setTimeout(() => {
  console.error('demo: timed out after 60 s');
  process.exit(1);
}, 60000);
main().then(
  () => {
    clearTimeout(guard);
    process.exit(0);
  },
  (e) => {
    clearTimeout(guard);
    console.error(`demo failed: ${e.message}`);
    process.exit(1);
  },
);
