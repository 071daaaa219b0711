'use strict';
// kill -9 at many moments of pull, load, create, commit, export and save:
// after each kill, a new process opens the store (which repairs what the
// kill left), and then every record must have its files, every file its
// record, and the store must still pull, create and export.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const { pushStressImages } = require('./helpers/stress');
const { need } = require('./helpers/need');
const { assertStoreWhole } = require('./helpers/storecheck');

const skip = need(registryAvailable() || (whichSync('sqlite3') ? null : 'sqlite3 (the CLI) is not installed'));
const root = path.resolve(__dirname, '..');
const KILLS_PER_OP = 8;

let tmp;
let reg;
let refs;
let store;

// A child that opens the store, says so, then runs one operation over and
// over (each round doing real work), so that a kill after any delay lands
// inside one.
const LOOP = `
const K3Core = require(${JSON.stringify(root)});
const path = require('node:path');
const k3 = new K3Core({ root: process.env.KILL_ROOT });
const [a, b, c] = JSON.parse(process.env.KILL_REFS);
const work = process.env.KILL_WORK;
const repo = (r) => r.slice(0, r.lastIndexOf(':'));
const container = async () => (await k3.containerCore.listContainers())[0] || k3.containerCore.createContainer(a);
let n = 0;
const ops = {
  pull: async () => { await k3.imageCore.pullAnImage(repo(c), '1'); await k3.imageCore.removeImage(c); },
  load: async () => { await k3.imageCore.loadImage(path.join(work, 'saved.tar')); await k3.imageCore.removeImage(b); },
  create: async () => { await k3.containerCore.createContainer(a); },
  commit: async () => { const c = await container(); await k3.containerCore.commitContainer(c.Id, { repository: 'killed/commit', tag: String(n++) }); },
  export: async () => { const c = await container(); await k3.containerCore.exportContainer(c.Id, path.join(work, 'export.tar')); },
  save: async () => { await k3.imageCore.saveImage(a, path.join(work, 'save-' + (n++ % 2) + '.tar')); },
};
(async () => {
  await k3.imageCore.listImages();
  process.stdout.write('ready\\n');
  for (;;) await ops[process.env.KILL_OP]();
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

// What a fresh process finds: it opens the store (the repair runs), then
// pulls, creates, exports and removes.
const CHECK = `
const K3Core = require(${JSON.stringify(root)});
const path = require('node:path');
const k3 = new K3Core({ root: process.env.KILL_ROOT });
const c = JSON.parse(process.env.KILL_REFS)[2];
(async () => {
  await k3.imageCore.listImages();
  const repair = require('node:fs').readdirSync(path.join(process.env.KILL_ROOT, 'tmp'));
  await k3.imageCore.pullAnImage(c.slice(0, c.lastIndexOf(':')), '1');
  const made = await k3.containerCore.createContainer(c);
  await k3.containerCore.exportContainer(made.Id, path.join(process.env.KILL_WORK, 'check.tar'));
  await k3.containerCore.removeContainer(made.Id);
  process.stdout.write(JSON.stringify({ staging: repair }));
})().catch((e) => { process.stdout.write(JSON.stringify({ thrown: e.name + ': ' + ((e.details && e.details.error) || e.message) })); });
`;

function env() {
  return { ...process.env, KILL_ROOT: store, KILL_REFS: JSON.stringify(refs), KILL_WORK: path.join(tmp, 'work') };
}

function node(program, extra = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', program], { env: { ...env(), ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ out, err, code, signal }));
  });
}

// Starts the op's loop, waits until it is ready, lets it work for ms, then
// kills it with SIGKILL; resolves when it is gone.
function killAfter(op, ms) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', LOOP], { env: { ...env(), KILL_OP: op }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let killed = false;
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => {
      if (!killed && String(d).includes('ready')) {
        killed = true;
        setTimeout(() => child.kill('SIGKILL'), ms);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`${op} loop ended by itself (${code}): ${err}`));
      else resolve();
    });
  });
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-kill-'));
  store = path.join(tmp, 'store');
  fs.mkdirSync(path.join(tmp, 'work'));
  reg = await startRegistry();
  refs = await pushStressImages(reg, { fileCount: 200, fileSize: 16384 });
  const K3Core = require('..');
  const k3 = new K3Core({ root: store });
  // a stays for containers; b is saved, and loaded and removed by the load
  // loop; c is pulled and removed by the pull loop, and by each check.
  for (const ref of refs.slice(0, 2)) await k3.imageCore.pullAnImage(ref.slice(0, ref.lastIndexOf(':')), '1');
  await k3.imageCore.saveImage(refs[1], path.join(tmp, 'work', 'saved.tar'));
});

after(async () => {
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('kill -9 at many moments of pull, load, create, commit, export and save leaves a store that is whole and works', { skip, timeout: 600000 }, async () => {
  const moments = [];
  for (const op of ['pull', 'load', 'create', 'commit', 'export', 'save']) {
    // Spread over the first second of work: an operation here takes from
    // a few to a few hundred milliseconds, so the kills fall before, in
    // and between the steps of one and of the next.
    for (let i = 0; i < KILLS_PER_OP; i++) {
      const ms = Math.round((i + Math.random()) * (1000 / KILLS_PER_OP));
      await killAfter(op, ms);
      const moment = `${op} killed ${ms} ms in`;
      moments.push(moment);
      const check = await node(CHECK);
      const found = JSON.parse(check.out || '{}');
      assert.equal(found.thrown, undefined, `${moment}: the store no longer works: ${found.thrown} ${check.err}`);
      assert.deepEqual(found.staging, [], `${moment}: opening the store left staging behind`);
      assertStoreWhole(store, moment);
    }
  }
  console.log(`${moments.length} kill moments:\n  ${moments.join('\n  ')}`);
  assert.equal(moments.length, 6 * KILLS_PER_OP);
});
