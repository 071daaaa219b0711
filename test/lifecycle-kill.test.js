'use strict';
// kill -9 at moments of startContainer, stopContainer and removeContainer,
// and of a container's monitor. After each kill a new process opens the
// store and lists its containers (which reconciles them); then every
// record must agree with the runtime, the mounts and the monitors, every
// container must start, stop and go, nothing of a removed container may be
// left, and each container's events must pair every die with its start.
// Real runc; the store is checked from outside (test/helpers/storecheck.js).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { containerRunReasons, busyboxStore, mountsOf, runcStatus, monitorPids } = require('./helpers/runc');
const { whichSync } = require('./helpers/registry');
const { need } = require('./helpers/need');
const { assertStoreWhole } = require('./helpers/storecheck');

const skip = need(containerRunReasons() || (whichSync('sqlite3') ? '' : 'sqlite3 (the CLI) is not installed'));
const IMAGE = 'busybox:killrun';
// Kills after these delays (ms) into a loop of each operation: a start,
// stop or remove takes some tens to a few hundred milliseconds here, so
// they fall before, in and between the steps of one and of the next. The
// checks hold whichever step a kill lands in.
const DELAYS = [30, 150, 400];
const root = path.resolve(__dirname, '..');

let box;
let store;
const since = Date.now() / 1000;

before(async () => {
  if (skip) return;
  box = await busyboxStore('k3-lifecycle-kill-', IMAGE, ['sh', 'sleep']);
  store = path.join(box.tmp, 'store');
});

after(async () => {
  if (box) await box.remove();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A Node process running program with the store's root in KILL_ROOT; its
// stdout comes line by line to lines().
function child(program, env = {}) {
  const proc = spawn(process.execPath, ['-e', `const K3Core = require(${JSON.stringify(root)});\n${program}`], {
    env: { ...process.env, KILL_ROOT: store, ...env }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = [];
  const feed = () => {
    while (waiters.length && out.includes('\n')) {
      const at = out.indexOf('\n');
      const line = out.slice(0, at);
      out = out.slice(at + 1);
      waiters.shift().resolve(line);
    }
  };
  proc.stdout.on('data', (d) => { out += d; feed(); });
  proc.stderr.on('data', (d) => { err += d; });
  const ended = new Promise((resolve) => proc.on('close', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the child ended (${code || signal}) before saying more: ${err}`));
    resolve({ code, signal });
  }));
  return {
    proc,
    ended,
    line: () => new Promise((resolve, reject) => { waiters.push({ resolve, reject }); feed(); }),
    say: (text) => proc.stdin.write(`${text}\n`),
    kill: async () => { proc.kill('SIGKILL'); return ended; },
  };
}

// One operation over and over, each round on a new container, after
// 'ready' (and, with KILL_WAIT, once told to go, running it once).
const LOOP = `
const cc = new K3Core({ root: process.env.KILL_ROOT }).containerCore;
const image = ${JSON.stringify(IMAGE)};
const make = async (running) => { const c = await cc.createContainer(image); if (running) await cc.startContainer(c.Id); return c.Id; };
const ops = {
  start: { make: () => make(false), run: (id) => cc.startContainer(id) },
  stop: { make: () => make(true), run: (id) => cc.stopContainer(id, { timeout: 0 }) },
  remove: { make: () => make(true), run: (id) => cc.removeContainer(id, { force: true }) },
  'remove exited': { make: async () => { const id = await make(true); await cc.stopContainer(id, { timeout: 0 }); return id; }, run: (id) => cc.removeContainer(id) },
};
const op = ops[process.env.KILL_OP];
(async () => {
  await cc.listContainers();
  if (process.env.KILL_WAIT) {
    const id = await op.make();
    process.stdout.write(id + '\\n');
    await new Promise((r) => process.stdin.once('data', r));
    await op.run(id);
    process.stdout.write('done\\n');
    return;
  }
  process.stdout.write('ready\\n');
  for (;;) await op.run(await op.make());
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

// A new process: it lists the containers (the store reconciles them as it
// opens and reads them) and says what it found; once told to go, it
// stops, starts and removes each, and says how that went.
const CHECK = `
const cc = new K3Core({ root: process.env.KILL_ROOT }).containerCore;
const say = (v) => process.stdout.write(JSON.stringify(v) + '\\n');
(async () => {
  const listed = (await cc.listContainers()).map((c) => ({ Id: c.Id, State: c.State }));
  say(listed);
  await new Promise((r) => process.stdin.once('data', r));
  const failed = [];
  for (const c of listed) {
    try {
      if ((await cc.stopContainer(c.Id, { timeout: 0 })).State === 'running') throw new Error('running after stop');
      if ((await cc.startContainer(c.Id)).State !== 'running') throw new Error('not running after start');
      await cc.removeContainer(c.Id, { force: true });
    } catch (e) {
      failed.push(c.Id.slice(0, 12) + ': ' + e.name + ': ' + ((e.details && e.details.error) || e.message));
    }
  }
  say(failed);
})().catch((e) => say({ thrown: e.name + ': ' + ((e.details && e.details.error) || e.message) }));
`;

// The containers of this store the runtime has, and what is mounted under
// the store: each runs from a bundle under <store>/containers.
function runtimeIds() {
  const all = JSON.parse(execFileSync('runc', ['list', '-f', 'json'], { encoding: 'utf8' }) || '[]') || [];
  return all.filter((c) => c.bundle.startsWith(path.join(store, 'containers') + path.sep)).map((c) => c.id);
}
function mountedIds() {
  const under = path.join(store, 'containers') + path.sep;
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => (l.split(' ')[4] || '')).filter((p) => p.startsWith(under)).map((p) => p.slice(under.length).split('/')[0]);
}

// Whether no monitor of the store is between states: a kill may leave one
// still starting its container (the runtime has it not yet running) or
// ending it (the runtime has it stopped, or no more), which it finishes by
// itself. A check before it has would race it, and fail on a slow machine.
function monitorsSettled() {
  const under = path.join(store, 'containers') + path.sep;
  const ids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => {
    try {
      const args = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return args[0].endsWith('k3-monitor') && args[2].startsWith(under) ? args[3] : '';
    } catch {
      return ''; // it ended while we looked
    }
  }).filter(Boolean);
  return ids.every((id) => runcStatus(id) === 'running');
}

// After a kill at moment: a new process's view must agree with the host,
// and every container must start, stop and go, leaving nothing behind.
async function checkAfter(moment) {
  await until(`${moment}: every monitor to have its container running, or to end`, monitorsSettled);
  const checker = child(CHECK);
  try {
    await checkWith(checker, moment);
  } finally {
    await checker.kill(); // ended already, unless a check failed
  }
}

async function checkWith(checker, moment) {
  const listed = JSON.parse(await checker.line());
  assert.equal(listed.thrown, undefined, `${moment}: listing failed: ${listed.thrown}`);
  for (const c of listed) {
    const alive = c.State === 'running';
    const what = `${moment}: container ${c.Id.slice(0, 12)} is recorded ${c.State}`;
    assert.ok(['created', 'running', 'exited'].includes(c.State), what);
    assert.equal(runcStatus(c.Id), alive ? 'running' : '', `${what}; the runtime says`);
    assert.equal(mountsOf(c.Id), alive ? 1 : 0, `${what}; its mounts`);
    assert.equal(monitorPids(c.Id).length, alive ? 1 : 0, `${what}; its monitors`);
  }
  const ids = new Set(listed.map((c) => c.Id));
  assert.deepEqual(runtimeIds().filter((id) => !ids.has(id)), [], `${moment}: the runtime has containers the store does not`);
  assert.deepEqual(mountedIds().filter((id) => !ids.has(id)), [], `${moment}: mounts of containers the store does not have`);
  checker.say('go');
  const failed = JSON.parse(await checker.line());
  assert.deepEqual(failed, [], `${moment}: containers that would not stop, start or go`);
  assert.deepEqual(runtimeIds(), [], `${moment}: the runtime still has removed containers`);
  assert.deepEqual(mountedIds(), [], `${moment}: removed containers are still mounted`);
  for (const id of ids) assert.deepEqual(monitorPids(id), [], `${moment}: a removed container's monitor runs`);
  assertStoreWhole(store, moment);
  assert.deepEqual(fs.readdirSync(path.join(store, 'locks')), [], `${moment}: locks of removed containers are left`);
}

// Holds the store's database with a write transaction of the sqlite3 CLI,
// so that a writer waits at its next write; release() commits.
async function holdDatabase() {
  const sqlite = spawn('sqlite3', [path.join(store, 'k3.db')], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => {
    sqlite.stdout.once('data', resolve);
    sqlite.stdin.write("BEGIN IMMEDIATE;\nSELECT 'held';\n");
  });
  return {
    release: () => new Promise((resolve) => {
      sqlite.on('close', resolve);
      sqlite.stdin.end('COMMIT;\n');
    }),
  };
}

// Waits for condition; a minute is long enough for a loaded machine.
async function until(what, condition) {
  for (const end = Date.now() + 60000; Date.now() < end; await sleep(10)) {
    if (condition()) return;
  }
  assert.fail(`waited a minute for ${what}`);
}

// The moments a kill leaves the most to repair, each reached for certain:
// the operation runs until its next write to the store's database, which
// waits on a transaction held open, and is killed there.
const AT_WRITE = {
  start: { moment: 'start killed once its container runs, before the run is recorded', reached: (id) => runcStatus(id) === 'running' },
  stop: { moment: 'stop killed once its container ended, before the exit is recorded', reached: (id) => runcStatus(id) === '' && monitorPids(id).length === 0 },
  'remove exited': { moment: 'remove killed holding the container, before its record is deleted', reached: (id) => isLocked(path.join(store, 'locks', id)) },
};

function isLocked(file) {
  try {
    execFileSync('flock', ['-n', file, 'true']);
    return false;
  } catch {
    return fs.existsSync(file);
  }
}

async function killAtWrite(op) {
  const { moment, reached } = AT_WRITE[op];
  const loop = child(LOOP, { KILL_OP: op, KILL_WAIT: '1' });
  const id = await loop.line();
  const db = await holdDatabase();
  try {
    loop.say('go');
    await until(moment, () => reached(id));
    await loop.kill();
  } finally {
    await db.release();
  }
  return moment;
}

async function killAfter(op, ms) {
  const loop = child(LOOP, { KILL_OP: op });
  assert.equal(await loop.line(), 'ready');
  await sleep(ms);
  const { signal } = await loop.kill();
  assert.equal(signal, 'SIGKILL', `the ${op} loop ended by itself`);
  return `${op} killed ${ms} ms in`;
}

// Each container's events, in order: a die only after its start, and a
// start ended by a die before the next.
async function assertEventsPaired() {
  const { k3 } = box;
  const byContainer = new Map();
  for await (const ev of k3.events({ since, until: Date.now() / 1000 + 0.5, filters: { type: 'container', event: ['start', 'die'] } })) {
    const seen = byContainer.get(ev.Actor.ID) || [];
    byContainer.set(ev.Actor.ID, [...seen, ev.Action]);
  }
  assert.ok(byContainer.size > 0, 'containers started');
  for (const [id, seen] of byContainer) {
    const expected = seen.map((_, i) => (i % 2 ? 'die' : 'start'));
    if (seen.length % 2) expected.push('die');
    assert.deepEqual(seen, expected, `container ${id.slice(0, 12)}: every start ends in one die, and no die comes without its start`);
  }
}

test('a start killed after its container runs, before the store records it: the next process finds it running, and it stops, starts and goes', { skip }, async () => {
  const moment = await killAtWrite('start');
  await checkAfter(moment);
  await assertEventsPaired();
});

test('a container whose monitor is killed while it runs is ended and shown exited 137, with its die event, as docker shows a container whose shim died', { skip }, async () => {
  const { k3 } = box;
  const { Id: id } = await k3.containerCore.createContainer(IMAGE);
  const { Pid: pid } = await k3.containerCore.startContainer(id);
  process.kill(monitorPids(id)[0], 'SIGKILL');
  await until('the monitor to end', () => monitorPids(id).length === 0);
  const checker = child(CHECK);
  const [shown] = JSON.parse(await checker.line());
  try {
    assert.deepEqual(shown, { Id: id, State: 'exited' });
    assert.equal(runcStatus(id), '', 'the runtime has the container no more');
    assert.equal(mountsOf(id), 0, 'its root is unmounted');
    assert.ok(!fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] === 'Z', 'its process ended');
    assert.equal((await k3.containerCore.inspectContainer(id)).ExitCode, 137);
    const dies = [];
    for await (const ev of k3.events({ since, until: Date.now() / 1000 + 0.5, filters: { container: id, event: ['die'] } })) dies.push(ev.Actor.Attributes.exitCode);
    assert.deepEqual(dies, ['137']);
  } finally {
    checker.say('go');
    await checker.line();
    await checker.kill();
  }
  await assertEventsPaired();
});

test('a start killed while its runtime has not yet run the container: a reader lists it at once, not when the runtime gets on, and records the run once it exists', { skip }, async () => {
  const { k3 } = box;
  // A runtime that runs a container only once the test lets it, as a hung
  // runtime would never.
  const slowRuntime = path.join(box.tmp, 'held-runc');
  const letRun = path.join(box.tmp, 'held-runc-go');
  fs.writeFileSync(slowRuntime, `#!/bin/sh\nif [ "$1" = run ]; then while [ ! -e ${letRun} ]; do sleep 0.05; done; fi\nexec runc "$@"\n`, { mode: 0o755 });
  const starter = child(`
    const cc = new K3Core({ root: process.env.KILL_ROOT, runtime: process.env.KILL_RUNTIME }).containerCore;
    (async () => {
      const { Id } = await cc.createContainer(${JSON.stringify(IMAGE)});
      process.stdout.write(Id + '\\n');
      await cc.startContainer(Id);
    })();`, { KILL_RUNTIME: slowRuntime });
  const id = await starter.line();
  try {
    await until('the monitor to wait on the runtime', () => monitorPids(id).length === 1);
    await starter.kill();
    const listed = await Promise.race([
      k3.containerCore.listContainers({ all: true }),
      sleep(60000).then(() => 'still waiting after a minute'),
    ]);
    assert.notEqual(listed, 'still waiting after a minute', 'the listing waited on the runtime');
    assert.equal(listed.find((c) => c.Id === id).State, 'created');
  } finally {
    fs.writeFileSync(letRun, '');
  }
  for (const end = Date.now() + 60000; (await k3.containerCore.inspectContainer(id)).State !== 'running'; await sleep(50)) {
    assert.ok(Date.now() < end, 'the run was not recorded within a minute of its start');
  }
  await checkAfter('a start killed while its runtime held the container');
  await assertEventsPaired();
});

test(`kill -9 at ${Object.keys(AT_WRITE).length + 3 * DELAYS.length} moments of start, stop and remove leaves containers the store shows truly, that start, stop and go`, { skip, timeout: 300000 }, async (t) => {
  const moments = [];
  for (const op of Object.keys(AT_WRITE)) {
    moments.push(await killAtWrite(op));
    await checkAfter(moments.at(-1));
  }
  for (const op of ['start', 'stop', 'remove']) {
    for (const ms of DELAYS) {
      moments.push(await killAfter(op, ms));
      await checkAfter(moments.at(-1));
    }
  }
  await assertEventsPaired();
  t.diagnostic(`${moments.length} kill moments: ${moments.join("; ")}`);
});
