'use strict';
// With HC_SUITE_LOGDIR set (test/run.sh sets it), every daemon and command
// the tests start leaves its output there when it exits, and every key the
// tests make is listed in HC_SUITE_LOGDIR/keys, so that test/secrets-scan.js
// can check the output of the whole suite for keys and signatures.

const fs = require('node:fs');
const path = require('node:path');

const DIR = process.env.HC_SUITE_LOGDIR || null;
let seq = 0;

function recordKey(key) {
  if (!DIR || !key) return;
  try {
    fs.mkdirSync(DIR, { recursive: true });
    fs.appendFileSync(path.join(DIR, 'keys'), `${key}\n`);
  } catch {}
}

// name: what ran; text: everything it printed (stdout and stderr).
function saveOutput(name, text) {
  if (!DIR || !text) return;
  try {
    const dir = path.join(DIR, 'logs');
    fs.mkdirSync(dir, { recursive: true });
    const file = `${path.basename(process.argv[1] || 'test', '.js')}-${process.pid}-${++seq}-${String(name).replace(/[^\w.-]+/g, '_')}.log`;
    fs.writeFileSync(path.join(dir, file), text);
  } catch {}
}

module.exports = { recordKey, saveOutput };
