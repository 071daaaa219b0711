#!/usr/bin/env node
'use strict';
// An ordinary user's pull beside `podman pull` as the same user, from one
// run. The image is the store bench's: a 3-layer tree of real Debian files
// from this machine's /usr (K3_BENCH_BYTES, 380 MB by default), pushed to a
// local docker-registry on 127.0.0.1. As k3user (test/helpers/ordinary-user.js,
// no login session), in one child process:
//
//   k3-core:  pullAnImage(ref) into a new store under the user's home (the
//             layers unpacked by the k3-userns helper in a user namespace
//             over the user's subordinate IDs)
//   podman:   podman --root R --runroot RR --storage-driver overlay pull
//             --tls-verify=false ref, with new storage of its own under the
//             user's home
//
// podman's overlay driver is its fastest here (native overlay in a user
// namespace); with no storage.conf, as on this machine, podman picks vfs,
// which copies every layer beneath each one and is far slower
// (K3_BENCH_PODMAN_DRIVER=vfs measures that).
//
// Every round starts from empty stores, so nothing is reused; they are all
// kept until the end, so that no removal of hundreds of MB of small files
// runs during a timed pull. Each side pulls once untimed first (warm
// caches), each timed pull starts after `sync`, the two take turns and swap
// which goes first; medians. The goal is a ratio podman/ours of at least 2.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { ordinaryUserReasons, ordinaryUser, runAs } = require('../test/helpers/ordinary-user');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const { median, buildRootfs, pushRootfs } = require('./common');

const TARGET_BYTES = Number(process.env.K3_BENCH_BYTES || 380e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
const GOAL = 2;
const PODMAN_DRIVER = process.env.K3_BENCH_PODMAN_DRIVER || 'overlay';

// In the child, as the user: both sides, alternated, each after a warm-up.
async function bothSides(K3Core, input) {
  const { execFileSync } = require('node:child_process');
  const fs = require('node:fs');
  const path = require('node:path');
  fs.mkdirSync(input.dir, { recursive: true });
  const podman = (dir, ...args) => execFileSync(input.podman,
    ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--storage-driver', input.driver, ...args], { encoding: 'utf8' });
  const sides = {
    ours: (dir) => new K3Core({ root: dir }).imageCore.pullAnImage(input.ref),
    peer: (dir) => podman(dir, 'pull', '-q', '--tls-verify=false', input.ref),
  };
  const timed = async (side, round) => {
    const dir = path.join(input.dir, `${side}-${round}`);
    execFileSync('sync');
    const t = process.hrtime.bigint();
    await sides[side](dir);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  const times = { ours: [], peer: [] };
  await timed('ours', 'warm');
  await timed('peer', 'warm');
  for (let r = 0; r < input.rounds; r++) {
    const order = r % 2 ? ['peer', 'ours'] : ['ours', 'peer'];
    for (const side of order) times[side].push(await timed(side, r));
  }
  return times;
}

async function main() {
  const podman = whichSync('podman');
  const missing = ordinaryUserReasons() || registryAvailable() || (podman ? '' : 'podman is not installed');
  if (missing) return console.log(`bench skipped: ${missing}`);
  const user = ordinaryUser();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-userpull-'));
  const dir = path.join(user.home, `k3-bench-userpull-${process.pid}`);
  const reg = await startRegistry();
  try {
    const tree = buildRootfs(path.join(work, 'src'), TARGET_BYTES);
    await pushRootfs(reg, 'bench/rootfs', 'v1', tree.layers, { Cmd: ['/usr/bin/true'] });
    fs.rmSync(path.join(work, 'src'), { recursive: true, force: true });
    const ref = `${reg.host}/bench/rootfs:v1`;
    const r = await runAs(user, bothSides, { ref, podman, dir, rounds: ROUNDS, driver: PODMAN_DRIVER }, { timeout: 1800000 });
    if (r.error) throw new Error(`as ${user.name}: ${r.error.full || r.error.message}\n${r.stderr}`);
    const secs = (ms) => (ms / 1000).toFixed(2);
    const { ours, peer } = r.result;
    const ratio = median(peer) / median(ours);
    console.log(`pull of ${(tree.bytes / 1e6).toFixed(0)} MB (${tree.entries} entries, 3 layers) from ${reg.host} as ${user.name}, new stores each round, median of ${ROUNDS}, alternated`);
    console.log(`  k3-core pullAnImage:                 ${secs(median(ours))} s   (${ours.map(secs).join(' ')})`);
    console.log(`  podman pull (${PODMAN_DRIVER}), the same user: ${secs(median(peer))} s   (${peer.map(secs).join(' ')})`);
    console.log(`  ratio podman/ours: ${ratio.toFixed(2)}x (goal >= ${GOAL}x) ${ratio >= GOAL ? 'met' : 'NOT MET'}`);
    console.log(`  load average: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
    // Files of the user's subordinate IDs: removed by root, here.
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
