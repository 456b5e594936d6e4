'use strict';
// The official client library as the listening agent, for the benchmark
// (test/bench/run.sh): hyco-ws's createRelayedServer listens on a hybrid
// connection, and every connection it accepts is spliced to a TCP endpoint,
// binary messages to bytes and back, with backpressure both ways. What a user
// would write with the library in place of hcmd's listener.
//
//   NODE_EXTRA_CA_CERTS=ca.crt node hyco-bridge.js \
//       --relay localhost:PORT --hc NAME --rule RULE --key KEY --endpoint HOST:PORT
//
// Prints "listening" once the control channel is up. SIGTERM stops it.

const dns = require('node:dns');
const net = require('node:net');
const path = require('node:path');

dns.setDefaultResultOrder('ipv4first');
const WS = require(path.resolve(__dirname, '../interop/node_modules/hyco-ws'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['relay', 'hc', 'rule', 'key', 'endpoint']) {
  if (!args[k]) {
    console.error(`hyco-bridge: --${k} is required`);
    process.exit(2);
  }
}
const [epHost, epPort] = [args.endpoint.replace(/:\d+$/, ''), Number(args.endpoint.split(':').pop())];
const HIGH = 1024 * 1024; // bytes queued towards the relay before the endpoint is paused
const LOW = 256 * 1024;

const uri = `wss://${args.relay}/$hc/${args.hc}?sb-hc-action=listen`;
const token = WS.createRelayToken(`https://${args.relay}/${args.hc}`, args.rule, args.key, 24 * 3600);

let tunnels = 0;
const server = WS.createRelayedServer({ server: uri, token }, (ws) => {
  tunnels++;
  const tcp = net.connect(epPort, epHost);
  tcp.setNoDelay(true);
  tcp.pause(); // until the rendezvous WebSocket is open
  let open = false;
  let queued = 0; // bytes handed to ws.send and not yet written
  let paused = false;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    tunnels--;
    tcp.destroy();
    try {
      ws.terminate();
    } catch {}
  };

  ws.on('open', () => {
    open = true;
    tcp.resume();
  });
  ws.on('message', (data) => {
    if (!tcp.write(data)) {
      try {
        ws.pause();
      } catch {}
      tcp.once('drain', () => {
        try {
          ws.resume();
        } catch {}
      });
    }
  });
  ws.on('close', () => {
    if (!done) tcp.end();
  });
  ws.on('error', finish);

  tcp.on('data', (chunk) => {
    if (!open || done) return; // paused until open; nothing comes before
    queued += chunk.length;
    ws.send(chunk, { binary: true }, (err) => {
      queued -= chunk.length;
      if (err) finish();
      else if (paused && queued <= LOW) {
        paused = false;
        tcp.resume();
      }
    });
    if (!paused && queued > HIGH) {
      paused = true;
      tcp.pause();
    }
  });
  tcp.on('end', () => {
    if (open && !done) {
      try {
        ws.close(1000);
      } catch {}
    }
  });
  tcp.on('close', () => {
    if (!done && open) {
      try {
        ws.close(1000);
      } catch {}
    }
  });
  tcp.on('error', finish);
});

let listening = false;
server.on('listening', () => {
  if (!listening) {
    listening = true;
    console.log('listening');
  }
});
server.on('error', (e) => {
  console.error(`hyco-bridge: ${e && e.message ? e.message : e}`);
  if (!listening) process.exit(1);
});
const stop = () => {
  try {
    server.close();
  } catch {}
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
