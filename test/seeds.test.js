'use strict';
// Seed 001's examples run as real user code: each file in test/seeds/001 is
// run by `node` in a process of its own, with `require('k3-core')` resolving
// to this package, against a local registry holding the images they name.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping seed examples: ${skip}`);

let reg;
let modules;
const pushed = {};

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  const make = (files, config) => images.makeImage({ layers: files.map((f) => [{ path: f, content: `content of ${f}` }]), config });
  pushed.alpine = make(['bin/sh']);
  pushed.nginx = make(['usr/sbin/nginx', 'etc/nginx/nginx.conf']);
  pushed.ubuntu = make(['bin/bash', 'usr/bin/apt', 'etc/os-release']);
  pushed.node = make(['usr/local/bin/node'], { Env: ['PATH=/usr/local/bin:/usr/bin', 'NODE_VERSION=18.20.4', 'YARN_VERSION=1.22.19'] });
  pushed.myappLatest = make(['app']);
  await images.pushImage(reg, 'alpine', 'latest', pushed.alpine);
  await images.pushImage(reg, 'nginx', '1.25', pushed.nginx);
  await images.pushImage(reg, 'ubuntu', '22.04', pushed.ubuntu);
  await images.pushImage(reg, 'node', '18', pushed.node);
  await images.pushImage(reg, 'myapp', 'latest', pushed.myappLatest);
  // require('k3-core') from the examples resolves through NODE_PATH to here.
  modules = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-seed-modules-'));
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(modules, 'k3-core'));
});

after(async () => {
  if (reg) await reg.stop();
  if (modules) fs.rmSync(modules, { recursive: true, force: true });
});

function runExample(file) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'seeds', '001', file)], {
      env: { ...process.env, NODE_PATH: modules, K3_TEST_REGISTRY: reg.host }, timeout: 300000,
    }, (err, stdout, stderr) => (err ? reject(new Error(`${file}: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

test('example 1: simple inspect', { skip }, async () => {
  const out = await runExample('example1.js');
  assert.match(out, new RegExp(`Image Digest: ${pushed.alpine.manifestDigest}`));
  assert.match(out, /Architecture: amd64\nOS: linux\nLayers: 1/);
});

test('example 2: total size', { skip }, async () => {
  const out = await runExample('example2.js');
  assert.match(out, /Image Name: nginx:1.25\nTotal Size: 0.00 MB\nCreated: 2024-01-02T03:04:05Z\nArchitecture: amd64/);
});

test('example 3: layers', { skip }, async () => {
  const out = await runExample('example3.js');
  assert.match(out, /Total Layers: 3/);
  assert.match(out, new RegExp(`Layer 3:\\n Digest: ${pushed.ubuntu.layers[2].digest.substring(0, 20)}\\.\\.\\.`));
  assert.match(out, /MIME Type: application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip/);
});

test('example 4: environment variables', { skip }, async () => {
  const out = await runExample('example4.js');
  assert.match(out, /NODE_VERSION: 18\.20\.4/);
  assert.match(out, /YARN_VERSION: 1\.22\.19/);
});

test('example 6: error handling of a missing image', { skip }, async () => {
  const out = await runExample('example6.js');
  assert.match(out, /myapp:v1\.0 not found in registry/);
  assert.match(out, /success: false, error: 'Not found'/);
});

test('example 7: several images', { skip }, async () => {
  const out = await runExample('example7.js');
  assert.equal((out.match(/✓ Inspected/g) || []).length, 3, out);
  assert.doesNotMatch(out, /✗/);
});

test('example 8: metadata', { skip }, async () => {
  const out = await runExample('example8.js');
  assert.match(out, new RegExp(`Digest: ${pushed.alpine.manifestDigest}`));
  assert.match(out, /Total Layers: 1/);
});

test('patterns 1, 3, 4 and 5', { skip }, async () => {
  const out = await runExample('patterns.js');
  assert.match(out, /myapp:v1\.0 not found\nTrying alternative sources\.\.\./);
  assert.match(out, /Found at: .*\/myapp:latest/);
  assert.match(out, new RegExp(`Retry result digest: ${pushed.nginx.manifestDigest}`));
  assert.match(out, /Using cached inspection for .*alpine:latest/);
  assert.match(out, /Same object from cache: true/);
  assert.match(out, /Overall: COMPATIBLE/);
});
