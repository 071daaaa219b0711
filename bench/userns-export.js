#!/usr/bin/env node
'use strict';
// exportContainer as an ordinary user beside root's, for the same container,
// from one run:
//
//   root:  exportContainer(id, file)   (the tree read in this process)
//   user:  exportContainer(id, file)   (as k3user: the tree, owned by the
//          user's subordinate IDs, read by the k3-userns helper inside a user
//          namespace, which writes the output file it is handed)
//
// The image is a 3-layer tree of real files from this machine (about 200 MB;
// K3_BENCH_USERNS_BYTES changes it), pulled from an OCI layout into root's
// store and into one in the user's home. Both containers get the same file
// copied in. Each side exports once untimed (warm caches), then ROUNDS
// rounds alternate root and user, each after `sync`; the user's export is
// timed inside the user's own Node process, around the call only, as root's
// is here. Medians are compared; the goal is a ratio of at most 1.1.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const images = require('../test/helpers/images');
const { ordinaryUserReasons, ordinaryUser, runAs } = require('../test/helpers/ordinary-user');
const { median, buildRootfs } = require('./common');

const TARGET_BYTES = Number(process.env.K3_BENCH_USERNS_BYTES || 200e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
const GOAL = 1.1;

const secs = (ms) => (ms / 1000).toFixed(2);

// The layout of the tree's three layers, gzipped as a registry serves them.
function writeLayout(dir, layers) {
  const built = layers.map((l) => {
    const tar = execFileSync('tar', ['--numeric-owner', '--sort=name', '-cf', '-', '-C', l, '.'], { maxBuffer: 4 << 30 });
    const blob = zlib.gzipSync(tar, { level: 1 });
    return { tar, blob, digest: images.sha256(blob), diffId: images.sha256(tar), size: blob.length, gzip: true };
  });
  images.writeOciLayout(dir, [{ image: images.makeImage({ layers: built }), refName: 'bench:1' }]);
}

// What each side does in its own store: the container, made once.
async function prepare(K3, input) {
  const k3 = new K3({ root: input.store });
  await k3.imageCore.pullAnImage(input.layout, 'bench:1', { containerImageTransport: 'oci' });
  await k3.containerCore.createContainer('bench:1', { name: 'bench' });
  await k3.containerCore.copyToContainer('bench', input.file, '/');
  await k3.containerCore.exportContainer('bench', input.out); // warms the caches
}

// One timed export; the caller has synced.
async function exportOnce(K3, input) {
  require('node:child_process').execFileSync('sync');
  const k3 = new K3({ root: input.store });
  const t = process.hrtime.bigint();
  await k3.containerCore.exportContainer('bench', input.out);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main() {
  const missing = ordinaryUserReasons();
  if (missing) return console.log(`bench skipped: ${missing}`);
  const user = ordinaryUser();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-userns-'));
  const home = path.join(user.home, 'k3-bench-userns');
  try {
    fs.chmodSync(work, 0o755);
    const tree = buildRootfs(path.join(work, 'tree'), TARGET_BYTES);
    const layout = path.join(work, 'layout');
    writeLayout(layout, tree.layers);
    fs.rmSync(path.join(work, 'tree'), { recursive: true, force: true });
    const file = path.join(work, 'added.conf');
    fs.writeFileSync(file, 'added\n');
    execFileSync('chmod', ['-R', 'a+rX', work]);
    fs.rmSync(home, { recursive: true, force: true });
    execFileSync('runuser', ['-u', user.name, '--', 'mkdir', '-p', home]);

    const rootIn = { store: path.join(work, 'store'), layout, file, out: path.join(work, 'root.tar') };
    const userIn = { store: path.join(home, 'store'), layout, file, out: path.join(home, 'user.tar') };
    await prepare(K3Core, rootIn);
    const prepared = await runAs(user, prepare, userIn, { timeout: 600000 });
    if (prepared.error) throw new Error(`as ${user.name}: ${prepared.error.full || prepared.error.message}`);
    if (!fs.readFileSync(rootIn.out).equals(fs.readFileSync(userIn.out))) throw new Error('the two exports differ');

    const rootMs = [];
    const userMs = [];
    for (let i = 0; i < ROUNDS; i++) {
      rootMs.push(await exportOnce(K3Core, rootIn));
      execFileSync('sync');
      const r = await runAs(user, exportOnce, userIn, { timeout: 600000 });
      if (r.error) throw new Error(`as ${user.name}: ${r.error.full || r.error.message}`);
      userMs.push(r.result);
    }
    const size = fs.statSync(rootIn.out).size;
    const ratio = median(userMs) / median(rootMs);
    console.log(`export of ${(size / 1e6).toFixed(0)} MB (${tree.entries} entries, 3 layers), median of ${ROUNDS}, alternated`);
    console.log(`  root:            ${secs(median(rootMs))} s   (${rootMs.map(secs).join(' ')})`);
    console.log(`  ordinary user:   ${secs(median(userMs))} s   (${userMs.map(secs).join(' ')})`);
    console.log(`  ratio user/root: ${ratio.toFixed(2)}x (goal <= ${GOAL}x) ${ratio <= GOAL ? 'met' : 'NOT MET'}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    if (fs.existsSync(home)) {
      // The user's store holds files of the user's subordinate IDs: only
      // root (here) or the user's helper can remove them.
      fs.rmSync(home, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
