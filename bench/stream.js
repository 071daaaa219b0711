#!/usr/bin/env node
'use strict';
// A stream export beside the file export of the same container: the goal is
// at most 1.05x the file export's time. The stream is a Node Writable (an
// fs.WriteStream to a new file on the same disk), so both write the same
// bytes to the same place and differ only in the path through Node. Both
// are run once untimed (caches warm), each timing starts after a sync, the
// two take turns and swap which goes first each round, and medians are
// compared. On a loaded machine wall time follows CPU time, so the
// process's CPU time (all its threads: the engine's and libuv's) is shown
// too: the stream carries every byte through a socket and the JS thread,
// two copies the file export does not make.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { finished } = require('node:stream/promises');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('../test/helpers/registry');
const { median, timed, buildRootfs, pushRootfs } = require('./common');

const TARGET_BYTES = Number(process.env.K3_BENCH_BYTES || 380e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 7);
const GOAL = 1.05;

async function main() {
  const missing = registryAvailable();
  if (missing) return console.log(`bench skipped: ${missing}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-bench-stream-'));
  const reg = await startRegistry();
  try {
    const tree = buildRootfs(path.join(work, 'src'), TARGET_BYTES);
    await pushRootfs(reg, 'bench/stream', 'v1', tree.layers, { Cmd: ['/usr/bin/true'] });
    const k3 = new K3Core({ root: path.join(work, 'store') });
    await k3.imageCore.pullAnImage(`${reg.host}/bench/stream:v1`);
    await k3.containerCore.createContainer(`${reg.host}/bench/stream:v1`, { name: 'bench' });
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    // Every output is a new file, removed after its round, so no round
    // frees the blocks of another.
    const fresh = (name, r) => path.join(out, `${name}-${r}.tar`);
    const exports = {
      file: (r) => k3.containerCore.exportContainer('bench', fresh('file', r)),
      stream: async (r) => {
        const sink = fs.createWriteStream(fresh('stream', r));
        await k3.containerCore.exportContainer('bench', sink);
        await finished(sink);
      },
    };
    for (const [name, run] of Object.entries(exports)) {
      await run('warm');
      fs.rmSync(fresh(name, 'warm'));
    }
    const ms = { file: [], stream: [] };
    const cpu = { file: [], stream: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['file', 'stream'] : ['stream', 'file'];
      for (const name of order) {
        let used;
        ms[name].push((await timed(async () => {
          const before = process.cpuUsage();
          await exports[name](r);
          used = process.cpuUsage(before);
        })).ms);
        cpu[name].push((used.user + used.system) / 1000);
      }
      const same = fs.statSync(fresh('file', r)).size === fs.statSync(fresh('stream', r)).size;
      if (!same) throw new Error('the stream export and the file export differ in size');
      for (const name of ['file', 'stream']) fs.rmSync(fresh(name, r));
    }
    const secs = (xs) => xs.map((m) => (m / 1000).toFixed(2)).join(', ');
    const fmt = (name) => `${(median(ms[name]) / 1000).toFixed(2)} s (median of ${ROUNDS}: ${secs(ms[name])}); ` +
      `CPU ${(median(cpu[name]) / 1000).toFixed(2)} s (${secs(cpu[name])})`;
    const ratio = median(ms.stream) / median(ms.file);
    const cpuRatio = median(cpu.stream) / median(cpu.file);
    console.log(`rootfs: ${(tree.bytes / 1e6).toFixed(0)} MB, ${tree.entries} entries, load average ${os.loadavg()[0].toFixed(1)}`);
    console.log(`export   k3-core exportContainer .tar to a file        ${fmt('file')}`);
    console.log(`         k3-core exportContainer into a Writable       ${fmt('stream')}`);
    console.log(`         ratio ${ratio.toFixed(2)}x (goal <= ${GOAL}x) ${ratio <= GOAL ? 'met' : 'NOT MET'}; CPU time ${cpuRatio.toFixed(2)}x`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
