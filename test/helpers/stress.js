'use strict';
// Many processes on one store root: each child runs a random mix of pulls,
// creates, exports, commits, saves, loads and removals, and reports every
// operation's outcome. Shared by bench/stress.js (timed, printed) and
// test/concurrency.test.js (asserted).

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const images = require('./images');

const root = path.resolve(__dirname, '..', '..');

// The failures two processes may rightly cause each other: what one removed,
// the other no longer finds; what one uses, the other may not remove.
const TYPED_CONFLICTS = new Set([
  'ImageNotFoundLocally',
  'ContainerNotFound',
  'ImageInUse',
  'ImageHasSeveralNames',
  'ContainerNameInUse',
]);

// Three images that share a base layer, so that processes pull, unpack,
// record and remove the same layers at once.
async function pushStressImages(reg, { fileCount = 200, fileSize = 8192 } = {}) {
  const files = (prefix) => Array.from({ length: fileCount }, (_, i) => ({
    path: `${prefix}/f${i}`, content: crypto.randomBytes(fileSize),
  }));
  const base = images.makeLayer([{ path: 'bin/', type: 'dir' }, ...files('base')]);
  const refs = [];
  for (const name of ['a', 'b', 'c']) {
    const img = images.makeImage({ layers: [base, files(name), [{ path: `${name}.txt`, content: name }]] });
    await images.pushImage(reg, `stress/${name}`, '1', img);
    refs.push(`${reg.host}/stress/${name}:1`);
  }
  return refs;
}

// The child's program: `ops` random operations, one JSON line per outcome.
const WORKER = `
const K3Core = require(process.env.K3_MODULE);
const fs = require('node:fs');
const path = require('node:path');
const k3 = new K3Core({ root: process.env.STRESS_ROOT });
const refs = JSON.parse(process.env.STRESS_REFS);
const work = process.env.STRESS_WORK;
let seed = Number(process.env.STRESS_SEED) >>> 0 || 1;
const rand = (n) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed % n; };
const pick = (xs) => xs[rand(xs.length)];
const images = async () => (await k3.imageCore.listImages()).filter((i) => i.RepoTags.length > 0);
const containers = () => k3.containerCore.listContainers();
let n = 0;
const ops = {
  pull: async () => { const r = pick(refs); await k3.imageCore.pullAnImage(r.slice(0, r.lastIndexOf(':')), '1'); },
  create: async () => { await k3.containerCore.createContainer(pick(refs)); },
  export: async () => { const c = pick(await containers()); if (!c) return 'idle';
    await k3.containerCore.exportContainer(c.Id, path.join(work, 'export-' + process.pid + '.tar')); },
  commit: async () => { const c = pick(await containers()); if (!c) return 'idle';
    await k3.containerCore.commitContainer(c.Id, { repository: 'stress/committed', tag: process.pid + '-' + (n++) }); },
  save: async () => { const i = pick(await images()); if (!i) return 'idle';
    await k3.imageCore.saveImage(i.RepoTags[0], path.join(work, 'save-' + process.pid + '.tar')); },
  load: async () => { const f = path.join(work, 'save-' + process.pid + '.tar'); if (!fs.existsSync(f)) return 'idle';
    await k3.imageCore.loadImage(f); },
  removeContainer: async () => { const c = pick(await containers()); if (!c) return 'idle';
    await k3.containerCore.removeContainer(c.Id, { force: true }); },
  removeImage: async () => { const i = pick(await images()); if (!i) return 'idle';
    await k3.imageCore.removeImage(i.RepoTags[0]); },
};
const names = Object.keys(ops);
(async () => {
  for (let i = 0; i < Number(process.env.STRESS_OPS); i++) {
    const op = pick(names);
    const t = Date.now();
    try {
      const idle = await ops[op]();
      process.stdout.write(JSON.stringify({ op, ok: true, idle: idle === 'idle', ms: Date.now() - t }) + '\\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ op, ok: false, name: e.name, message: (e.details && e.details.error) || e.message }) + '\\n');
    }
  }
})();
`;

function runWorker(env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WORKER], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (code !== 0) lines.push({ op: 'process', ok: false, name: 'ProcessDied', message: `exit ${code ?? signal}: ${err.slice(-2000)}` });
      resolve(lines);
    });
  });
}

// Runs procs children of ops operations each on storeRoot; resolves the
// outcomes, counted, and the elapsed time.
async function runStress({ storeRoot, refs, procs, ops, work, seed = 1 }) {
  fs.mkdirSync(work, { recursive: true });
  const start = process.hrtime.bigint();
  const results = (await Promise.all(Array.from({ length: procs }, (_, i) => runWorker({
    K3_MODULE: process.env.K3_STRESS_MODULE || root, STRESS_ROOT: storeRoot, STRESS_REFS: JSON.stringify(refs), STRESS_WORK: work,
    STRESS_OPS: String(ops), STRESS_SEED: String(seed * 1000 + i + 1),
  })))).flat();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const done = results.filter((r) => r.ok && !r.idle).length;
  const typed = results.filter((r) => !r.ok && TYPED_CONFLICTS.has(r.name));
  const untyped = results.filter((r) => !r.ok && !TYPED_CONFLICTS.has(r.name));
  return { results, seconds, done, typed, untyped };
}

// Counts failures by class and operation, for printing.
function tally(failures) {
  const counts = {};
  for (const f of failures) {
    const key = `${f.op}: ${f.name}`;
    counts[key] = (counts[key] || 0) + 1;
  }
  return counts;
}

module.exports = { pushStressImages, runStress, tally, TYPED_CONFLICTS };
