#!/usr/bin/env node
'use strict';
// The store's speed goals on a realistic rootfs, beside the peers, from one
// run. The rootfs is real Debian files (copied from this machine's /usr, a
// few hundred MB and thousands of entries), pushed as a 3-layer image to a
// local docker-registry. Prints each figure and its ratio.
//
//   pull into the store        vs  podman pull
//   export .tar                vs  podman export, and GNU tar -cf of the merged tree (floor)
//   export .tar.gz             vs  GNU tar -czf of the merged tree
//   peak RSS growth and event-loop delay during export
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const images = require('../test/helpers/images');

const run = promisify(execFile);
const TARGET_BYTES = Number(process.env.K3_BENCH_BYTES || 380e6);
const SOURCES = ['/usr/lib', '/usr/share', '/usr/bin', '/usr/include'];

const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
async function timed(fn) {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

// Copies files from the host until the budget is spent, into three layer
// directories (the same split a Dockerfile's base, packages and app layers give).
function buildRootfs(dir) {
  const layers = [0, 1, 2].map((i) => path.join(dir, `layer${i}`));
  layers.forEach((l) => fs.mkdirSync(l, { recursive: true }));
  let bytes = 0;
  let entries = 0;
  const walk = (src) => {
    if (bytes >= TARGET_BYTES) return;
    let list;
    try {
      list = fs.readdirSync(src, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const d of list) {
      if (bytes >= TARGET_BYTES) return;
      const p = path.join(src, d.name);
      const layer = layers[Math.min(2, Math.floor((bytes / TARGET_BYTES) * 3))];
      const dest = path.join(layer, p);
      try {
        if (d.isDirectory()) {
          fs.mkdirSync(dest, { recursive: true });
          entries++;
          walk(p);
        } else if (d.isFile()) {
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.copyFileSync(p, dest);
          bytes += fs.statSync(p).size;
          entries++;
        } else if (d.isSymbolicLink()) {
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.symlinkSync(fs.readlinkSync(p), dest);
          entries++;
        }
      } catch {
        // unreadable host files are simply left out
      }
    }
  };
  SOURCES.forEach(walk);
  return { layers, bytes, entries };
}

async function pushRootfs(reg, dir, layers) {
  const built = [];
  for (const l of layers) {
    const tarFile = `${l}.tar`;
    execFileSync('tar', ['--numeric-owner', '--sort=name', '-cf', tarFile, '-C', l, '.']);
    execFileSync('gzip', ['-6', '-n', '-k', '-f', tarFile]);
    const tar = fs.readFileSync(tarFile);
    const blob = fs.readFileSync(`${tarFile}.gz`);
    built.push({ tar, blob, digest: images.sha256(blob), diffId: images.sha256(tar), size: blob.length, gzip: true });
  }
  const img = images.makeImage({ layers: built, mediaType: 'docker', config: { Cmd: ['/usr/bin/true'] } });
  await images.pushImage(reg, 'bench/rootfs', 'v1', img);
  return img;
}

async function main() {
  const missing = registryAvailable();
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-'));
  const reg = await startRegistry();
  const podman = whichSync('podman');
  try {
    console.log('building the rootfs from this machine\'s /usr ...');
    const tree = buildRootfs(path.join(work, 'src'));
    await pushRootfs(reg, work, tree.layers);
    const ref = `${reg.host}/bench/rootfs:v1`;
    console.log(`rootfs: ${(tree.bytes / 1e6).toFixed(0)} MB, ${tree.entries} entries, 3 layers, pushed to ${reg.host}\n`);

    const k3 = new K3Core({ root: path.join(work, 'store') });
    const ours = await timed(() => k3.imageCore.pullAnImage(ref));
    console.log(`pull       k3-core pullAnImage           ${seconds(ours.ms)}`);
    if (podman) {
      await run(podman, ['rmi', '-f', ref]).catch(() => {});
      const peer = await timed(() => run(podman, ['pull', '-q', '--tls-verify=false', ref]));
      console.log(`           podman pull                   ${seconds(peer.ms)}   ratio ${(peer.ms / ours.ms).toFixed(2)}x (goal >= 2x)`);
    }

    await k3.containerCore.createContainer(ref, { name: 'bench' });
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    const exp = await timed(() => k3.containerCore.exportContainer('bench', path.join(out, 'k3.tar')));
    console.log(`\nexport     k3-core exportContainer .tar  ${seconds(exp.ms)}`);

    if (podman) {
      const id = (await run(podman, ['create', ref, '/usr/bin/true'])).stdout.trim();
      const peer = await timed(() => run(podman, ['export', '-o', path.join(out, 'podman.tar'), id]));
      console.log(`           podman export                 ${seconds(peer.ms)}   ratio ${(peer.ms / exp.ms).toFixed(2)}x (goal >= 2x)`);
      await run(podman, ['rm', '-f', id]);
    }
    const merged = path.join(work, 'merged');
    fs.mkdirSync(merged);
    execFileSync('tar', ['-xpf', path.join(out, 'k3.tar'), '-C', merged]);
    execFileSync('sync');
    const floor = await timed(() => run('tar', ['--numeric-owner', '-cf', path.join(out, 'gnu.tar'), '-C', merged, '.']));
    console.log(`           GNU tar -cf (floor)           ${seconds(floor.ms)}   ratio ${(floor.ms / exp.ms).toFixed(2)}x (goal >= 1x)`);

    const gz = await timed(() => k3.containerCore.exportContainer('bench', path.join(out, 'k3.tar.gz')));
    console.log(`\nexport     k3-core exportContainer .tar.gz ${seconds(gz.ms)}`);
    const gnuGz = await timed(() => run('tar', ['--numeric-owner', '-czf', path.join(out, 'gnu.tar.gz'), '-C', merged, '.']));
    console.log(`           GNU tar -czf                  ${seconds(gnuGz.ms)}   ratio ${(gnuGz.ms / gz.ms).toFixed(2)}x (goal >= 1.7x)`);

    // Memory and event-loop delay in a process that does nothing but export,
    // so the pull's own peak does not hide the export's.
    const probe = `
      const K3Core = require(${JSON.stringify(path.resolve(__dirname, '..'))});
            (async () => {
        const k3 = new K3Core({ root: ${JSON.stringify(path.join(work, 'store'))} });
        await k3.containerCore.listContainers();
        const before = process.resourceUsage().maxRSS;
        const lag = monitorEventLoopDelay({ resolution: 1 });
        lag.enable();
        await k3.containerCore.exportContainer('bench', ${JSON.stringify(path.join(out, 'probe.tar'))});
        lag.disable();
        console.log(JSON.stringify({ growthMiB: (process.resourceUsage().maxRSS - before) / 1024, p99: lag.percentile(99) / 1e6 }));
      })();`;
    const m = JSON.parse((await run(process.execPath, ['-e', probe])).stdout);
    console.log(`\nduring a .tar export: peak RSS growth ${m.growthMiB.toFixed(1)} MiB (goal < 64), event-loop delay p99 ${m.p99.toFixed(2)} ms (goal < 20)`);
  } finally {
    await reg.stop();
    if (podman) await run(podman, ['rmi', '-f', `${reg.host}/bench/rootfs:v1`]).catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
