#!/usr/bin/env node
'use strict';
// A container's whole short life as an ordinary user, beside podman as the
// same user, from one run: create + start + wait for `true` + remove in a
// store under the user's home, against `podman run --rm --network none`
// with the same runtime (runc). Both run in one child process as the user
// (test/helpers/ordinary-user.js), with no login session, taking turns
// round by round; medians.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { ordinaryUserReasons, ordinaryUser, runAs } = require('../test/helpers/ordinary-user');
const { containerRunReasons, writeBusyboxLayout } = require('../test/helpers/runc');
const { whichSync } = require('../test/helpers/registry');

const ROUNDS = 11;

// In the child, as the user: both sides, alternated, each after a warm-up.
async function bothSides(K3Core, input) {
  const { execFile } = require('node:child_process');
  const { promisify } = require('node:util');
  const os = require('node:os');
  const path = require('node:path');
  const fs = require('node:fs');
  const run = promisify(execFile);
  const root = path.join(os.homedir(), `k3-bench-rootless-${input.run}`);
  fs.rmSync(root, { recursive: true, force: true });
  const k3 = new K3Core({ root, runtime: 'runc' });
  await k3.imageCore.pullAnImage(input.layout, 'bench:true', { containerImageTransport: 'oci' });
  const ours = async () => {
    const c = await k3.containerCore.createContainer('bench:true', { network: 'none', cmd: ['true'] });
    await k3.containerCore.startContainer(c.Id);
    const { ExitCode } = await k3.containerCore.waitContainer(c.Id);
    await k3.containerCore.removeContainer(c.Id);
    if (ExitCode !== 0) throw new Error(`true exited ${ExitCode}`);
  };
  const podman = input.podman;
  let peer = null;
  let image;
  if (podman) {
    await run(podman, ['system', 'migrate']);
    // podman names an image pulled from a layout after its (lowercase) path;
    // its ID, the last line pull -q prints, is what runs and is removed.
    image = (await run(podman, ['pull', '-q', `oci:${input.layout}`])).stdout.trim().split('\n').pop();
    peer = () => run(podman, ['--runtime', 'runc', 'run', '--rm', '--network', 'none', image, 'true']);
  }
  const time = async (fn) => {
    const t = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  const times = { ours: [], peer: [] };
  await ours();
  if (peer) await peer();
  for (let i = 0; i < input.rounds; i++) {
    times.ours.push(await time(ours));
    if (peer) times.peer.push(await time(peer));
  }
  fs.rmSync(root, { recursive: true, force: true });
  if (podman) await run(podman, ['rmi', '-f', image]).catch(() => {});
  return times;
}

async function main() {
  const missing = ordinaryUserReasons() || containerRunReasons();
  if (missing) return console.log(`bench skipped: ${missing}`);
  // Lowercase, so podman can name the image after the path.
  const work = path.join(os.tmpdir(), `k3-bench-rootless-${process.pid}`);
  fs.mkdirSync(work, { mode: 0o755 });
  try {
    const layout = path.join(work, 'layout');
    writeBusyboxLayout(layout, 'bench:true', ['true']);
    fs.chmodSync(work, 0o755);
    require('node:child_process').execFileSync('chmod', ['-R', 'a+rX', layout]);
    const podman = whichSync('podman');
    const r = await runAs(ordinaryUser(), bothSides, { layout, podman, rounds: ROUNDS, run: process.pid }, { timeout: 600000 });
    if (r.code !== 0) throw new Error(`${r.error && (r.error.full || r.error.message)}\n${r.stderr}`);
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const ours = median(r.result.ours);
    console.log('user run'.padEnd(9), 'k3-core create+start+wait+remove, as a user'.padEnd(50), `${ours.toFixed(1)} ms (median of ${ROUNDS})`);
    if (!podman) return console.log('podman is not installed: peer comparison skipped');
    const peer = median(r.result.peer);
    const ratio = peer / ours;
    console.log(''.padEnd(9), 'podman run --rm --network none (runc), as the user'.padEnd(50), `${peer.toFixed(1)} ms (median of ${ROUNDS})`);
    console.log(''.padEnd(9), `ratio ${ratio.toFixed(2)}x (goal >= 1x) ${ratio >= 1 ? 'met' : 'NOT MET'}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
