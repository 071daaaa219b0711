'use strict';
// k3.events(): container and image events from every process on one root,
// as `docker events` streams them; real runc, busybox images, a real registry.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const { runInChild } = require('./helpers/child');
const { containerRunReasons } = require('./helpers/runc');
const { need } = require('./helpers/need');

const skip = need(containerRunReasons());
const skipRegistry = need(registryAvailable());

let tmp;
let root;
let k3;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-events-'));
  root = path.join(tmp, 'store');
  k3 = new K3Core({ root });
  if (skip) return;
  const img = images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...['sh', 'sleep', 'true'].map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' }, { path: 'tmp', type: 'dir' },
    ]],
    config: { Cmd: ['/bin/true'], Env: ['PATH=/bin'] },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'busybox:events' }]);
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'busybox:events', { containerImageTransport: 'oci' });
});

after(async () => {
  if (!skip) {
    for (const c of await k3.containerCore.listContainers()) {
      await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

// Date.now() counts whole milliseconds and events are stamped in
// nanoseconds: a moment apart keeps an event of this millisecond on its side.
const now = () => Date.now() / 1000;
async function moment() {
  await new Promise((r) => setTimeout(r, 5));
  const t = now();
  await new Promise((r) => setTimeout(r, 5));
  return t;
}
const sh = (script) => ['/bin/sh', '-c', script];
const actions = (evs) => evs.map((ev) => ev.Action);

// Every event from since to until, as a for-await loop that ends by itself.
async function collect(options) {
  const seen = [];
  for await (const ev of k3.events(options)) seen.push(ev);
  return seen;
}

async function exists(file, ms = 60000) {
  const end = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

test('another process watching sees create, start, die with its exit code, and destroy', { skip }, async () => {
  const ready = path.join(tmp, 'watching');
  const watcher = runInChild(`
    const fs = require('node:fs');
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    const seen = [];
    const watching = k3.events({ filters: { container: 'watched' } });
    fs.writeFileSync(${JSON.stringify(ready)}, '');
    for await (const ev of watching) {
      seen.push(ev);
      if (ev.Action === 'destroy') break;
    }
    done(seen);`);
  assert.ok(await exists(ready), 'the watcher started');
  const created = await k3.containerCore.createContainer('busybox:events', { name: 'watched', cmd: sh('exit 3') });
  await k3.containerCore.startContainer('watched');
  assert.equal((await k3.containerCore.waitContainer('watched')).ExitCode, 3);
  await k3.containerCore.removeContainer('watched');
  const seen = await watcher;
  assert.deepEqual(actions(seen), ['create', 'start', 'die', 'destroy']);
  for (const ev of seen) {
    assert.equal(ev.Type, 'container');
    assert.equal(ev.Actor.ID, created.Id);
    assert.equal(ev.Actor.Attributes.name, 'watched');
    assert.equal(ev.Actor.Attributes.image, 'busybox:events');
    assert.ok(Number.isInteger(ev.time) && typeof ev.timeNano === 'number' && Math.abs(ev.timeNano / 1e9 - ev.time) < 1);
  }
  assert.equal(seen[2].Actor.Attributes.exitCode, '3');
});

test('a container that ends while no Node process runs: a later process replays its die', { skip }, async () => {
  const since = now();
  await runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    await k3.containerCore.createContainer('busybox:events', { name: 'orphan', cmd: ['/bin/sh', '-c', 'while [ ! -e /go ]; do sleep 0.05; done; exit 5'] });
    await k3.containerCore.startContainer('orphan');
    done('started');`);
  // Its starter has exited; only its k3-monitor sees it end.
  fs.writeFileSync(path.join(tmp, 'go'), '');
  await k3.containerCore.copyToContainer('orphan', path.join(tmp, 'go'), '/');
  const exitFile = path.join(root, 'containers', (await k3.containerCore.listContainers({ name: 'orphan' }))[0].Id, 'exit.json');
  assert.ok(await exists(exitFile), 'the monitor recorded the exit');
  const replayed = await runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    const seen = [];
    for await (const ev of k3.events({ since: ${since}, until: ${now() + 0.1}, filters: { container: 'orphan' } })) seen.push(ev);
    done(seen);`);
  assert.deepEqual(actions(replayed), ['create', 'start', 'die']);
  assert.equal(replayed[2].Actor.Attributes.exitCode, '5');
  assert.equal(replayed[2].Actor.Attributes.name, 'orphan');
});

test('pause, unpause, kill and stop are events; filters pick by type, event and container; until ends the stream', { skip }, async () => {
  const since = now();
  const a = await k3.containerCore.createContainer('busybox:events', { name: 'filter-a', cmd: sh('sleep 100') });
  await k3.containerCore.createContainer('busybox:events', { name: 'filter-b', cmd: sh('sleep 100') });
  await k3.containerCore.startContainer('filter-a');
  await k3.containerCore.pauseContainer('filter-a');
  await k3.containerCore.unpauseContainer('filter-a');
  await k3.containerCore.killContainer('filter-a', 'SIGKILL');
  assert.equal((await k3.containerCore.waitContainer('filter-a')).ExitCode, 137);
  const middle = await moment();
  await k3.containerCore.startContainer('filter-b');
  await k3.containerCore.stopContainer('filter-b', { timeout: 0 });
  const until = await moment();

  const ofA = await collect({ since, until, filters: { container: 'filter-a' } });
  assert.deepEqual(actions(ofA), ['create', 'start', 'pause', 'unpause', 'kill', 'die']);
  assert.equal(ofA[4].Actor.Attributes.signal, 'SIGKILL');
  assert.equal(ofA[5].Actor.Attributes.exitCode, '137');
  assert.deepEqual(actions(await collect({ since, until, filters: { container: a.Id.slice(0, 12) } })), actions(ofA));

  const ofB = await collect({ since, until, filters: { container: ['filter-b'] } });
  assert.deepEqual(actions(ofB), ['create', 'start', 'die', 'stop']);

  const creates = await collect({ since, until, filters: { event: 'create' } });
  assert.deepEqual(creates.map((ev) => ev.Actor.Attributes.name), ['filter-a', 'filter-b']);
  assert.deepEqual(await collect({ since, until, filters: { type: 'image' } }), []);
  assert.deepEqual(actions(await collect({ since, until: middle, filters: { container: 'filter-b' } })), ['create']);
  assert.deepEqual(actions(await collect({ since: middle, until, filters: { type: 'container', event: ['die', 'stop'] } })), ['die', 'stop']);
});

test('aborting or leaving the loop ends the stream; bad options are refused', async () => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(), 300);
  assert.deepEqual(await collect({ signal: controller.signal }), []);
  assert.ok(Date.now() - started < 5000, 'the stream ended on abort');

  const preAborted = AbortSignal.abort();
  assert.deepEqual(await collect({ signal: preAborted }), []);

  const iterator = k3.events();
  assert.deepEqual(await iterator.return(), { done: true, value: undefined });

  for (const bad of [{ filters: { colour: 'red' } }, { filters: { type: 7 } }, { since: 'yesterday' }, 'all']) {
    await assert.rejects(collect(bad), (err) => err instanceof K3Core.errors.InvalidEventsParameters, JSON.stringify(bad));
  }
});

test('pull, tag, untag and delete are image events', { skip: skipRegistry }, async () => {
  const registry = await startRegistry();
  try {
    const img = images.makeImage({ layers: [[{ path: 'hello', content: 'events' }]] });
    await images.pushImage(registry, 'team/evt', 'v1', img);
    const since = now();
    await k3.imageCore.pullAnImage(`${registry.host}/team/evt`, 'v1');
    await k3.imageCore.tagImage(`${registry.host}/team/evt:v1`, 'local/evt:copy');
    await k3.imageCore.removeImage('local/evt:copy');
    await k3.imageCore.removeImage(img.configDigest, { force: true });
    const until = await moment();
    const seen = await collect({ since, until, filters: { type: 'image' } });
    assert.deepEqual(seen.map((ev) => [ev.Action, ev.Actor.Attributes.name]), [
      ['pull', `${registry.host}/team/evt:v1`],
      ['tag', 'docker.io/local/evt:copy'],
      ['untag', 'docker.io/local/evt:copy'],
      ['untag', `${registry.host}/team/evt:v1`],
      ['untag', `${registry.host}/team/evt@${img.manifestDigest}`],
      ['delete', ''],
    ]);
    for (const ev of seen) assert.equal(ev.Actor.ID, img.configDigest);
    assert.deepEqual(actions(await collect({ since, until, filters: { image: 'local/evt:copy' } })), ['tag', 'untag']);
  } finally {
    await registry.stop();
  }
});

test('save and load are image events, as docker records them', { skip }, async () => {
  const since = now();
  const archive = path.join(tmp, 'events-save.tar');
  const saved = await k3.imageCore.saveImage('busybox:events', archive);
  const fresh = new K3Core({ root: path.join(tmp, 'store-load') });
  await fresh.imageCore.loadImage(archive);
  const until = await moment();
  const id = saved.Images[0].Id;
  const inFirst = await collect({ since, until, filters: { type: 'image' } });
  assert.deepEqual(inFirst.map((ev) => [ev.Action, ev.Actor.ID]), [['save', id]]);
  const inSecond = [];
  for await (const ev of fresh.events({ since, until, filters: { type: 'image' } })) inSecond.push(ev);
  assert.deepEqual(inSecond.map((ev) => [ev.Action, ev.Actor.ID, ev.Actor.Attributes.name]), [['load', id, 'docker.io/library/busybox:events']]);
});
