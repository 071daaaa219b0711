'use strict';
// index.d.ts describes the public API: a TypeScript program using it the way
// the documents do must type-check under --strict.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { need } = require('./helpers/need');

let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  tsc = null;
}

test('index.d.ts type-checks a program that uses the API', { skip: need(tsc ? false : 'typescript is not installed (npm install installs it)') }, () => {
  const usage = path.join(__dirname, 'types', 'usage.ts');
  const out = execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--types', 'node', usage], { encoding: 'utf8' });
  assert.equal(out, '');
});
