#!/usr/bin/env node
'use strict';
// One exec of `true` in a running container, beside podman's: k3-core's
// execContainer (in process) and the k3 command (a new Node process each
// time, as podman exec is a new process each time), against `podman exec`
// in a container podman runs with the same runtime (runc) and image,
// `--network none`. Medians of 20, after two warm-ups.
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const { containerRunReasons } = require('../test/helpers/runc');
const images = require('../test/helpers/images');
const { median } = require('./common');

const run = promisify(execFile);
const ROUNDS = 20;
const K3 = path.join(__dirname, '..', 'bin', 'k3.js');

async function timedRounds(fn) {
  const times = [];
  for (let i = 0; i < ROUNDS + 2; i++) {
    const t = process.hrtime.bigint();
    await fn();
    if (i >= 2) times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

const line = (what, ms) => console.log(''.padEnd(8), what.padEnd(44), `${ms.toFixed(1)} ms (median of ${ROUNDS})`);

async function main() {
  const missing = registryAvailable() || containerRunReasons();
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-exec-'));
  const reg = await startRegistry();
  const podman = whichSync('podman');
  const root = path.join(work, 'store');
  try {
    const img = images.makeImage({
      layers: [[{ path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
        { path: 'bin/true', type: 'symlink', linkname: 'busybox' }, { path: 'bin/sleep', type: 'symlink', linkname: 'busybox' }]],
      config: { Cmd: ['/bin/sleep', '600'] },
    });
    await images.pushImage(reg, 'bench/exec', 'v1', img);
    const ref = `${reg.host}/bench/exec:v1`;
    const k3 = new K3Core({ root, runtime: 'runc' });
    await k3.imageCore.pullAnImage(ref);
    const c = await k3.containerCore.createContainer(ref);
    await k3.containerCore.startContainer(c.Id);
    let ours;
    let cli;
    try {
      ours = await timedRounds(async () => {
        const { ExitCode } = await k3.containerCore.execContainer(c.Id, ['true']);
        if (ExitCode !== 0) throw new Error(`true exited ${ExitCode}`);
      });
      cli = await timedRounds(() => run(process.execPath, [K3, 'exec', '--root', root, c.Id, 'true']));
    } finally {
      await k3.containerCore.removeContainer(c.Id, { force: true });
    }
    console.log('exec'.padEnd(8), 'k3-core execContainer(id, [\'true\'])'.padEnd(44), `${ours.toFixed(1)} ms (median of ${ROUNDS})`);
    line('k3 exec C true (a new node process)', cli);
    if (!podman) return console.log('podman is not installed: peer comparison skipped');
    await run(podman, ['pull', '-q', '--tls-verify=false', ref]);
    // The --ulimit flags: see bench/run.js (this host's hard limits).
    const name = `k3-bench-exec-${process.pid}`;
    await run(podman, ['--runtime', 'runc', 'run', '-d', '--name', name, '--network', 'none',
      '--ulimit', 'nofile=1024:20000', '--ulimit', 'nproc=4096:4096', ref]);
    let peer;
    try {
      peer = await timedRounds(() => run(podman, ['exec', name, 'true']));
    } finally {
      await run(podman, ['rm', '-f', '-t', '0', name]).catch(() => {});
      await run(podman, ['rmi', '-f', ref]).catch(() => {});
    }
    line('podman exec C true (runc)', peer);
    console.log(''.padEnd(8), `ratio podman / execContainer ${(peer / ours).toFixed(2)}x, podman / k3 exec ${(peer / cli).toFixed(2)}x`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
