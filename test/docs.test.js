'use strict';
// The README documents every error catalogue; its tables are generated from
// the catalogue, and must not drift from it.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tables } = require('../scripts/catalogue-tables');

test('the README holds the error tables of the current catalogue', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const m = readme.match(/<!-- catalogue:start -->\n([\s\S]*?)\n<!-- catalogue:end -->/);
  assert.ok(m, 'README has the catalogue markers');
  assert.equal(m[1], tables(), 'regenerate with: node scripts/catalogue-tables.js');
});

test('every public method is documented in the README', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const K3Core = require('..');
  const k3 = new K3Core({ root: '/nonexistent-k3-docs-test' });
  for (const core of ['imageCore', 'containerCore']) {
    for (const method of Object.getOwnPropertyNames(Object.getPrototypeOf(k3[core]))) {
      if (method === 'constructor') continue;
      assert.ok(readme.includes(`\`${method}(`), `${core}.${method} is not documented`);
    }
  }
});
