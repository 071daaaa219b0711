#!/usr/bin/env node
'use strict';
// commitContainer of a container with about 100 MB of changes, beside GNU
// tar archiving exactly those changes (the floor), from one run:
//
//   k3-core commitContainer(id, {repository, tag})
//     vs  tar -cf out.tar -C <the container's writable layer> .
//
// The changes are real files from this machine: several thousand small
// ones from /usr/share and a few large libraries from /usr/lib, added with
// copyToContainer, plus an edited and a deleted file of the base image. The
// two alternate ROUNDS times, each into a new output, and medians are
// compared. Before each round a one-line file is copied in (untimed), so
// every commit makes and stores a new layer rather than finding its layer
// already in the store.
//
// What a commit does beyond tar -cf: it hashes the tar (its diff ID and,
// since the layer is stored uncompressed as docker commit stores it, its
// digest) on another core while writing it, skips the runtime's mount
// points, and writes config, manifest and the store's records. The layer's
// directory is unpacked from the blob the first time a container needs it,
// not by the commit. Two references are timed beside it: GNU tar -czf (what
// compressing would add) and GNU tar -xf of the change set into a new
// directory (what writing the layer's tree costs on this disk).
//
// Writing a tree of thousands of files depends on where it goes: on an
// ext4 without a journal (as on this VM) the kernel places each new inode
// only after skipping the recently freed inodes of its block group, so in a
// directory whose group has seen heavy create/delete churn (this VM's /tmp)
// the tar -xf reference and the commit's unpack run several times slower.
// The work directory is os.tmpdir(): set TMPDIR to measure elsewhere. For
// the same reason nothing is deleted while the rounds run;
// K3_BENCH_COMMIT_REMOVE=1 removes each committed image (removeImage, which
// frees its layer directory and blob) and outputs after its round instead.
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('../test/helpers/registry');
const images = require('../test/helpers/images');
const { median, timed, buildChanges } = require('./common');

const run = promisify(execFile);
const TARGET_BYTES = Number(process.env.K3_BENCH_COMMIT_BYTES || 100e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
const GOAL = 1;
const REMOVE = process.env.K3_BENCH_COMMIT_REMOVE === '1';

const secs = (ms) => (ms / 1000).toFixed(2);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

async function main() {
  const missing = registryAvailable();
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-commit-'));
  const reg = await startRegistry();
  try {
    // A small base image, pulled into a fresh store as a user would.
    const base = images.makeImage({
      layers: [
        [{ path: 'etc', type: 'dir' }, { path: 'etc/app.conf', content: 'level=1\n' }, { path: 'etc/old.conf', content: 'old\n' },
          { path: 'opt', type: 'dir' }, { path: 'usr', type: 'dir' }, { path: 'usr/bin', type: 'dir' }],
        [{ path: 'usr/bin/app', content: Buffer.alloc(200000, 7), mode: 0o755 }],
      ],
      mediaType: 'docker',
      config: { Cmd: ['/usr/bin/app'] },
    });
    await images.pushImage(reg, 'bench/base', '1', base);
    const k3 = new K3Core({ root: path.join(work, 'store') });
    await k3.imageCore.pullAnImage(`${reg.host}/bench/base`, '1', { tlsVerify: false });
    const container = await k3.containerCore.createContainer(`${reg.host}/bench/base:1`, { name: 'bench-commit' });
    const id = container.Id;

    console.log('copying the changes from this machine\'s /usr into the container ...');
    const src = path.join(work, 'changes', 'app');
    const tree = buildChanges(src, TARGET_BYTES);
    await k3.containerCore.copyToContainer(id, src, '/opt');
    fs.writeFileSync(path.join(work, 'changes', 'app.conf'), 'level=2\n');
    await k3.containerCore.copyToContainer(id, path.join(work, 'changes', 'app.conf'), '/etc/app.conf');
    await k3.containerCore.removeFromContainer(id, '/etc/old.conf');

    // The writable layer, where commit reads the changes (<bundle>/diff).
    const upper = path.join((await k3.containerCore.inspectContainer(id)).BundleDir, 'diff');
    const entries = Number(execFileSync('sh', ['-c', 'find "$1" -mindepth 1 | wc -l', 'sh', upper], { encoding: 'utf8' }));
    console.log(`changes: ${mb(tree.bytes)} in ${entries} entries: ${tree.small} small files from /usr/share (${mb(tree.smallBytes)}), `
      + `${tree.large} large ones from /usr/lib (${mb(tree.largeBytes)}), 1 file edited, 1 deleted; work dir ${work}\n`);

    const blobsDir = path.join(k3.root, 'blobs', 'sha256');
    const blobCount = () => fs.readdirSync(blobsDir).length;
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    const times = { ours: [], floor: [], gz: [], untar: [] };
    const sizes = { blob: 0, tar: 0, gz: 0 };
    // Alternate who goes first; every output is new (replacing a file would
    // also time the freeing of its blocks, on a disk mounted with discard).
    for (let r = 0; r < ROUNDS; r++) {
      const tag = `r${r}`;
      fs.writeFileSync(path.join(work, 'changes', 'round'), `${r}\n`);
      await k3.containerCore.copyToContainer(id, path.join(work, 'changes', 'round'), '/etc/bench-round');
      const floorTar = path.join(out, `gnu-${r}.tar`);
      const blobsBefore = blobCount();
      const steps = [
        async () => {
          const { ms, value } = await timed(() => k3.containerCore.commitContainer(id, { repository: 'bench/commit', tag }));
          times.ours.push(ms);
          // A new layer blob, config and manifest.
          if (blobCount() !== blobsBefore + 3) throw new Error(`commit ${tag} stored ${blobCount() - blobsBefore} new blobs, not 3`);
          const manifest = JSON.parse(fs.readFileSync(path.join(blobsDir, value.Digest.slice(7)), 'utf8'));
          sizes.blob = manifest.layers[manifest.layers.length - 1].size;
        },
        async () => {
          times.floor.push((await timed(() => run('tar', ['--numeric-owner', '-cf', floorTar, '-C', upper, '.']))).ms);
          sizes.tar = fs.statSync(floorTar).size;
        },
      ];
      if (r % 2) steps.reverse();
      for (const step of steps) await step();
      const gz = path.join(out, `gnu-${r}.tar.gz`);
      times.gz.push((await timed(() => run('tar', ['--numeric-owner', '-czf', gz, '-C', upper, '.']))).ms);
      sizes.gz = fs.statSync(gz).size;
      const tree = path.join(out, `tree-${r}`);
      fs.mkdirSync(tree);
      times.untar.push((await timed(() => run('tar', ['--numeric-owner', '-xf', floorTar, '-C', tree]))).ms);
      if (REMOVE) {
        await k3.imageCore.removeImage(`bench/commit:${tag}`);
        if (blobCount() !== blobsBefore) throw new Error(`removing bench/commit:${tag} left ${blobCount() - blobsBefore} blob(s) behind`);
        for (const f of [floorTar, gz, tree]) fs.rmSync(f, { recursive: true, force: true });
      }
    }

    const list = (ms) => ms.map(secs).join(', ');
    console.log(`k3-core commitContainer                  rounds ${list(times.ours)} s (new layer: ${mb(sizes.blob)} tar blob)`);
    console.log(`GNU tar -cf of the writable layer        rounds ${list(times.floor)} s (${mb(sizes.tar)} tar; rounds 2, 4, ... ran tar first)`);
    console.log(`  reference: GNU tar -czf of it          rounds ${list(times.gz)} s (${mb(sizes.gz)}, single-threaded gzip -6)`);
    console.log(`  reference: GNU tar -xf of that tar     rounds ${list(times.untar)} s (${entries} entries written into a new directory)`);
    const ratio = median(times.floor) / median(times.ours);
    console.log(`commit ~${Math.round(tree.bytes / 1e6)} MB of changes: k3-core ${secs(median(times.ours))} s, GNU tar -cf ${secs(median(times.floor))} s, `
      + `ratio ${ratio.toFixed(2)}x (goal >= ${GOAL}x, no slower) ${ratio >= GOAL ? 'met' : 'NOT MET'} (medians of ${ROUNDS}${REMOVE ? ', each image removed after its round' : ''})`);
    console.log('  note: commit = tar + its sha256 (on another core) + config/manifest + store records; the layer directory is '
      + 'unpacked when a container first needs it; tar -cf only writes one tar file');
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
