#!/usr/bin/env node
'use strict';
// saveImage straight from a registry to a `docker save` archive, beside
// skopeo doing the same, from one run:
//
//   k3-core saveImage(ref, out.tar, {source: 'registry'})
//     vs  skopeo copy docker://ref docker-archive:out.tar:ref
//
// The image is real Debian files (copied from this machine's /usr, about
// 380 MB uncompressed, thousands of entries) in 3 gzip layers, pushed to a
// local docker-registry. Both sides fetch, inflate and write uncompressed
// layers; the script checks once that both archives hold the same layers
// (every layer member hashes to the config's diff ID), then alternates the
// two ROUNDS times, each into a new file, and compares medians.
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const { median, timed, buildRootfs, pushRootfs } = require('./common');

const run = promisify(execFile);
const TARGET_BYTES = Number(process.env.K3_BENCH_BYTES || 380e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
const GOAL = 2;

const secs = (ms) => (ms / 1000).toFixed(2);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// What a docker-archive holds: its manifest.json, the config it names, and
// for each layer member its size and sha256 (which must be its diff ID).
function describeArchive(file) {
  const member = (name) => execFileSync('tar', ['-xOf', file, name], { maxBuffer: 64 << 20 });
  const manifest = JSON.parse(member('manifest.json'));
  if (manifest.length !== 1) throw new Error(`${file}: ${manifest.length} images in manifest.json, expected 1`);
  const config = JSON.parse(member(manifest[0].Config));
  const sizes = new Map();
  for (const line of execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' }).split('\n')) {
    const m = line.match(/^\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.*)$/);
    if (m) sizes.set(m[2], Number(m[1]));
  }
  const layers = manifest[0].Layers.map((name) => {
    const hash = execFileSync('sh', ['-c', 'tar -xOf "$1" "$2" | sha256sum', 'sh', file, name], { encoding: 'utf8' }).split(' ')[0];
    return { name, size: sizes.get(name), digest: `sha256:${hash}` };
  });
  return { repoTags: manifest[0].RepoTags, diffIds: config.rootfs.diff_ids, layers, bytes: fs.statSync(file).size };
}

// Both archives must be the same image: the same diff IDs in the config,
// and layer members whose bytes really are those diff IDs.
function checkSameImage(ours, peer, pushed) {
  const want = pushed.config.rootfs.diff_ids;
  for (const [who, a] of [['k3-core', ours], ['skopeo', peer]]) {
    if (JSON.stringify(a.diffIds) !== JSON.stringify(want)) {
      throw new Error(`${who}'s archive lists diff IDs ${a.diffIds.join(', ')}, the pushed image ${want.join(', ')}`);
    }
    a.layers.forEach((l, i) => {
      if (l.digest !== want[i]) throw new Error(`${who}'s layer ${l.name} hashes to ${l.digest}, not its diff ID ${want[i]}`);
    });
  }
  console.log('both archives hold the same image:');
  want.forEach((d, i) => console.log(`  layer ${i + 1} ${d.slice(0, 19)}…  ${mb(ours.layers[i].size)} (k3-core ${ours.layers[i].name}, skopeo ${peer.layers[i].name})`));
  console.log(`  RepoTags: k3-core ${JSON.stringify(ours.repoTags)}, skopeo ${JSON.stringify(peer.repoTags)}`);
  console.log(`  archive sizes: k3-core ${mb(ours.bytes)}, skopeo ${mb(peer.bytes)}\n`);
}

async function main() {
  const skopeo = whichSync('skopeo');
  const missing = registryAvailable() || (!skopeo && 'skopeo is not installed');
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-save-'));
  const reg = await startRegistry();
  try {
    console.log('building the rootfs from this machine\'s /usr ...');
    const tree = buildRootfs(path.join(work, 'src'), TARGET_BYTES);
    const pushed = await pushRootfs(reg, 'bench/debian', '1', tree.layers);
    fs.rmSync(path.join(work, 'src'), { recursive: true, force: true });
    const ref = `${reg.host}/bench/debian:1`;
    const gz = pushed.layers.reduce((n, l) => n + l.size, 0);
    console.log(`image: ${mb(tree.bytes)} of files, ${tree.entries} entries, 3 gzip layers (${mb(gz)} compressed), pushed to ${reg.host}\n`);

    const k3 = new K3Core({ root: path.join(work, 'store') });
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    const ours = (file, onProgress) => k3.imageCore.saveImage(ref, file, { source: 'registry', tlsVerify: false, onProgress });
    const peer = (file) => run(skopeo, ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `docker-archive:${file}:${ref}`]);

    // One untimed save each, to compare like with like (and to warm the
    // registry's files into the page cache for both).
    await ours(path.join(out, 'check-k3.tar'));
    await peer(path.join(out, 'check-skopeo.tar'));
    checkSameImage(describeArchive(path.join(out, 'check-k3.tar')), describeArchive(path.join(out, 'check-skopeo.tar')), pushed);
    fs.rmSync(path.join(out, 'check-k3.tar'));
    fs.rmSync(path.join(out, 'check-skopeo.tar'));

    // The VM's disk swings from one moment to the next: alternate who goes
    // first, write a new file each time (replacing one would also time the
    // freeing of its blocks, on a disk mounted with discard), take medians.
    // Our save writes the archive while later layers are still being
    // fetched and inflated, so its time is one figure, not two phases.
    const times = { ours: [], peer: [] };
    const oursTimed = async (file) => times.ours.push((await timed(() => ours(file))).ms);
    for (let r = 0; r < ROUNDS; r++) {
      const steps = [
        () => oursTimed(path.join(out, `k3-${r}.tar`)),
        async () => times.peer.push((await timed(() => peer(path.join(out, `skopeo-${r}.tar`)))).ms),
      ];
      if (r % 2) steps.reverse();
      for (const step of steps) await step();
      fs.rmSync(path.join(out, `k3-${r}.tar`), { force: true });
      fs.rmSync(path.join(out, `skopeo-${r}.tar`), { force: true });
    }
    const list = (ms) => ms.map(secs).join(', ');
    console.log(`k3-core saveImage {source: 'registry'}   rounds ${list(times.ours)} s`);
    console.log(`skopeo copy docker:// docker-archive:    rounds ${list(times.peer)} s (rounds 2, 4, ... ran skopeo first)`);
    const ratio = median(times.peer) / median(times.ours);
    console.log(`save registry->docker-archive: k3-core ${secs(median(times.ours))} s, skopeo copy ${secs(median(times.peer))} s, `
      + `ratio ${ratio.toFixed(2)}x (goal >= ${GOAL}x) ${ratio >= GOAL ? 'met' : 'NOT MET'} (medians of ${ROUNDS})`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
