#!/usr/bin/env node
'use strict';
// A container's whole short life, beside podman's, from one run: create +
// start + wait for `true` + remove, against `podman run --rm --network none`
// of the same image with the same runtime (runc). Medians of 20.
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const images = require('../test/helpers/images');

const run = promisify(execFile);
const ROUNDS = 20;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const missing = registryAvailable() || (process.getuid() !== 0 && 'not root')
    || (!whichSync('runc') && 'runc is not installed') || (!fs.existsSync('/bin/busybox') && 'busybox-static is not installed');
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-run-'));
  const reg = await startRegistry();
  const podman = whichSync('podman');
  try {
    const img = images.makeImage({
      layers: [[{ path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
        { path: 'bin/true', type: 'symlink', linkname: 'busybox' }]],
      config: { Cmd: ['/bin/true'] },
    });
    await images.pushImage(reg, 'bench/true', 'v1', img);
    const ref = `${reg.host}/bench/true:v1`;
    const k3 = new K3Core({ root: path.join(work, 'store'), runtime: 'runc' });
    await k3.imageCore.pullAnImage(ref);
    const ours = [];
    for (let i = 0; i < ROUNDS + 2; i++) {
      const t = process.hrtime.bigint();
      const c = await k3.containerCore.createContainer(ref);
      await k3.containerCore.startContainer(c.Id);
      const { ExitCode } = await k3.containerCore.waitContainer(c.Id);
      await k3.containerCore.removeContainer(c.Id);
      if (ExitCode !== 0) throw new Error(`true exited ${ExitCode}`);
      if (i >= 2) ours.push(Number(process.hrtime.bigint() - t) / 1e6); // two warm-ups
    }
    console.log(`run `.padEnd(8), `k3-core create+start+wait+remove`.padEnd(44), `${median(ours).toFixed(1)} ms (median of ${ROUNDS})`);
    if (!podman) return console.log('podman is not installed: peer comparison skipped');
    await run(podman, ['pull', '-q', '--tls-verify=false', ref]);
    // podman's default open-files limit is above this host's hard limit
    // (20000), and so is its process limit: without --ulimit, runc refuses them ("error setting rlimit type 7", "type 6").
    const args = ['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:20000', '--ulimit', 'nproc=4096:4096', ref];
    const peer = [];
    for (let i = 0; i < ROUNDS + 2; i++) {
      const t = process.hrtime.bigint();
      await run(podman, args);
      if (i >= 2) peer.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const ratio = median(peer) / median(ours);
    console.log(''.padEnd(8), `podman run --rm --network none (runc)`.padEnd(44), `${median(peer).toFixed(1)} ms (median of ${ROUNDS})`);
    console.log(''.padEnd(8), `ratio ${ratio.toFixed(2)}x (goal >= 1x) ${ratio >= 1 ? 'met' : 'NOT MET'}`);
    await run(podman, ['rmi', '-f', ref]).catch(() => {});
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
