'use strict';
// The call path itself: many calls in flight, calls from worker threads,
// workers terminated mid-call, cancellation, and a process that still exits
// when it has nothing left to do.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const K3Core = require('..');
const native = require('../js/native');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { startSilentServer } = require('./helpers/fakeRegistry');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping binding tests that need a registry: ${skip}`);

const root = path.resolve(__dirname, '..');
const k3 = new K3Core();
let reg;
let silent;
let img;

before(async () => {
  silent = await startSilentServer();
  if (skip) return;
  reg = await startRegistry();
  img = images.makeImage({ layers: [[{ path: 'a', content: 'concurrency' }]] });
  await images.pushImage(reg, 'bind/one', 'latest', img);
});

after(async () => {
  if (reg) await reg.stop();
  if (silent) await silent.stop();
});

function hungInspect(extra = {}) {
  const name = `${silent.host}/hang/forever`;
  return k3.imageCore.inspectAnImage(name, { imageName: name, ...extra });
}

test('the engine answers through the generic path (ping round trip)', async () => {
  assert.deepEqual(await native.call('ping', [{ a: 1, s: 'ünïcode ✓' }]), [{ a: 1, s: 'ünïcode ✓' }]);
});

test('an unknown method is a GenericFailure, not a crash', async () => {
  const err = await native.call('noSuchMethod', []).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.GenericFailure);
  assert.match(err.details.error, /unknown method "noSuchMethod"/);
});

test('200 concurrent inspects all succeed with the same answer', { skip }, async () => {
  const name = `${reg.host}/bind/one`;
  const results = await Promise.all(Array.from({ length: 200 }, () =>
    k3.imageCore.inspectAnImage(name, { imageName: name })));
  for (const r of results) assert.equal(r.Digest, img.manifestDigest);
});

test('the event loop keeps running while calls wait on the network', async () => {
  // Ten timer ticks while the call waits, then it is aborted: a call that
  // held the loop would end by its own timeout first, however slow the machine.
  const controller = new AbortController();
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
    if (ticks === 10) controller.abort();
  }, 5);
  const err = await hungInspect({ timeout: 60000, signal: controller.signal }).then(() => null, (e) => e);
  clearInterval(timer);
  assert.ok(err instanceof K3Core.errors.AbortError, `${err && err.name}: the call ended before ${ticks} timer ticks`);
});

test('calls from several worker threads at once', { skip }, async () => {
  const name = `${reg.host}/bind/one`;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const K3Core = require(workerData.root);
    const k3 = new K3Core();
    Promise.all(Array.from({ length: 25 }, () =>
      k3.imageCore.inspectAnImage(workerData.name, { imageName: workerData.name })))
      .then((rs) => parentPort.postMessage(rs.map((r) => r.Digest)),
            (e) => parentPort.postMessage({ error: e.name }));`;
  const runs = Array.from({ length: 4 }, () => new Promise((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData: { root, name } });
    w.once('message', (m) => { resolve(m); w.terminate(); });
    w.once('error', reject);
  }));
  for (const digests of await Promise.all(runs)) {
    assert.ok(Array.isArray(digests), JSON.stringify(digests));
    assert.equal(digests.length, 25);
    for (const d of digests) assert.equal(d, img.manifestDigest);
  }
});

test('terminating workers with calls in flight does not hurt the process', async () => {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const K3Core = require(workerData.root);
    const k3 = new K3Core();
    for (let i = 0; i < 20; i++) {
      k3.imageCore.inspectAnImage(workerData.name, { imageName: workerData.name, timeout: 400 }).catch(() => {});
    }
    setTimeout(() => parentPort.postMessage('started'), 20);`;
  const name = `${silent.host}/hang/worker`;
  const running = async () => (await native.call('engineGoroutines', [])).total;
  const before = await running();
  for (let round = 0; round < 5; round++) {
    const w = new Worker(source, { eval: true, workerData: { root, name } });
    await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    await w.terminate();
  }
  // The orphaned calls finish (their timeout) after their environments died.
  let now = await running();
  for (const end = Date.now() + 30000; now > before && Date.now() < end; now = await running()) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(now <= before, `${now - before} goroutines of the orphaned calls are still running`);
  assert.deepEqual(await native.call('ping', ['still alive']), ['still alive']);
});

test('AbortSignal: aborted before the call', async () => {
  const controller = new AbortController();
  controller.abort();
  const err = await hungInspect({ signal: controller.signal }).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.AbortError);
  assert.ok(err instanceof K3Core.errors.K3Error);
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
});

test('AbortSignal: aborting a call in flight rejects at once', async () => {
  const controller = new AbortController();
  const started = Date.now();
  const pending = hungInspect({ signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  const err = await pending.then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.AbortError, err && err.name);
  assert.ok(Date.now() - started < 5000);
  assert.equal(err.details.imageName, `${silent.host}/hang/forever`);
});

test('AbortSignal.timeout works as a signal too', async () => {
  const err = await hungInspect({ signal: AbortSignal.timeout(100) }).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.AbortError, err && err.name);
});

test('a process with an aborted hung call still exits by itself', async () => {
  const name = `${silent.host}/hang/exit`;
  const out = await runInChild(`
    const c = new AbortController();
    const p = new K3Core().imageCore.inspectAnImage(${JSON.stringify(name)}, { imageName: ${JSON.stringify(name)}, signal: c.signal });
    setTimeout(() => c.abort(), 50);
    done(await p.then(() => 'resolved', (e) => e.name));`);
  assert.equal(out, 'AbortError');
});

test('thousands of calls do not leak memory across the boundary', async () => {
  const payload = ['x'.repeat(16 * 1024)];
  const round = () => Promise.all(Array.from({ length: 500 }, () => native.call('ping', payload)));
  for (let i = 0; i < 4; i++) await round(); // warm up
  global.gc && global.gc();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 20; i++) await round(); // 10,000 calls, 160 MB through each direction
  global.gc && global.gc();
  const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(1)} MiB over 10,000 calls`);
});

// libuv installs its SIGCHLD handler without SA_ONSTACK; on a Go thread that
// crashes the process (seen as a SIGSEGV at address 0 while a goroutine
// waited for a child). Whatever the order of events, the handler the process
// ends up with must have SA_ONSTACK.
test('the SIGCHLD handler keeps SA_ONSTACK, whether children come before or after loading', { skip: need(whichStrace() ? false : 'strace is not installed') }, () => {
  const { spawnSync } = require('node:child_process');
  const scripts = {
    'children after loading': `const K3Core = require(${JSON.stringify(root)}); const { execFileSync } = require('node:child_process');
      execFileSync('true'); new K3Core({ root: '/tmp/k3-sig-' + process.pid }).imageCore.listImages().then(() => { execFileSync('true'); require('node:fs').rmSync('/tmp/k3-sig-' + process.pid, { recursive: true, force: true }); });`,
    'children after loading, before any call': `require(${JSON.stringify(root)}); require('node:child_process').execFileSync('true');`,
    'children before loading': `const { execFileSync } = require('node:child_process'); execFileSync('true');
      const K3Core = require(${JSON.stringify(root)}); execFileSync('true');`,
  };
  for (const [what, script] of Object.entries(scripts)) {
    const r = spawnSync('strace', ['-e', 'trace=rt_sigaction', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const installs = r.stderr.split('\n').filter((l) => /^rt_sigaction\(SIGCHLD, \{sa_handler=0x/.test(l));
    assert.ok(installs.length > 0, `${what}: no SIGCHLD handler was installed`);
    assert.match(installs[installs.length - 1], /SA_ONSTACK/, `${what}: ${installs[installs.length - 1]}`);
  }
});

function whichStrace() {
  return require('./helpers/registry').whichSync('strace');
}
