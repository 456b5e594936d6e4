'use strict';
// Bad input over raw TCP/TLS. A hyco-ws listener + sender pair must keep
// echoing before and after every case; the relay must stay alive and print
// no sanitizer report.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startRelay, T, sleep, newKey, sasToken } = require('./lib/relay');
const { HycoPeer, hycoRoundTrip } = require('./lib/peers');
const {
  tlsConnect, tcpConnect, readUntilClose, readHttpHead, upgradeRequest, rawWsOpen, encodeFrame, FrameReader,
} = require('./lib/wsclient');
const { logCtx, relayEpilogue } = require('./lib/suite');

const HANDSHAKE_TIMEOUT = 2;
let relay;
let peer;
let roundTrips = 0;

before(async () => {
  relay = await startRelay({ relay: { handshake_timeout: HANDSHAKE_TIMEOUT } });
  peer = new HycoPeer(relay);
  await peer.listen(relay.listenUrl('hc'), relay.token(relay.listenUrl('hc'), 'hc/listenOnly'));
}, { timeout: T(60000) });

after(async () => {
  if (peer) await peer.stop();
  if (relay) await relay.cleanup();
}, { timeout: T(30000) });

// The good pair still works.
async function healthy(what) {
  const text = `healthy after ${what} #${++roundTrips}`;
  let got;
  try {
    got = await hycoRoundTrip(peer, relay, 'hc', relay.token(relay.connectUrl('hc'), 'hc/sendOnly'), text);
  } catch (e) {
    assert.fail(`good hyco-ws pair broken after ${what}: ${e.message}${logCtx(relay)}`);
  }
  assert.equal(got, text);
  assert.ok(relay.alive(), `relay died after ${what}${logCtx(relay)}`);
}

const statusOf = (buf) => {
  const m = buf.toString('latin1').match(/^HTTP\/1\.[01] (\d{3})/);
  return m ? Number(m[1]) : null;
};

// Sends `payload` on a fresh connection and collects the answer until the
// relay closes it (bounded).
async function exchange(payload, { useTls = true, ms = T(10000), endAfter = false } = {}) {
  const sock = useTls ? await tlsConnect(relay) : await tcpConnect(relay);
  sock.on('error', () => {});
  const res = readUntilClose(sock, ms);
  if (payload) sock.write(payload);
  if (endAfter) sock.end();
  const r = await res;
  sock.destroy();
  return r;
}

async function headStatus(request) {
  const sock = await tlsConnect(relay);
  sock.on('error', () => {});
  const p = readHttpHead(sock);
  sock.write(request);
  const h = await p.catch((e) => ({ error: e }));
  sock.destroy();
  return h;
}

test('baseline: the hyco-ws pair echoes', { timeout: T(20000) }, async () => {
  await healthy('start');
});

test('random bytes instead of a TLS ClientHello: connection closed, no HTTP answer', { timeout: T(30000) }, async () => {
  for (const size of [1, 5, 300, 20000]) {
    const r = await exchange(crypto.randomBytes(size), { useTls: false });
    assert.ok(r.closed, `${size} random bytes: relay did not close the connection within the bound${logCtx(relay, 10)}`);
    assert.equal(statusOf(r.data), null);
  }
  // a TLS record header announcing a huge record, then nothing
  const r = await exchange(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01]), { useTls: false });
  assert.ok(r.closed, 'bogus TLS record header: not closed');
  await healthy('random pre-TLS bytes');
});

test('plain HTTP on the TLS port: connection closed', { timeout: T(20000) }, async () => {
  const r = await exchange(`GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: localhost\r\n\r\n`, { useTls: false });
  assert.ok(r.closed, 'plaintext HTTP: not closed');
  assert.equal(statusOf(r.data), null, 'relay answered HTTP in clear text');
  await healthy('plaintext HTTP');
});

test('random bytes after the TLS handshake: 400 or close, never 101', { timeout: T(30000) }, async () => {
  for (const size of [1, 100, 5000]) {
    let bytes = crypto.randomBytes(size);
    bytes[0] = 0x01; // not a letter: cannot start a method name
    const r = await exchange(bytes);
    assert.ok(r.closed, `${size} random bytes after TLS: not closed${logCtx(relay, 10)}`);
    const st = statusOf(r.data);
    assert.ok(st === null || st === 400, `answered ${st}`);
  }
  const r = await exchange(Buffer.from('\r\n\r\n\r\n\r\nxx yy\r\n\r\n'));
  assert.ok(r.closed);
  assert.notEqual(statusOf(r.data), 101);
  await healthy('random post-TLS bytes');
});

test('truncated upgrade request, then the client closes', { timeout: T(30000) }, async () => {
  const full = upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', { ServiceBusAuthorization: relay.token(relay.listenUrl('hc'), 'hc/listenOnly') });
  for (const cut of [1, 10, 40, full.length - 3]) {
    const sock = await tlsConnect(relay);
    sock.on('error', () => {});
    sock.write(full.slice(0, cut));
    await sleep(50);
    sock.destroy();
  }
  // half-close variant: FIN after a partial head; relay must not answer 101
  const r = await exchange(full.slice(0, 60), { endAfter: true });
  assert.ok(r.closed, 'relay kept a half-closed partial request open');
  assert.notEqual(statusOf(r.data), 101);
  await healthy('truncated requests');
});

test('oversized head (> 32 KiB of headers) → 431 or close, never 101', { timeout: T(30000) }, async () => {
  const pad = [];
  for (let i = 0; i < 45; i++) pad.push(`X-Pad-${i}: ${'p'.repeat(1000)}`);
  const req = upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', {
    ServiceBusAuthorization: relay.token(relay.listenUrl('hc'), 'hc/listenOnly'),
  }).replace(/\r\n\r\n$/, '\r\n' + pad.join('\r\n') + '\r\n\r\n');
  assert.ok(req.length > 40 * 1024, `head is ${req.length} bytes`);
  const r = await exchange(req);
  const st = statusOf(r.data);
  assert.ok(r.closed, `oversized head: not closed${logCtx(relay, 10)}`);
  assert.ok(st === null || st === 431, `answered ${st}: ${r.data.toString('latin1').slice(0, 120)}`);
  // one single 40 KiB header line
  const r2 = await exchange(`GET /hc?api-version=2016-07 HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'b'.repeat(40 * 1024)}\r\n\r\n`);
  assert.ok(r2.closed);
  const st2 = statusOf(r2.data);
  assert.ok(st2 === null || st2 === 431, `single huge line answered ${st2}`);
  await healthy('oversized head');
});

test('a head just under the limit (30 KiB) is still parsed (answers 401, not 431)', { timeout: T(20000) }, async () => {
  const pad = [];
  for (let i = 0; i < 30; i++) pad.push(`X-Pad-${i}: ${'p'.repeat(1000)}`);
  const req = upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', {}).replace(/\r\n\r\n$/, '\r\n' + pad.join('\r\n') + '\r\n\r\n');
  assert.ok(req.length < 32 * 1024);
  const h = await headStatus(req);
  assert.equal(h && h.status, 401, `30 KiB head without token: ${h && (h.statusLine || h.error)}`);
  await healthy('30 KiB head');
});

test('requests that are not WebSocket upgrades → 4xx', { timeout: T(30000) }, async () => {
  const t = relay.token(relay.listenUrl('hc'), 'hc/listenOnly');
  const cases = {
    'listen without Upgrade headers': `GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: ${t}\r\n\r\n`,
    'POST to /$hc/': `POST /$hc/hc?sb-hc-action=connect HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello`,
    'upgrade without Sec-WebSocket-Key': upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', { ServiceBusAuthorization: t, 'Sec-WebSocket-Key': null }),
    'upgrade with Sec-WebSocket-Version 99': upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', { ServiceBusAuthorization: t, 'Sec-WebSocket-Version': null, 'sec-websocket-version': '99' }),
    'unknown sb-hc-action': upgradeRequest(relay, '/$hc/hc?sb-hc-action=explode', { ServiceBusAuthorization: t }),
    'path without entity': upgradeRequest(relay, '/$hc/?sb-hc-action=listen', { ServiceBusAuthorization: t }),
    'absolute-form garbage target': `GET http://[::1:bad/ HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    'percent-garbage path': upgradeRequest(relay, '/$hc/%zz%00?sb-hc-action=listen', { ServiceBusAuthorization: t }),
  };
  for (const [what, req] of Object.entries(cases)) {
    const h = await headStatus(req);
    // null: the relay closed the connection without an answer (allowed)
    assert.ok(!h || !h.error, `${what}: neither answered nor closed: ${h && h.error}`);
    if (h) assert.ok(h.status >= 400 && h.status < 500, `${what}: ${h.statusLine}${logCtx(relay, 10)}`);
  }
  await healthy('non-upgrade requests');
});

test('bad HTTP versions and request lines → 4xx/505 or close', { timeout: T(30000) }, async () => {
  for (const line of ['GET / HTTP/9.9', 'GET / HTTP/1', 'GET /', 'GET  / HTTP/1.1', 'G\x00T / HTTP/1.1', 'GET / HTTP/1.1 extra', '/ GET HTTP/1.1']) {
    const r = await exchange(`${line}\r\nHost: localhost\r\n\r\n`);
    const st = statusOf(r.data);
    assert.ok(r.closed || st !== null, `${JSON.stringify(line)}: neither answered nor closed`);
    assert.ok(st === null || (st >= 400 && st < 600 && st !== 500), `${JSON.stringify(line)}: answered ${st}`);
  }
  await healthy('bad request lines');
});

test('garbage and expired tokens → 401 on listen and connect', { timeout: T(30000) }, async () => {
  const key = relay.key('hc/listenOnly');
  const good = relay.token(relay.listenUrl('hc'), 'hc/listenOnly');
  const se = Math.floor(Date.now() / 1000) + 3600;
  const tokens = {
    garbage: 'garbage',
    'bare prefix': 'SharedAccessSignature',
    'empty fields': 'SharedAccessSignature sr=&sig=&se=&skn=',
    'non-numeric se': good.replace(/se=\d+/, 'se=tomorrow'),
    'huge se': good.replace(/se=\d+/, 'se=99999999999999999999999999999'),
    'negative se': good.replace(/se=\d+/, 'se=-1'),
    'sig not base64': good.replace(/sig=[^&]+/, 'sig=%%%%'),
    'missing skn': good.replace(/&skn=[^&]*/, ''),
    'missing sig': good.replace(/sig=[^&]+&/, ''),
    'sig of other se': sasToken('http://localhost/hc', 'listenOnly', key, { se }).replace(`se=${se}`, `se=${se + 1}`),
    'Bearer': 'Bearer eyJhbGciOiJub25lIn0.e30.',
    'long garbage': 'SharedAccessSignature ' + 'sr=a&'.repeat(2000),
    'wrong key': sasToken('http://localhost/hc', 'listenOnly', newKey()),
    // well past any clock-skew allowance
    expired: sasToken('http://localhost/hc', 'listenOnly', key, { se: Math.floor(Date.now() / 1000) - 900 }),
  };
  for (const [what, token] of Object.entries(tokens)) {
    for (const action of ['listen', 'connect']) {
      const h = await headStatus(upgradeRequest(relay, `/$hc/hc?sb-hc-action=${action}`, { ServiceBusAuthorization: token }));
      assert.equal(h && h.status, 401, `${what} on ${action}: ${h && (h.statusLine || h.error)}${logCtx(relay, 10)}`);
    }
    const q = await headStatus(upgradeRequest(relay, `/$hc/hc?sb-hc-action=connect&sb-hc-token=${encodeURIComponent(token)}`));
    assert.equal(q && q.status, 401, `${what} in query: ${q && (q.statusLine || q.error)}`);
  }
  await healthy('garbage tokens');
});

test(`stalled handshakes are closed after handshake_timeout (${HANDSHAKE_TIMEOUT} s)`, { timeout: T(60000) }, async () => {
  const bound = T(8000) + HANDSHAKE_TIMEOUT * 1000;
  const check = (what, r) => {
    assert.ok(r.closed, `${what}: still open after ${r.elapsed} ms${logCtx(relay, 10)}`);
    assert.ok(r.elapsed >= (HANDSHAKE_TIMEOUT - 0.5) * 1000, `${what}: closed after ${r.elapsed} ms, before the timeout`);
  };
  // 1: TCP connect, nothing sent; 2: TLS done, no head; 3: partial head;
  // 4: a byte every 400 ms (the deadline covers the whole head)
  const results = await Promise.all([
    (async () => {
      const s = await tcpConnect(relay);
      s.on('error', () => {});
      const r = await readUntilClose(s, bound);
      s.destroy();
      return ['silent TCP', r];
    })(),
    (async () => {
      const s = await tlsConnect(relay);
      s.on('error', () => {});
      const r = await readUntilClose(s, bound);
      s.destroy();
      return ['silent after TLS', r];
    })(),
    (async () => {
      const s = await tlsConnect(relay);
      s.on('error', () => {});
      s.write('GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: localhost\r\n');
      const r = await readUntilClose(s, bound);
      s.destroy();
      const st = statusOf(r.data);
      assert.ok(st === null || st === 408 || st === 400, `partial head answered ${st}`);
      return ['partial head', r];
    })(),
    (async () => {
      const s = await tlsConnect(relay);
      s.on('error', () => {});
      const req = upgradeRequest(relay, '/$hc/hc?sb-hc-action=listen', {});
      let i = 0;
      const timer = setInterval(() => {
        if (i < req.length - 4 && !s.destroyed) s.write(req[i++]);
      }, 400);
      const r = await readUntilClose(s, bound);
      clearInterval(timer);
      s.destroy();
      return ['slow drip', r];
    })(),
  ]);
  for (const [what, r] of results) check(what, r);
  await healthy('stalled handshakes');
});

test('50 idle half-open TLS connections do not block a good pair; released cleanly', { timeout: T(60000) }, async () => {
  const socks = [];
  try {
    for (let i = 0; i < 50; i++) {
      const s = i % 2 ? await tlsConnect(relay) : await tcpConnect(relay);
      s.on('error', () => {});
      socks.push(s);
    }
    await healthy('50 idle connections (while open)');
  } finally {
    for (const s of socks) s.destroy();
  }
  await healthy('50 idle connections (after)');
});

// Bad WebSocket frames on a raw control channel (on HC "other", so the
// health-check senders on "hc" are never routed to it).
async function rawControl() {
  const t = relay.token(relay.listenUrl('other'), 'RootManageSharedAccessKey');
  const c = await rawWsOpen(relay, '/$hc/other?sb-hc-action=listen', { ServiceBusAuthorization: t });
  c.sock.on('error', () => {});
  return { ...c, fr: new FrameReader(c.sock, c.rest) };
}

test('control channel: bad frames make the relay close that connection', { timeout: T(90000) }, async () => {
  const cases = {
    'unmasked text frame': encodeFrame('{"renewToken":{}}', { mask: false }),
    'reserved opcode 0x3': encodeFrame('x', { opcode: 3 }),
    'reserved opcode 0xB': encodeFrame('x', { opcode: 0xb }),
    'RSV1 set without extension': encodeFrame('{}', { rsv: 4 }),
    'fragmented ping (FIN=0 control frame)': encodeFrame('p', { opcode: 9, fin: false }),
    'ping payload > 125 bytes': encodeFrame(Buffer.alloc(126, 1), { opcode: 9 }),
    'continuation without a start': encodeFrame('x', { opcode: 0 }),
    'new text frame inside a fragmented message': Buffer.concat([
      encodeFrame('{"a":', { opcode: 1, fin: false }),
      encodeFrame('1}', { opcode: 1 }),
    ]),
    'close frame with 1-byte payload': encodeFrame(Buffer.from([3]), { opcode: 8 }),
    '64-bit length with the top bit set': Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
    'invalid JSON': encodeFrame('{"renewToken": [[[[ not json'),
  };
  // Invalid JSON in a well-formed frame: the relay may ignore it or close;
  // if it stays open it must still answer a ping.
  const mayStayOpen = new Set(['invalid JSON']);
  const outcome = {};
  for (const [what, bytes] of Object.entries(cases)) {
    const c = await rawControl();
    c.sock.write(bytes);
    let ended = false;
    try {
      ended = await c.fr.waitEnd(mayStayOpen.has(what) ? 1000 : T(8000));
    } catch {}
    if (!ended && mayStayOpen.has(what)) {
      const n = c.fr.frames.length;
      c.sock.write(encodeFrame('still-there', { opcode: 9 }));
      const pong = await c.fr.waitFrame((f) => f.opcode === 10, T(5000), n).catch(() => null);
      assert.ok(pong || c.fr.ended, `${what}: channel neither closed nor answering pings`);
    }
    const close = c.fr.frames.find((f) => f.opcode === 8);
    outcome[what] = { ended, closeCode: close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null };
    c.sock.destroy();
  }
  const notClosed = Object.entries(outcome).filter(([w, o]) => !o.ended && !mayStayOpen.has(w));
  assert.deepEqual(notClosed, [], `connections the relay left open: ${JSON.stringify(notClosed)}${logCtx(relay, 20)}`);
  for (const [what, o] of Object.entries(outcome)) {
    if (o.closeCode !== null) assert.ok([1002, 1003, 1007, 1008, 1009].includes(o.closeCode), `${what}: close code ${o.closeCode}`);
  }
  await healthy('bad control frames');
});

test('control channel: a correct masked ping still gets a pong over the raw socket', { timeout: T(20000) }, async () => {
  const c = await rawControl();
  try {
    c.sock.write(encodeFrame('raw-ping', { opcode: 9 }));
    const f = await c.fr.waitFrame((x) => x.opcode === 10);
    assert.ok(f, 'connection closed instead of a pong');
    assert.equal(f.payload.toString(), 'raw-ping');
    assert.equal(f.masked, false);
  } finally {
    c.sock.destroy();
  }
});

test('sender data path: an unmasked frame from the sender closes it; the listener side is closed too', { timeout: T(30000) }, async () => {
  const mark = peer.events.length;
  const s = await rawWsOpen(relay, '/$hc/hc?sb-hc-action=connect', { ServiceBusAuthorization: relay.token(relay.connectUrl('hc'), 'hc/sendOnly') });
  s.sock.on('error', () => {});
  const fr = new FrameReader(s.sock, s.rest);
  const open = await peer.waitEvent((e) => e.event === 'open' && e.side === 'listener' && peer.events.indexOf(e) >= mark, T(10000), 'listener rendezvous open');
  s.sock.write(encodeFrame('good', { opcode: 1 }));
  const echo = await fr.waitFrame((f) => f.opcode === 1);
  assert.ok(echo && echo.payload.toString() === 'good', 'echo before the bad frame');
  s.sock.write(encodeFrame('bad', { opcode: 1, mask: false }));
  const ended = await fr.waitEnd(T(10000)).catch(() => false);
  s.sock.destroy();
  assert.ok(ended, `relay kept the sender open after an unmasked frame${logCtx(relay, 10)}`);
  await peer.waitEvent((e) => e.event === 'close' && e.side === 'listener' && e.cid === open.cid, T(10000), 'listener side close');
  await healthy('bad sender frame');
});

test('sender vanishes mid-message (connection dropped inside a large frame): listener side is closed, relay fine', { timeout: T(30000) }, async () => {
  const mark = peer.events.length;
  const s = await rawWsOpen(relay, '/$hc/hc?sb-hc-action=connect', { ServiceBusAuthorization: relay.token(relay.connectUrl('hc'), 'hc/sendOnly') });
  s.sock.on('error', () => {});
  const open = await peer.waitEvent((e) => e.event === 'open' && e.side === 'listener' && peer.events.indexOf(e) >= mark, T(10000), 'listener rendezvous open');
  const frame = encodeFrame(crypto.randomBytes(200000), { opcode: 2 });
  s.sock.write(frame.slice(0, 70000));
  await sleep(100);
  s.sock.destroy();
  await peer.waitEvent((e) => e.event === 'close' && e.side === 'listener' && e.cid === open.cid, T(10000), 'listener side close');
  await healthy('sender reset mid-frame');
});

relayEpilogue(() => relay);
