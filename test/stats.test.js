'use strict';
// A running container's CPU, memory and tasks (containerStats), read from
// its cgroups, against real runc and against `runc events --stats`.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { need } = require('./helpers/need');
const { containerRunReasons, busyboxStore } = require('./helpers/runc');

const skip = need(containerRunReasons());
const APPLETS = ['sh', 'sleep', 'dd', 'true'];
const MiB = 1024 * 1024;

let k3;

// Creates and starts container name running cmd.
async function running(name, cmd) {
  await k3.containerCore.createContainer('busybox:stats', { name, cmd });
  await k3.containerCore.startContainer(name);
}
const stats = (id, options) => k3.containerCore.containerStats(id, options);
async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}
async function collect(iterable) {
  const out = [];
  for await (const s of iterable) out.push(s);
  return out;
}
// Samples (every 100 ms, up to a minute) until ok(sample) holds; the last one.
async function until(id, ok) {
  let last;
  for await (const s of stats(id, { stream: true, interval: 100, signal: AbortSignal.timeout(60000) })) {
    last = s;
    if (ok(s)) break;
  }
  return last;
}

let store;
before(async () => {
  if (skip) return;
  store = await busyboxStore('k3-stats-', 'busybox:stats', APPLETS);
  ({ k3 } = store);
});

after(async () => {
  if (store) await store.remove();
});

test('a container burning CPU: its usage grows between samples', { skip }, async () => {
  await running('burn', ['sh', '-c', 'while :; do :; done']);
  const first = await stats('burn', { interval: 500 });
  const second = await stats('burn', { interval: 500 });
  assert.ok(first.cpu_stats.cpu_usage.total_usage > 0);
  assert.ok(second.cpu_stats.cpu_usage.total_usage > first.cpu_stats.cpu_usage.total_usage);
  // Within one call: precpu_stats is the reading interval ms before.
  assert.ok(second.cpu_stats.cpu_usage.total_usage > second.precpu_stats.cpu_usage.total_usage);
  assert.ok(second.cpu_stats.system_cpu_usage > second.precpu_stats.system_cpu_usage);
  assert.equal(second.cpu_stats.online_cpus, os.cpus().length);
  // docker's figure: the container's CPU time over the interval's wall time
  // (the host's CPU time over its CPUs), as a percentage of one CPU. The
  // loop gets what share of a CPU a busy host leaves it, but it gets some.
  const cpuNanos = second.cpu_stats.cpu_usage.total_usage - second.precpu_stats.cpu_usage.total_usage;
  const wallNanos = (second.cpu_stats.system_cpu_usage - second.precpu_stats.system_cpu_usage) / second.cpu_stats.online_cpus;
  assert.ok(second.CPUPerc > 1 && second.CPUPerc <= 100 * os.cpus().length, `CPUPerc ${second.CPUPerc}`);
  assert.ok(Math.abs(second.CPUPerc - (cpuNanos / wallNanos) * 100) < 1e-6);
  assert.ok(wallNanos > 0.3e9 && wallNanos < 3e9, `the interval, by the host's CPU time: ${wallNanos} ns`);
  assert.match(second.read, /^\d{4}-\d\d-\d\dT/);
  await k3.containerCore.removeContainer('burn', { force: true });
});

test('memory a container fills shows in its usage, as runc events reports it', { skip }, async () => {
  await running('mem', ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/x bs=1M count=50 2>/dev/null; sleep 600']);
  const idle = await until('mem', (s) => s.memory_stats.usage > 50 * MiB);
  assert.ok(idle.memory_stats.usage > 50 * MiB, `usage ${idle.memory_stats.usage}`);
  assert.ok(idle.MemUsage > 45 * MiB && idle.MemUsage <= idle.memory_stats.usage, `MemUsage ${idle.MemUsage}`);
  assert.ok(idle.MemLimit >= idle.MemUsage && idle.MemLimit <= os.totalmem());
  assert.ok(Math.abs(idle.MemPerc - (idle.MemUsage / idle.MemLimit) * 100) < 1e-9);
  assert.equal(typeof idle.memory_stats.stats, 'object');

  const { Id } = await k3.containerCore.inspectContainer('mem');
  const ours = await stats('mem', { interval: 100 });
  const events = JSON.parse(execFileSync('runc', ['events', '--stats', Id], { encoding: 'utf8' }));
  const runcUsage = events.data.memory.usage.usage;
  assert.ok(Math.abs(ours.memory_stats.usage - runcUsage) < 2 * MiB, `ours ${ours.memory_stats.usage}, runc ${runcUsage}`);
  assert.equal(ours.pids_stats.current, events.data.pids.current);
  assert.equal(ours.PIDs, events.data.pids.current);
  await k3.containerCore.removeContainer('mem', { force: true });
});

test('the task count grows as the container starts processes', { skip }, async () => {
  await running('tasks', ['sleep', '600']);
  const alone = await stats('tasks', { interval: 100 });
  assert.equal(alone.pids_stats.current, 1);
  await k3.containerCore.execContainer('tasks',
    ['sh', '-c', 'for i in 1 2 3; do sleep 600 >/dev/null 2>&1 & done']);
  const more = await until('tasks', (s) => s.PIDs >= 4);
  assert.equal(more.PIDs, 4);
  // Paused, as docker: the frozen cgroup still reads.
  await k3.containerCore.pauseContainer('tasks');
  assert.equal((await stats('tasks', { interval: 100 })).PIDs, 4);
  await k3.containerCore.unpauseContainer('tasks');
  await k3.containerCore.removeContainer('tasks', { force: true });
});

test('a stream yields a sample every interval and ends when the container stops', { skip }, async () => {
  // It ends once three samples have come.
  await running('short', ['sh', '-c', 'while [ ! -e /go ]; do sleep 0.05; done']);
  const go = path.join(store.tmp, 'go');
  fs.writeFileSync(go, '');
  const limit = AbortSignal.timeout(60000);
  const samples = [];
  for await (const s of stats('short', { stream: true, interval: 200, signal: limit })) {
    samples.push(s);
    if (samples.length === 3) await k3.containerCore.copyToContainer('short', go, '/');
  }
  assert.ok(!limit.aborted, 'the stream ended when the container stopped');
  assert.ok(samples.length >= 3, `${samples.length} samples`);
  // The first has no earlier reading; each later one has the one before it.
  assert.equal(samples[0].precpu_stats.cpu_usage.total_usage, 0);
  for (let i = 1; i < samples.length; i++) {
    assert.deepEqual(samples[i].precpu_stats, samples[i - 1].cpu_stats);
  }
  // It ended because the container did: its exit is there to read.
  const exit = await k3.containerCore.waitContainer('short', { signal: AbortSignal.timeout(60000) });
  assert.equal(exit.ExitCode, 0);
});

test('aborting ends a stream', { skip }, async () => {
  await running('watched', ['sleep', '600']);
  const controller = new AbortController();
  const samples = [];
  for await (const s of stats('watched', { stream: true, interval: 100, signal: controller.signal })) {
    samples.push(s);
    if (samples.length === 2) controller.abort();
  }
  assert.equal(samples.length, 2);
  // Once, aborted: the operation's AbortError.
  const err = await failure(stats('watched', { signal: AbortSignal.abort() }));
  assert.equal(err.name, 'AbortError');
  await k3.containerCore.removeContainer('watched', { force: true });
});

test('a container that is not running, or not there, or bad options', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:stats', { name: 'idle' });
  let err = await failure(stats('idle'));
  assert.equal(err.name, 'ContainerNotRunning');
  assert.equal(err.statusCode, 409);
  assert.match(err.details.error, /created/);
  err = await failure(collect(stats('idle', { stream: true })));
  assert.equal(err.name, 'ContainerNotRunning');
  err = await failure(stats('nothing-here'));
  assert.equal(err.name, 'ContainerNotFound');
  err = await failure(stats('idle', { interval: 0 }));
  assert.equal(err.name, 'InvalidContainerStatsParameters');
  assert.equal(err.statusCode, 422);
  err = await failure(stats('idle', { stream: 'yes' }));
  assert.equal(err.name, 'InvalidContainerStatsParameters');
  err = await failure(collect(stats('idle', { stream: true, interval: -5 })));
  assert.equal(err.name, 'InvalidContainerStatsParameters');
});
