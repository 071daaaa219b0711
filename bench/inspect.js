#!/usr/bin/env node
'use strict';
// inspectAnImage against a local docker-registry, beside what a Node user
// would otherwise do, from one run:
//   - execFile('skopeo', ['inspect', ...]) (the peer),
//   - two raw keep-alive GETs with Node's fetch, manifest + config (the floor),
//   - 200 concurrent inspects, with the event loop's delay meanwhile.
// Prints medians over 50 calls and the ratios.
const { execFile } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { promisify } = require('node:util');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('../test/helpers/registry');
const images = require('../test/helpers/images');

const run = promisify(execFile);
const CALLS = 50;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeEach(n, fn) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return times;
}

const fmt = (ms) => `${ms.toFixed(3)} ms`;

async function main() {
  const missing = registryAvailable();
  if (missing) {
    console.log(`bench skipped: ${missing}`);
    return;
  }
  const reg = await startRegistry();
  try {
    const img = images.makeImage({
      layers: Array.from({ length: 5 }, (_, i) => [{ path: `l${i}/f`, content: 'x'.repeat(1000 * (i + 1)) }]),
      config: { Labels: { bench: 'yes' } },
    });
    await images.pushImage(reg, 'bench/app', 'v1', img);
    const name = `${reg.host}/bench/app`;
    const k3 = new K3Core();
    const inspect = () => k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1' });

    const cold = await timeEach(1, inspect);
    await timeEach(5, inspect);
    const ours = median(await timeEach(CALLS, inspect));
    console.log(`k3-core inspectAnImage   cold ${fmt(cold[0])}, warm median ${fmt(ours)} over ${CALLS}`);

    // The floor: what the registry costs at all, two keep-alive GETs.
    const base = `${reg.url}/v2/bench/app`;
    const floorCall = async () => {
      const m = await fetch(`${base}/manifests/v1`, { headers: { Accept: img.mediaType } });
      const manifest = await m.json();
      const c = await fetch(`${base}/blobs/${manifest.config.digest}`);
      await c.arrayBuffer();
    };
    await timeEach(5, floorCall);
    const floor = median(await timeEach(CALLS, floorCall));
    console.log(`fetch manifest+config    warm median ${fmt(floor)} over ${CALLS}`);
    console.log(`  ratio floor/k3-core: ${(floor / ours).toFixed(2)}x (>= 1 means k3-core is not slower than the floor)`);

    const skopeo = whichSync('skopeo');
    if (skopeo) {
      const skopeoCall = () => run(skopeo, ['inspect', '--tls-verify=false', '--no-tags', `docker://${name}:v1`]);
      await timeEach(3, skopeoCall);
      const peer = median(await timeEach(CALLS, skopeoCall));
      console.log(`execFile skopeo inspect  median ${fmt(peer)} over ${CALLS}`);
      console.log(`  ratio skopeo/k3-core: ${(peer / ours).toFixed(1)}x faster (goal: >= 10x)`);
    } else {
      console.log('skopeo is not installed: peer comparison skipped');
    }

    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const t = process.hrtime.bigint();
    const results = await Promise.allSettled(Array.from({ length: 200 }, inspect));
    const wall = Number(process.hrtime.bigint() - t) / 1e6;
    lag.disable();
    const failed = results.filter((r) => r.status === 'rejected').length;
    console.log(`200 concurrent inspects  ${fmt(wall)} wall, ${failed} failed, event-loop delay p99 ${fmt(lag.percentile(99) / 1e6)} (goal: < 20 ms), max ${fmt(lag.max / 1e6)}`);
  } finally {
    await reg.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
