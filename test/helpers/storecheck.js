'use strict';
// Checks a store root from outside, with the sqlite3 CLI and the file
// system: every record has its files, every file its record.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function sqlJSON(store, query) {
  const out = execFileSync('sqlite3', ['-json', path.join(store, 'k3.db'), query], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out) : [];
}

const hexOf = (d) => d.slice(d.indexOf(':') + 1);

// Every record has its files and every file its record; moment says when
// in the failure message.
function assertStoreWhole(store, moment) {
  const sql = (query) => sqlJSON(store, query);
  const images = sql('SELECT id, manifest_digest FROM images');
  const layers = sql('SELECT chain_id, diff_id, blob_digest FROM layers');
  const containers = sql('SELECT id FROM containers');
  const blobs = new Set(fs.readdirSync(path.join(store, 'blobs', 'sha256')));
  const layerDirs = new Set(fs.readdirSync(path.join(store, 'layers')));
  const bundles = new Set(fs.readdirSync(path.join(store, 'containers')));
  const named = new Set();
  for (const img of images) {
    for (const d of [img.id, img.manifest_digest]) {
      assert.ok(blobs.has(hexOf(d)), `${moment}: image ${img.id} has no blob ${d}`);
      named.add(hexOf(d));
    }
  }
  const orphanLinks = sql('SELECT il.chain_id FROM image_layers il LEFT JOIN layers l ON l.chain_id = il.chain_id WHERE l.chain_id IS NULL');
  assert.deepEqual(orphanLinks, [], `${moment}: images name layers without records`);
  // Each image's own layer blobs (schema 4 on; '' where the layer's is used).
  const perImage = sql("SELECT name FROM pragma_table_info('image_layers') WHERE name = 'blob_digest'").length > 0;
  for (const il of perImage ? sql("SELECT image_id, blob_digest FROM image_layers WHERE blob_digest != ''") : []) {
    assert.ok(blobs.has(hexOf(il.blob_digest)), `${moment}: image ${il.image_id} has no blob ${il.blob_digest}`);
    named.add(hexOf(il.blob_digest));
  }
  for (const l of layers) {
    assert.ok(blobs.has(hexOf(l.blob_digest)), `${moment}: layer ${l.chain_id} has no blob`);
    named.add(hexOf(l.blob_digest));
    // A committed layer (stored uncompressed: its blob is its diff ID) is
    // unpacked only when a container first needs it.
    assert.ok(layerDirs.has(hexOf(l.chain_id)) || l.blob_digest === l.diff_id, `${moment}: layer ${l.chain_id} has no directory`);
  }
  for (const c of containers) {
    assert.ok(fs.existsSync(path.join(store, 'containers', c.id, 'config.json')), `${moment}: container ${c.id} has no bundle`);
  }
  for (const b of blobs) assert.ok(named.has(b), `${moment}: blob ${b} has no record`);
  const chains = new Set(layers.map((l) => hexOf(l.chain_id)));
  for (const d of layerDirs) assert.ok(chains.has(d), `${moment}: layer directory ${d} has no record`);
  const ids = new Set(containers.map((c) => c.id));
  for (const d of bundles) assert.ok(ids.has(d), `${moment}: bundle ${d} has no record`);
}

module.exports = { assertStoreWhole };
