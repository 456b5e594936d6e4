'use strict';
// Reads what test/run.sh collected in HC_SUITE_LOGDIR: the output of every
// hcmd and hcrelay the suite ran (logs/*.log) and every key the tests made
// (keys). No key may appear in any of it, in plain or URL-encoded form, and
// no SAS signature (sig=...). Prints TAP.
//   node test/secrets-scan.js DIR

const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
let n = 0;
const fails = [];

function point(ok, what, detail) {
  n++;
  console.log(`${ok ? 'ok' : 'not ok'} ${n} - ${what}`);
  if (!ok) for (const l of detail) console.log(`# ${l}`);
}

const logDir = path.join(dir, 'logs');
const files = fs.existsSync(logDir) ? fs.readdirSync(logDir).sort() : [];
const keys = fs.existsSync(path.join(dir, 'keys'))
  ? [...new Set(fs.readFileSync(path.join(dir, 'keys'), 'utf8').split('\n').filter((k) => k.length >= 16))]
  : [];
const forms = [];
for (const k of keys) {
  forms.push(k);
  const enc = encodeURIComponent(k);
  if (enc !== k) forms.push(enc);
  if (enc.toLowerCase() !== enc) forms.push(enc.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
}
// A SAS token's signature, as hcmd and the tests put it in a URL or header.
const SIG_RE = /[?&\s]sig=[A-Za-z0-9%+/=_-]{20,}/;
let bytes = 0;
for (const f of files) {
  const text = fs.readFileSync(path.join(logDir, f), 'latin1');
  bytes += text.length;
  for (const k of forms) if (text.includes(k)) fails.push(`${f}: contains a key (${k.slice(0, 6)}...)`);
  const m = text.match(SIG_RE);
  if (m) fails.push(`${f}: contains a SAS signature: ...${text.slice(Math.max(0, m.index - 60), m.index + 10)}...`);
}
console.log('TAP version 13');
point(files.length >= 100 && keys.length >= 100, `the suite left its output (${files.length} files, ${(bytes / 1048576).toFixed(1)} MiB) and its keys (${keys.length})`, ['too little to scan: was HC_SUITE_LOGDIR passed to the tests?']);
point(fails.length === 0, `no key (${forms.length} forms) and no SAS signature in the output of any hcmd or hcrelay`, fails.slice(0, 30));
console.log(`1..${n}`);
process.exit(fails.length || files.length < 100 ? 1 : 0);
