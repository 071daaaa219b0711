'use strict';
// One owner per container lifecycle: several processes changing one
// container at once each get a documented result, one of them makes each
// change, and the mounts and the runtime's containers agree with the store
// after; an aborted start leaves no process and no mount. Real runc.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const K3Core = require('..');
const { runInChild } = require('./helpers/child');
const { containerRunReasons, busyboxStore, mountsOf, runcStatus, monitorPids } = require('./helpers/runc');
const { need } = require('./helpers/need');

const skip = need(containerRunReasons());
const PROCESSES = 4;

let box;
let k3;
let root;

before(async () => {
  if (skip) return;
  box = await busyboxStore('k3-lifecycle-', 'busybox:lifecycle', ['sh', 'sleep']);
  k3 = box.k3;
  root = path.join(box.tmp, 'store');
});

after(async () => {
  if (box) await box.remove();
});

// Runs each of calls (a k3.containerCore call, as source) in a fresh Node
// process, all at the same moment: each says it is ready once it has loaded
// the library, and waits for the go that comes when all are. Each result
// is {ok: value} or {err: class name}.
let barriers = 0;
async function atOnce(calls) {
  const dir = path.join(box.tmp, `barrier-${barriers++}`);
  fs.mkdirSync(dir);
  const go = path.join(dir, 'go');
  const results = Promise.all(calls.map((call, i) => runInChild(`
    const fs = require('node:fs');
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    fs.writeFileSync(${JSON.stringify(path.join(dir, `ready-${i}`))}, '');
    while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));
    done(await k3.containerCore.${call}.then((ok) => ({ ok }), (e) => ({ err: e.name, error: e.details && e.details.error })));`)));
  let failed;
  results.catch((e) => { failed = e; });
  for (const end = Date.now() + 120000; fs.readdirSync(dir).length < calls.length && !failed; await new Promise((r) => setTimeout(r, 10))) {
    assert.ok(Date.now() < end, `${fs.readdirSync(dir).length} of ${calls.length} processes ready after two minutes`);
  }
  fs.writeFileSync(go, '');
  return results;
}
const times = (n, call) => Array.from({ length: n }, () => call);

async function events(id, since) {
  const seen = [];
  for await (const ev of k3.events({ since, until: Date.now() / 1000 + 0.5, filters: { container: id } })) seen.push(ev.Action);
  return seen;
}

function runcHas(id) {
  return runcStatus(id) !== '';
}
function monitorsOf(id) {
  return monitorPids(id).length;
}

// What the world shows of container id: its mounts, the runtime's record
// and its monitors, beside what the store records.
async function world(id) {
  const c = (await k3.containerCore.listContainers()).find((x) => x.Id === id);
  return { state: c ? c.State : 'gone', mounts: mountsOf(id), runc: runcHas(id), monitors: monitorsOf(id) };
}

test(`${PROCESSES} processes start, then stop, then remove one container at once: one makes each change`, { skip }, async () => {
  const { Id: id } = await k3.containerCore.createContainer('busybox:lifecycle', { name: 'contended' });
  const since = Date.now() / 1000 - 1;

  const starts = await atOnce(times(PROCESSES, "startContainer('contended')"));
  for (const r of starts) assert.equal(r.ok && r.ok.State, 'running', `every start sees the container running: ${JSON.stringify(r)}`);
  assert.equal(new Set(starts.map((r) => r.ok.Pid)).size, 1, 'all were given the one run');
  assert.deepEqual(await world(id), { state: 'running', mounts: 1, runc: true, monitors: 1 });

  const stops = await atOnce(times(PROCESSES, "stopContainer('contended', { timeout: 0 })"));
  for (const r of stops) assert.equal(r.ok && r.ok.State, 'exited', `every stop sees the container exited: ${JSON.stringify(r)}`);
  assert.deepEqual(await world(id), { state: 'exited', mounts: 0, runc: false, monitors: 0 });

  const removes = await atOnce(times(PROCESSES, "removeContainer('contended')"));
  assert.equal(removes.filter((r) => r.ok && r.ok.Removed).length, 1, `one remove removes it: ${JSON.stringify(removes)}`);
  for (const r of removes.filter((x) => !x.ok)) assert.equal(r.err, 'ContainerNotFound', JSON.stringify(r));
  assert.deepEqual(await world(id), { state: 'gone', mounts: 0, runc: false, monitors: 0 });
  assert.ok(!fs.existsSync(path.join(root, 'containers', id)), 'its bundle is gone');
  assert.ok(!fs.existsSync(path.join(root, 'locks', id)), 'its lock is gone');

  const seen = await events(id, since);
  for (const action of ['create', 'start', 'stop', 'destroy']) {
    assert.equal(seen.filter((a) => a === action).length, 1, `one ${action} event in ${seen.join(', ')}`);
  }
});

test(`${PROCESSES} processes start and force-remove one container at once: it ends removed, with nothing left`, { skip }, async () => {
  const { Id: id } = await k3.containerCore.createContainer('busybox:lifecycle', { name: 'raced' });
  const results = await atOnce(Array.from({ length: PROCESSES }, (_, i) =>
    (i % 2 ? "startContainer('raced')" : "removeContainer('raced', { force: true })")));
  for (const r of results) {
    assert.ok(r.ok || r.err === 'ContainerNotFound', `a documented result: ${JSON.stringify(r)}`);
  }
  // A start that came after every remove leaves a running container; remove it too.
  await k3.containerCore.removeContainer(id, { force: true }).catch((e) => assert.equal(e.name, 'ContainerNotFound'));
  assert.deepEqual(await world(id), { state: 'gone', mounts: 0, runc: false, monitors: 0 });
});

test('an aborted start settles with nothing of it left: no runtime process, no monitor, no mount', { skip }, async (t) => {
  const outcomes = [];
  for (const delay of [-1, 0, 2, 5, 10, 20, 40, 80, 160, 320, 640, 3000]) {
    const name = `aborted${delay}`;
    const { Id: id } = await k3.containerCore.createContainer('busybox:lifecycle', { name });
    const abort = new AbortController();
    if (delay < 0) abort.abort();
    const started = k3.containerCore.startContainer(name, { signal: abort.signal });
    if (delay >= 0) setTimeout(() => abort.abort(), delay);
    const result = await started.then((c) => c.State, (e) => e.name);
    const now = await world(id);
    if (result === 'AbortError') {
      outcomes.push('aborted');
      assert.deepEqual(now, { state: 'created', mounts: 0, runc: false, monitors: 0 }, `abort after ${delay} ms`);
    } else {
      outcomes.push('started');
      assert.equal(result, 'running', `abort after ${delay} ms came after the start`);
      assert.deepEqual(now, { state: 'running', mounts: 1, runc: true, monitors: 1 }, `abort after ${delay} ms`);
    }
    // The container is whole: it starts, and goes, as any other.
    assert.equal((await k3.containerCore.startContainer(name)).State, 'running');
    await k3.containerCore.removeContainer(name, { force: true });
    assert.deepEqual(await world(id), { state: 'gone', mounts: 0, runc: false, monitors: 0 });
  }
  t.diagnostic(`outcomes: ${outcomes.join(', ')}`);
  assert.ok(outcomes.filter((o) => o === 'aborted').length >= 3, `starts were aborted on the way: ${outcomes.join(', ')}`);
});

test('a start aborted after its monitor began records start then die, and leaves the container as it was', { skip }, async () => {
  // A runtime that runs a container only once the test lets it: the abort
  // comes while the monitor waits for it, however slow the machine, and
  // the start undoes what then began.
  const slowRuntime = path.join(box.tmp, 'slow-runc');
  const letRun = path.join(box.tmp, 'slow-runc-go');
  fs.writeFileSync(slowRuntime, `#!/bin/sh\nif [ "$1" = run ]; then while [ ! -e ${letRun} ]; do sleep 0.05; done; fi\nexec runc "$@"\n`, { mode: 0o755 });
  const slow = new K3Core({ root, runtime: slowRuntime });
  const { Id: id } = await slow.containerCore.createContainer('busybox:lifecycle', { name: 'slowstart' });
  const since = Date.now() / 1000 - 1;
  const abort = new AbortController();
  const started = slow.containerCore.startContainer(id, { signal: abort.signal }).then(() => 'started', (e) => e.name);
  while (!monitorsOf(id)) await new Promise((r) => setTimeout(r, 10));
  abort.abort();
  fs.writeFileSync(letRun, '');
  assert.equal(await started, 'AbortError');
  assert.deepEqual(await world(id), { state: 'created', mounts: 0, runc: false, monitors: 0 });
  assert.deepEqual(await events(id, since), ['create', 'start', 'die']);
  assert.equal((await k3.containerCore.startContainer(id)).State, 'running');
  await k3.containerCore.removeContainer(id, { force: true });
});

test('a start that waits for the container lock is aborted by its signal', { skip }, async () => {
  // Another process holds the lock for as long as a slow stop lasts: one
  // of a minute, which the test ends by killing the container once the
  // start has been aborted.
  const { Id: id } = await k3.containerCore.createContainer('busybox:lifecycle', { name: 'held', cmd: ['sh', '-c', 'trap "" TERM; sleep 600'] });
  const { Pid: pid } = await k3.containerCore.startContainer('held');
  const stopping = runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    done((await k3.containerCore.stopContainer('held', { timeout: 60 })).State);`);
  const lock = path.join(root, 'locks', id);
  const end = Date.now() + 60000;
  while (Date.now() < end && !isLocked(lock)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(isLocked(lock), 'the stopping process holds the container lock');
  const t0 = Date.now();
  const err = await k3.containerCore.startContainer('held', { signal: AbortSignal.timeout(300) }).then(
    (v) => assert.fail(`expected an abort, got ${JSON.stringify(v)}`), (e) => e);
  assert.ok(err instanceof K3Core.errors.AbortError, err.name);
  assert.ok(Date.now() - t0 < 30000, 'the abort ended the wait, not the stop');
  process.kill(pid, 'SIGKILL');
  assert.equal(await stopping, 'exited');
  assert.deepEqual(await world(id), { state: 'exited', mounts: 0, runc: false, monitors: 0 });
});

// isLocked says whether another holder has the lock file locked, using
// flock(1) without waiting.
function isLocked(file) {
  if (!fs.existsSync(file)) return false;
  try {
    execFileSync('flock', ['-n', file, 'true']);
    return false;
  } catch {
    return true;
  }
}

test('a container whose monitor died starts again, and its removal ends the process the monitor left', { skip }, async () => {
  const { Id: id } = await k3.containerCore.createContainer('busybox:lifecycle', { name: 'orphaned', cmd: ['sleep', '600'] });
  await k3.containerCore.startContainer('orphaned');
  const { Pid: orphan } = await k3.containerCore.inspectContainer('orphaned');
  process.kill(monitorPids(id)[0], 'SIGKILL');
  try {
    const end = Date.now() + 60000;
    while (Date.now() < end && monitorsOf(id)) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await k3.containerCore.inspectContainer('orphaned')).State, 'exited');
    const again = await k3.containerCore.startContainer('orphaned');
    assert.equal(again.State, 'running');
    assert.notEqual(again.Pid, orphan);
    assert.ok(await ends(orphan), 'the orphaned run ended');
    // Orphaned again, and removed.
    process.kill(monitorPids(id)[0], 'SIGKILL');
    while (monitorsOf(id)) await new Promise((r) => setTimeout(r, 20));
    await k3.containerCore.removeContainer('orphaned', { force: true });
    assert.deepEqual(await world(id), { state: 'gone', mounts: 0, runc: false, monitors: 0 });
    assert.ok(await ends(again.Pid), 'the removed container\'s process ended');
  } finally {
    try {
      process.kill(orphan, 'SIGKILL'); // left running before the fix
    } catch {}
  }
});


// ends says whether process pid ends (or is a zombie) within a minute.
async function ends(pid) {
  for (const end = Date.now() + 60000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] === 'Z') return true;
    } catch {
      return true;
    }
  }
  return false;
}
