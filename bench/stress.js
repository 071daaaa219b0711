#!/usr/bin/env node
'use strict';
// N processes doing M mixed operations each on one store root: pulls of
// three images that share a base layer (from a local docker-registry),
// creates, exports, commits, saves, loads and removals of containers and
// images, picked at random. Prints throughput and every failure by class;
// the goal is 0 failures other than the typed conflicts the README lists.
//
//   node bench/stress.js [N=6] [M=40]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRegistry } = require('../test/helpers/registry');
const { pushStressImages, runStress, tally } = require('../test/helpers/stress');

async function main() {
  const procs = Number(process.argv[2] || 6);
  const ops = Number(process.argv[3] || 40);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-stress-'));
  const reg = await startRegistry();
  try {
    const refs = await pushStressImages(reg);
    const r = await runStress({ storeRoot: path.join(tmp, 'store'), refs, procs, ops, work: path.join(tmp, 'work') });
    console.log(`${procs} processes x ${ops} operations on one root: ${r.results.length} outcomes in ${r.seconds.toFixed(1)} s`);
    console.log(`  ${r.done} operations did work (${(r.done / r.seconds).toFixed(1)}/s), ${r.results.filter((x) => x.idle).length} found nothing to do`);
    console.log(`  typed conflicts: ${r.typed.length}`, tally(r.typed));
    console.log(`  other failures: ${r.untyped.length}`, tally(r.untyped));
    for (const f of r.untyped.slice(0, 10)) console.log(`    ${f.op}: ${f.name}: ${f.message}`);
    process.exitCode = r.untyped.length === 0 ? 0 : 1;
  } finally {
    await reg.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
