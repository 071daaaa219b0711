'use strict';
// Cancellation: an AbortSignal stops all of an operation's work. Each long
// operation is aborted at a few moments; once its promise has settled with
// AbortError, the engine runs as many goroutines as before it began (read
// through the internal engineGoroutines call), the Node process has the
// same child processes (from /proc), and no partial output file or staging
// directory is left.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Readable, Writable } = require('node:stream');

const K3Core = require('..');
const { call } = require('../js/native');
const images = require('./helpers/images');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const { startHoldingProxy } = require('./helpers/fakeRegistry');
const { containerRunReasons, busyboxStore } = require('./helpers/runc');
const { need } = require('./helpers/need');

const skip = need(containerRunReasons()) || need(registryAvailable());
const APPLETS = ['sh', 'sleep', 'cat', 'echo', 'head', 'dd'];
const LAYER_BYTES = 16 << 20;
const LAYERS = 3;
const MANY = 4000; // files in a directory to copy and commit

let store;
let k3;
let tmp;
let registry;
const BIG = 'big:1';

// Random bytes: they neither compress nor deduplicate, so every step of
// every operation takes long enough to be caught in the middle.
function randomLayer(name) {
  return images.makeLayer([{ path: name, content: crypto.randomBytes(LAYER_BYTES), mode: 0o644 }]);
}

before(async () => {
  if (skip) return;
  store = await busyboxStore('k3-cancel-', 'busybox:cancel', APPLETS);
  ({ k3, tmp } = store);
  // Three images with layers of their own, so that no step finds its
  // layers already stored: one to export and save, one to pull, one to load.
  const image = (name) => images.makeImage({ layers: Array.from({ length: LAYERS }, (_, i) => randomLayer(`${name}${i}`)) });
  images.writeDockerArchive(path.join(tmp, 'big.tar'), [{ image: image('big'), repoTags: [BIG] }]);
  fs.mkdirSync(path.join(tmp, 'many'));
  for (let i = 0; i < MANY; i++) fs.writeFileSync(path.join(tmp, 'many', `f${i}`), crypto.randomBytes(4096));
  images.writeDockerArchive(path.join(tmp, 'load.tar'), [{ image: image('load'), repoTags: ['loaded:1'] }]);
  registry = await startRegistry();
  await images.pushImage(registry, 'cancel/pulled', '1', image('pulled'));
  await k3.imageCore.loadImage(path.join(tmp, 'big.tar'));
  await k3.containerCore.createContainer(BIG, { name: 'big' });
  await k3.containerCore.createContainer('busybox:cancel', { name: 'runner' });
  await k3.containerCore.startContainer('runner');
});

after(async () => {
  if (registry) await registry.stop();
  if (store) await store.remove();
});

// The Node process's children, by pid, from every thread's list.
function children() {
  const pids = new Set();
  for (const task of fs.readdirSync('/proc/self/task')) {
    const list = fs.readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
    for (const pid of list ? list.split(/\s+/) : []) pids.add(Number(pid));
  }
  return pids;
}

// The engine's goroutines at rest. The goroutine of each call ends just
// after it hands back its answer, so that of the previous read may still be
// counted: the least of a few reads is the count.
async function goroutines() {
  let least;
  for (let i = 0; i < 3; i++) {
    const now = await call('engineGoroutines', []);
    least = least ? { started: Math.min(least.started, now.started), total: Math.min(least.total, now.total) } : now;
    await sleep(2);
  }
  return least;
}

async function baseline() {
  return { goroutines: await goroutines(), children: children() };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The promise settled: the work has stopped, so the child processes are
// those of before and so are the goroutines (given a moment, up to 10 s on
// a loaded machine, for the call's own to end).
async function assertStopped(base, what) {
  assert.deepEqual([...children()].sort(), [...base.children].sort(), `${what}: the child processes changed`);
  let now;
  for (const end = Date.now() + 10000; Date.now() < end;) {
    now = await goroutines();
    if (now.started === base.goroutines.started && now.total === base.goroutines.total) return;
    await sleep(10);
  }
  const { stacks } = await call('engineGoroutines', [{ stacks: true }]);
  assert.deepEqual(now, base.goroutines, `${what}: goroutines still running after the abort:\n${stacks.join('\n\n')}`);
}

// What a store or output directory holds, but for the names keep allows.
function leftovers(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

function storeStaging() {
  return leftovers(path.join(k3.root, 'tmp'));
}

// Runs start(signal, onProgress) and aborts it at moment: 'at once',
// 'first progress' (the first progress event), 'midway' (the first event
// past half its total), a number of milliseconds, or a moment seen from
// outside ({name, when}: once when() holds, looked at every millisecond).
// Resolves with the error the call rejected with and whether the abort
// came before the end.
async function abortAt(moment, start) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  let seen = 0;
  const onProgress = (ev) => {
    seen++;
    if (moment === 'first progress') abort();
    if (moment === 'midway' && ev.total > 0 && ev.current > ev.total / 2) abort();
  };
  const promise = start(controller.signal, onProgress);
  if (moment === 'at once') abort();
  if (typeof moment === 'number') setTimeout(abort, moment);
  if (moment && moment.when) watchFor(moment.when, abort, promise);
  const err = await promise.then(() => null, (e) => e);
  return { err, aborted: controller.signal.aborted, seen };
}

// Calls then() once when() holds, unless promise settles first. The
// moments seen from outside are a small part of the work done, so most of
// it is still to do when the abort comes, however fast the machine; a pull
// or a load from a stream is held in the middle by its source, so it
// cannot end at all.
function watchFor(when, then, promise) {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  const look = () => {
    if (settled) return;
    if (when()) then();
    else setTimeout(look, 1);
  };
  look();
}

// A moment as the test names it.
const label = (moment) => moment.name || moment;

// The size of the largest file this process has open in dir, named or not
// (O_TMPFILE).
function openIn(dir) {
  let most = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) most = Math.max(most, fs.statSync(`/proc/self/fd/${fd}`).size);
    } catch {
      // closed while we looked
    }
  }
  return most;
}

// The size of the largest file in dir whose name starts with prefix.
function largest(dir, prefix) {
  let most = 0;
  for (const name of leftovers(dir).filter((n) => n.startsWith(prefix))) {
    try {
      most = Math.max(most, fs.statSync(path.join(dir, name)).size);
    } catch {
      // removed while we looked
    }
  }
  return most;
}

function assertAbortError({ err, aborted }, what) {
  assert.ok(aborted, `${what}: the operation ended before the abort came`);
  assert.ok(err instanceof K3Core.errors.AbortError, `${what}: ${err && err.name}: ${err && err.message}`);
}

const MOMENTS = ['at once', 'first progress', 'midway'];

test('an aborted pull stops its downloads and unpacks, and records nothing', { skip }, async () => {
  // Through a proxy that holds every layer (or the first) half sent.
  let proxy;
  const moments = [
    { moment: 'at once' },
    { moment: 'first progress' },
    { moment: { name: 'with a layer half sent', when: () => proxy.held > 0 } },
    {
      hold: 1,
      moment: { name: 'with a layer half sent and the others sent whole', when: () => proxy.held > 0 && proxy.passed === LAYERS - 1 },
    },
  ];
  for (const { moment, hold } of moments) {
    const what = `pull aborted ${label(moment)}`;
    proxy = await startHoldingProxy(registry.host, { hold });
    try {
      // A store of its own each time: none finds layers of the one before.
      const puller = new K3Core({ root: path.join(tmp, `pull-${label(moment)}`) });
      const base = await baseline();
      const outcome = await abortAt(moment, (signal, onProgress) =>
        puller.imageCore.pullAnImage(`${proxy.host}/cancel/pulled`, '1', { signal, onProgress }));
      assertAbortError(outcome, what);
      await assertStopped(base, what);
      assert.deepEqual(leftovers(path.join(puller.root, 'tmp')), [], `${what}: staging left`);
      assert.deepEqual(await puller.imageCore.listImages(), [], `${what}: the image was recorded`);
    } finally {
      await proxy.stop();
    }
  }
});

test('an aborted load stops and records nothing', { skip }, async () => {
  // A load copies each layer to a blob- file in staging as it unpacks it.
  const copied = (bytes) => ({ name: `with a layer's first ${bytes >> 20} MiB copied`, when: () => largest(path.join(k3.root, 'tmp'), 'blob-') >= bytes });
  for (const moment of ['at once', 'first progress', copied(1 << 20), copied(4 << 20)]) {
    const what = `load aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal, onProgress) =>
      k3.imageCore.loadImage(path.join(tmp, 'load.tar'), { signal, onProgress }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.deepEqual(storeStaging(), [], `${what}: staging left`);
    const names = (await k3.imageCore.listImages()).flatMap((i) => i.RepoTags || []);
    assert.ok(!names.includes('loaded:1'), `${what}: the image was recorded`);
  }
});

// A compressed archive is first decompressed into staging. A hostile one
// may inflate enormously: 1 GiB of zeros is 1 MiB gzipped. An abort once
// 4 MiB are out stops the decompression there, not after the whole.
test('an aborted load of a compressed archive stops decompressing it', { skip }, async () => {
  const bomb = path.join(tmp, 'zeros.tar.gz');
  execFileSync('sh', ['-c', `head -c 1G /dev/zero | gzip -1 > ${bomb}`]);
  let most = 0;
  const staged = () => {
    most = Math.max(most, largest(path.join(k3.root, 'tmp'), 'load-'));
    return most;
  };
  const moment = { name: 'with 4 MiB decompressed', when: () => staged() >= 4 << 20 };
  const what = `load of a .tar.gz aborted ${label(moment)}`;
  const base = await baseline();
  // Watched until the call settles, when the file is removed.
  const watching = setInterval(staged, 1);
  const outcome = await abortAt(moment, (signal) => k3.imageCore.loadImage(bomb, { signal }));
  clearInterval(watching);
  assertAbortError(outcome, what);
  await assertStopped(base, what);
  assert.ok(most < 512 << 20, `${what}: ${most} bytes were decompressed before it stopped`);
  assert.deepEqual(storeStaging(), [], `${what}: staging left`);
});

// The bytes of file as a stream that stops at half of them and never ends:
// a load from it cannot end. wanted: it was asked for more after the half.
function halfStream(file) {
  const bytes = fs.readFileSync(file);
  let at = 0;
  const stream = new Readable({
    read() {
      if (at >= bytes.length / 2) {
        stream.wanted = true;
        return;
      }
      this.push(bytes.subarray(at, at + (1 << 16)));
      at += 1 << 16;
    },
  });
  stream.wanted = false;
  return stream;
}

test('an aborted load from a stream stops reading it and records nothing', { skip }, async () => {
  let source;
  const half = { name: 'with half the stream read', when: () => source.wanted };
  for (const moment of ['at once', 'first progress', half]) {
    const what = `load from a stream aborted ${label(moment)}`;
    const base = await baseline();
    const file = path.join(tmp, 'load.tar');
    source = moment === half ? halfStream(file) : fs.createReadStream(file);
    const outcome = await abortAt(moment, (signal, onProgress) => k3.imageCore.loadImage(source, { signal, onProgress }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.ok(source.destroyed, `${what}: the stream was not destroyed`);
    assert.deepEqual(storeStaging(), [], `${what}: staging left`);
  }
});

test('an aborted import stops and records nothing', { skip }, async () => {
  const before = (await k3.imageCore.listImages()).length;
  // Its progress comes every 8 MiB, too seldom to be sure of the middle by:
  // the layer is watched as it grows in staging (import-*).
  const imported = (bytes) => ({ name: `with ${bytes >> 20} MiB imported`, when: () => largest(path.join(k3.root, 'tmp'), 'import-') >= bytes });
  for (const moment of ['at once', 'first progress', imported(4 << 20)]) {
    const what = `import aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal, onProgress) =>
      k3.imageCore.importImage(path.join(tmp, 'load.tar'), { repository: 'imported', signal, onProgress }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.equal((await k3.imageCore.listImages()).length, before, `${what}: an image was recorded`);
    assert.deepEqual(storeStaging(), [], `${what}: staging left`);
  }
});

// A push goes through a proxy that holds every upload after its first MiB,
// so it cannot end before the abort, however fast the machine.
test('an aborted push stops its uploads', { skip }, async () => {
  let proxy;
  const held = { name: 'with an upload held', when: () => proxy.held > 0 };
  for (const moment of ['at once', 'first progress', held]) {
    const what = `push aborted ${label(moment)}`;
    proxy = await startHoldingProxy(registry.host);
    try {
      const base = await baseline();
      const outcome = await abortAt(moment, (signal, onProgress) =>
        k3.imageCore.pushAnImage(BIG, `${proxy.host}/cancel/pushed-${label(moment).replaceAll(' ', '-')}:1`, { signal, onProgress }));
      assertAbortError(outcome, what);
      await assertStopped(base, what);
      assert.deepEqual(storeStaging(), [], `${what}: staging left`);
    } finally {
      await proxy.stop();
    }
  }
});

// A Writable that takes what it is given slowly, so a stream's writer is
// caught waiting for it too.
function slowSink() {
  return new Writable({ highWaterMark: 1 << 16, write(_chunk, _enc, cb) { setTimeout(cb, 1); } });
}

const OUTPUTS = [
  { name: 'out.tar' }, { name: 'out.tar.gz' }, { name: 'out.tar.zst' },
  { stream: 'gzip' }, { stream: 'zstd' }, { stream: 'none' },
];

function describe(output) {
  return output.name || `a Writable (${output.stream})`;
}

// Runs write(target, extraOptions, signal, onProgress) for each output at
// each moment: an abort leaves no output file, and no temporary file beside it.
async function abortOutputs(opName, write) {
  const dir = path.join(tmp, `${opName}-out`);
  fs.mkdirSync(dir, { recursive: true });
  // A Writable is slow, so the engine waits for it past the middle; a file
  // is not, and the first event past half could come after the rest was
  // written: it is looked at from outside as it grows (unnamed until done,
  // among this process's open files), with most of the work still to do.
  const written = (bytes) => ({ name: `with ${bytes >> 20} MiB written`, when: () => openIn(dir) >= bytes });
  for (const output of OUTPUTS) {
    for (const moment of output.name ? ['at once', 'first progress', written(2 << 20), written(8 << 20)] : MOMENTS) {
      const what = `${opName} to ${describe(output)} aborted ${label(moment)}`;
      const base = await baseline();
      const sink = output.stream && slowSink();
      const target = output.name ? path.join(dir, output.name) : sink;
      const extra = output.stream ? { compression: output.stream } : {};
      const outcome = await abortAt(moment, (signal, onProgress) => write(target, { ...extra, signal, onProgress }));
      assertAbortError(outcome, what);
      await assertStopped(base, what);
      assert.deepEqual(leftovers(dir), [], `${what}: output left`);
      if (sink) assert.ok(sink.destroyed, `${what}: the Writable was not destroyed`);
      assert.deepEqual(storeStaging(), [], `${what}: staging left`);
    }
  }
}

test('an aborted export stops its compressor and leaves no output', { skip }, async () => {
  await abortOutputs('exportContainer', (target, options) => k3.containerCore.exportContainer('big', target, options));
});

test('an aborted save stops its compressor and leaves no output', { skip }, async () => {
  await abortOutputs('saveImage', (target, options) => k3.imageCore.saveImage(BIG, target, options));
});

test('an aborted commit stops packing and records no image', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:cancel', { name: 'changed' });
  // Many files: the pack stops between entries.
  await k3.containerCore.copyToContainer('changed', path.join(tmp, 'many'), '/many');
  const before = (await k3.imageCore.listImages()).length;
  // The pack goes to a commit- file in staging.
  const packed = (bytes) => ({ name: `with ${bytes >> 20} MiB packed`, when: () => largest(path.join(k3.root, 'tmp'), 'commit-') >= bytes });
  for (const moment of ['at once', packed(1 << 20), packed(4 << 20)]) {
    const what = `commit aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal) =>
      k3.containerCore.commitContainer('changed', { repository: 'committed', tag: 'x', signal }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.equal((await k3.imageCore.listImages()).length, before, `${what}: an image was recorded`);
    assert.deepEqual(storeStaging(), [], `${what}: staging left`);
  }
});

test('an export that unpacks a committed layer stops there when aborted', { skip }, async () => {
  // A commit stores its layer as a blob; an export of a container of its
  // image unpacks it into scratch space under the store's tmp, which it
  // removes (lifecycle.ReadStack), and leaves the store's layers as they were.
  const { Id } = await k3.containerCore.commitContainer('changed', { repository: 'committed', tag: 'unpack' });
  await k3.containerCore.createContainer(Id, { name: 'of-committed' });
  const dir = path.join(tmp, 'unpack-out');
  fs.mkdirSync(dir);
  const layers = () => leftovers(path.join(k3.root, 'layers')).length;
  const packed = layers();
  // The layer is unpacked to <store>/tmp/read-*/layer: its files are counted there.
  const unpacked = (files) => ({ name: `with ${files} files unpacked`, when: () => storeStaging().filter((n) => n.startsWith('read-'))
    .some((n) => leftovers(path.join(k3.root, 'tmp', n, 'layer', 'many')).length >= files) });
  for (const moment of [unpacked(1), unpacked(1000)]) {
    const what = `export of a committed container aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal) =>
      k3.containerCore.exportContainer('of-committed', path.join(dir, 'out.tar'), { signal }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.deepEqual(leftovers(dir), [], `${what}: output left`);
    assert.deepEqual(storeStaging(), [], `${what}: staging left`);
    assert.equal(layers(), packed, `${what}: the committed layer was unpacked all the same`);
  }
  await k3.containerCore.exportContainer('of-committed', path.join(dir, 'out.tar'));
  assert.equal(layers(), packed, 'the export left the store\'s layers as they were');
  assert.deepEqual(storeStaging(), [], 'the export removed its scratch space');
  assert.ok(fs.statSync(path.join(dir, 'out.tar')).size > MANY * 4096, 'the export after the aborts is whole');
});

test('an aborted copy into a container stops, and removes the file it was writing', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:cancel', { name: 'copied' });
  const diff = path.join((await k3.containerCore.inspectContainer('copied')).BundleDir, 'diff');
  // A file is copied 32 MiB at a time, the abort looked at in between:
  // one of five such pieces, once the copy has begun, leaves four to stop before.
  const huge = path.join(tmp, 'huge');
  fs.writeFileSync(huge, Buffer.alloc(5 << 25, 'k3'));
  const begun = { name: 'once the file is begun', when: () => fs.existsSync(path.join(diff, 'huge')) };
  for (const moment of ['at once', begun]) {
    const what = `copy of a file aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal) =>
      k3.containerCore.copyToContainer('copied', huge, '/huge', { signal }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.deepEqual(leftovers(diff), [], `${what}: the container changed`);
  }
  // A directory stops between its files: those copied before stay.
  for (const files of [1, 1000]) {
    const into = path.join(diff, `many${files}`);
    const moment = { name: `with ${files} files copied`, when: () => leftovers(into).length >= files };
    const what = `copy of a directory aborted ${label(moment)}`;
    const base = await baseline();
    const outcome = await abortAt(moment, (signal) =>
      k3.containerCore.copyToContainer('copied', path.join(tmp, 'many'), `/many${files}`, { signal }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    const copied = leftovers(into);
    assert.ok(copied.length < MANY, `${what}: all ${copied.length} files were copied`);
    for (const name of copied) assert.equal(fs.statSync(path.join(into, name)).size, 4096, `${what}: ${name}`);
  }
});

// Whether a process runs whose command line is argv.
function running(argv) {
  const want = argv.join('\0');
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '') === want;
    } catch {
      return false;
    }
  });
}

test('an aborted exec ends runc exec and the process it ran', { skip }, async () => {
  for (const moment of ['at once', 50, 500]) {
    const what = `exec aborted after ${moment}`;
    const cmd = ['sleep', `77${typeof moment === 'number' ? moment : 0}`];
    const base = await baseline();
    const outcome = await abortAt(moment, (signal) => k3.containerCore.execContainer('runner', cmd, { signal }));
    assertAbortError(outcome, what);
    await assertStopped(base, what);
    assert.ok(!running(cmd), `${what}: ${cmd.join(' ')} still runs in the container`);
  }
});

test('an aborted wait, stats stream or events stream stops watching', { skip }, async () => {
  // A wait rejects with AbortError; the streams end, as documented.
  const watchers = {
    wait: (signal) => k3.containerCore.waitContainer('runner', { signal }),
    stats: async (signal) => {
      for await (const _sample of k3.containerCore.containerStats('runner', { stream: true, interval: 50, signal })) { /* until the abort */ }
    },
    events: async (signal) => {
      for await (const _event of k3.events({ signal })) { /* until the abort */ }
    },
  };
  for (const [name, watch] of Object.entries(watchers)) {
    for (const moment of ['at once', 200]) {
      const what = `${name} aborted after ${moment}`;
      const base = await baseline();
      const outcome = await abortAt(moment, watch);
      if (name === 'wait') assertAbortError(outcome, what);
      else assert.equal(outcome.err, null, `${what}: ${outcome.err && outcome.err.message}`);
      await assertStopped(base, what);
    }
  }
});

test('an aborted follow of the logs stops reading them', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:cancel', {
    name: 'chatty', cmd: ['sh', '-c', 'while true; do echo line; sleep 0.01; done'],
  });
  await k3.containerCore.startContainer('chatty');
  for (const moment of ['at once', 'first entry', 300]) {
    const what = `followed logs aborted ${moment}`;
    const base = await baseline();
    const controller = new AbortController();
    const logs = k3.containerCore.containerLogs('chatty', { follow: true, signal: controller.signal });
    if (moment === 'at once') controller.abort();
    if (typeof moment === 'number') setTimeout(() => controller.abort(), moment);
    const err = await (async () => {
      for await (const _entry of logs) {
        if (moment === 'first entry') controller.abort();
      }
    })().then(() => null, (e) => e);
    assert.ok(err instanceof K3Core.errors.AbortError, `${what}: ${err && err.name}`);
    await assertStopped(base, what);
  }
});
