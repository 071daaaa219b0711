#!/usr/bin/env node
'use strict';
// A stream export beside the file export of the same container: the goal is
// at most 1.05x the file export's time. The stream is a Node Writable (an
// fs.WriteStream to a new file on the same disk), so both write the same
// bytes to the same place and differ only in the path through Node. Rounds
// alternate, each starts after a sync, and medians are compared.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { finished } = require('node:stream/promises');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('../test/helpers/registry');
const { median, timed, buildRootfs, pushRootfs } = require('./common');

const TARGET_BYTES = Number(process.env.K3_BENCH_BYTES || 380e6);
const ROUNDS = Number(process.env.K3_BENCH_ROUNDS || 5);
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
    await k3.containerCore.exportContainer('bench', fresh('warm', 0));
    fs.rmSync(fresh('warm', 0));
    const file = [];
    const stream = [];
    for (let r = 0; r < ROUNDS; r++) {
      file.push((await timed(() => k3.containerCore.exportContainer('bench', fresh('file', r)))).ms);
      stream.push((await timed(async () => {
        const sink = fs.createWriteStream(fresh('stream', r));
        await k3.containerCore.exportContainer('bench', sink);
        await finished(sink);
      })).ms);
      const same = fs.statSync(fresh('file', r)).size === fs.statSync(fresh('stream', r)).size;
      if (!same) throw new Error('the stream export and the file export differ in size');
      for (const name of ['file', 'stream']) fs.rmSync(fresh(name, r));
    }
    const fmt = (ms) => `${(median(ms) / 1000).toFixed(2)} s (median of ${ms.length}: ${ms.map((m) => (m / 1000).toFixed(2)).join(', ')})`;
    const ratio = median(stream) / median(file);
    console.log(`rootfs: ${(tree.bytes / 1e6).toFixed(0)} MB, ${tree.entries} entries`);
    console.log(`export   k3-core exportContainer .tar to a file        ${fmt(file)}`);
    console.log(`         k3-core exportContainer into a Writable       ${fmt(stream)}`);
    console.log(`         ratio ${ratio.toFixed(2)}x (goal <= ${GOAL}x) ${ratio <= GOAL ? 'met' : 'NOT MET'}`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
