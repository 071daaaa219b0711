'use strict';
// Several processes pull, create, export, commit, save, load and remove on
// one store root at once: every failure must be one of the typed conflicts
// the README lists (what one removed, another no longer finds), never a
// store failure, a missing file or a false content error; and the store
// they leave is whole.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const { pushStressImages, runStress, tally } = require('./helpers/stress');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');
const { assertStoreWhole } = require('./helpers/storecheck');

const skip = need(registryAvailable() || (whichSync('sqlite3') ? null : 'sqlite3 (the CLI) is not installed'));
let tmp;
let reg;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-concurrency-'));
  reg = await startRegistry();
});

after(async () => {
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('six processes on one root: no failure but the typed conflicts', { skip, timeout: 300000 }, async () => {
  const refs = await pushStressImages(reg);
  const store = path.join(tmp, 'store');
  const r = await runStress({ storeRoot: store, refs, procs: 6, ops: 40, work: path.join(tmp, 'work') });
  const worked = new Set(r.results.filter((x) => x.ok && !x.idle).map((x) => x.op));
  // Every kind of operation ran, so the mix is what the assertion covers.
  assert.deepEqual([...worked].sort(), ['commit', 'create', 'export', 'load', 'pull', 'removeContainer', 'removeImage', 'save']);
  assert.deepEqual(r.untyped, [], JSON.stringify(tally(r.untyped)));
  // Once the last of them is done, what they removed is collected: a new
  // process finds every record with its files and no file without one.
  await runInChild(`await new K3Core({ root: ${JSON.stringify(store)} }).imageCore.listImages(); done(true);`);
  assertStoreWhole(store, 'after the processes ended');
});
