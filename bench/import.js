#!/usr/bin/env node
'use strict';
// The restore half of a backup, against podman, from one run:
//
//   k3-core importImage(export.tar, {repository, tag})  vs  podman import export.tar
//   k3-core containerChanges(id)                        vs  podman diff <id>
//
// The input is an export: the benches' Debian tree from this machine's /usr
// (about 400 MB in 10-20k entries, bench/common.js) is tarred, imported,
// made a container and exported by k3-core, and that tar is what both
// import, each ROUNDS times, alternating who goes first, `sync` before each
// timing, medians compared. Each round's tar is the export with one file
// added, so every import stores its layer anew rather than finding it.
//
// For the diff, both import the export once more and create a container
// from it; the same ~100 MB of changes (bench/common.js buildChanges: a few
// thousand small files from /usr/share, large libraries from /usr/lib) go
// into each with copyToContainer and `podman cp`, and the two list them.
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { whichSync } = require('../test/helpers/registry');
const { median, timed, buildRootfs, buildChanges } = require('./common');

const run = promisify(execFile);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
const IMPORT_BYTES = Number(process.env.K3_BENCH_IMPORT_BYTES || 400e6);
const DIFF_BYTES = 100e6;

const secs = (ms) => (ms / 1000).toFixed(2);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

function report(what, ours, oursLabel, peer, peerLabel, goal) {
  const list = (ms) => ms.map(secs).join(', ');
  console.log(`${oursLabel.padEnd(34)} rounds ${list(ours)} s`);
  console.log(`${peerLabel.padEnd(34)} rounds ${list(peer)} s`);
  const ratio = median(peer) / median(ours);
  console.log(`${what}: k3-core ${secs(median(ours))} s, ${peerLabel} ${secs(median(peer))} s, ratio ${ratio.toFixed(2)}x `
    + `(goal >= ${goal}x) ${ratio >= goal ? 'met' : 'NOT MET'} (medians of ${ROUNDS})\n`);
}

async function alternate(r, steps) {
  if (r % 2) steps.reverse();
  for (const step of steps) await step();
}

async function main() {
  const podman = whichSync('podman');
  if (!podman) return console.log('bench skipped: podman is not installed');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-import-'));
  const k3 = new K3Core({ root: path.join(work, 'store') });
  const podmanImages = [];
  let podmanContainer = null;
  try {
    console.log('building the Debian tree from this machine\'s /usr and exporting it ...');
    const tree = buildRootfs(path.join(work, 'rootfs'), IMPORT_BYTES);
    const gnuTar = path.join(work, 'rootfs.tar');
    execFileSync('tar', ['--numeric-owner', '-cf', gnuTar, ...tree.layers.flatMap((l) => ['-C', l, '.'])]);
    fs.rmSync(path.join(work, 'rootfs'), { recursive: true });
    await k3.imageCore.importImage(gnuTar, { repository: 'bench/rootfs' });
    fs.rmSync(gnuTar);
    await k3.containerCore.createContainer('bench/rootfs', { name: 'bench-source' });
    const input = path.join(work, 'export.tar');
    await k3.containerCore.exportContainer('bench-source', input);
    const entries = Number(execFileSync('sh', ['-c', 'tar -tf "$1" | wc -l', 'sh', input], { encoding: 'utf8' }));
    console.log(`input: an exportContainer tar of ${mb(fs.statSync(input).size)}, ${entries} entries; work dir ${work}\n`);

    // Each round imports a tar of its own (the export with one file added),
    // so neither side finds the layer stored; nothing is deleted until the
    // end, since on this disk creating many files right after deleting many
    // is slow (as in bench/commit.js).
    const inputs = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round = path.join(work, `round-${r}`);
      fs.mkdirSync(round);
      fs.writeFileSync(path.join(round, 'bench-round'), `${r}\n`);
      inputs.push(`${round}.tar`);
      fs.copyFileSync(input, inputs[r]);
      execFileSync('tar', ['--numeric-owner', '-rf', inputs[r], '-C', round, 'bench-round']);
    }
    const times = { ours: [], peer: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const tag = `r${r}`;
      await alternate(r, [
        async () => {
          times.ours.push((await timed(() => k3.imageCore.importImage(inputs[r], { repository: 'bench/import', tag }))).ms);
        },
        async () => {
          const ref = `localhost/k3bench/import:${tag}`;
          podmanImages.push(ref);
          times.peer.push((await timed(() => run(podman, ['import', '-q', inputs[r], ref]))).ms);
        },
      ]);
    }
    report(`import ${mb(fs.statSync(input).size)}`, times.ours, 'k3-core importImage', times.peer, 'podman import', 2);

    console.log('making ~100 MB of changes in a container of each ...');
    const changes = path.join(work, 'changes', 'app');
    const made = buildChanges(changes, DIFF_BYTES);
    const base = 'localhost/k3bench/diff:base';
    podmanImages.push(base);
    await run(podman, ['import', '-q', input, base]);
    podmanContainer = (await run(podman, ['create', base, '/bin/true'])).stdout.trim();
    await run(podman, ['cp', changes, `${podmanContainer}:/usr/`]);
    const ours = (await k3.containerCore.createContainer('bench/rootfs', { name: 'bench-diff' })).Id;
    await k3.containerCore.copyToContainer(ours, changes, '/usr/');
    const diffTimes = { ours: [], peer: [] };
    const listed = {};
    for (let r = 0; r < ROUNDS; r++) {
      await alternate(r, [
        async () => {
          const { ms, value } = await timed(() => k3.containerCore.containerChanges(ours));
          diffTimes.ours.push(ms);
          listed.ours = value.map((c) => `${'CAD'[c.Kind]} ${c.Path}`).sort();
        },
        async () => {
          const { ms, value } = await timed(() => run(podman, ['diff', podmanContainer], { maxBuffer: 64 << 20 }));
          diffTimes.peer.push(ms);
          listed.peer = value.stdout.trim().split('\n').sort();
        },
      ]);
    }
    const same = JSON.stringify(listed.ours) === JSON.stringify(listed.peer);
    console.log(`changes: ${mb(made.bytes)}, ${made.small + made.large} files; k3-core lists ${listed.ours.length} changes, `
      + `podman diff ${listed.peer.length}: ${same ? 'the same' : 'DIFFERENT'}`);
    report('diff ~100 MB of changes', diffTimes.ours, 'k3-core containerChanges', diffTimes.peer, 'podman diff', 1);
  } finally {
    if (podmanContainer) await run(podman, ['rm', '-f', podmanContainer]).catch(() => {});
    for (const ref of podmanImages) await run(podman, ['rmi', '-f', ref]).catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
