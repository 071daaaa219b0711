'use strict';
// What an output path may name, for exportContainer and saveImage alike: a
// device or a FIFO is written into, as `docker export -o` and GNU tar do
// (never replaced by a regular file), a symlink is replaced (its target
// never written), and a socket or a path on /proc, /sys or a cgroup file
// system is refused as an invalid parameter (422) before anything is written.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');

const rootProblem = typeof process.getuid === 'function' && process.getuid() === 0 ? false : 'not running as root (mknod needs it)';
const skip = process.env.CI === 'true' ? false : (registryAvailable() || rootProblem);
if (skip) console.log(`# skipping output path tests: ${skip}`);

let reg;
let tmp;
let k3;
let imageRef;
const readers = [];
const mounts = [];

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-output-paths-'));
  reg = await startRegistry();
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  // About 1 MB that does not compress, so an output overflows a pipe's buffer.
  const image = images.makeImage({
    layers: [[{ path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'outputs\n' }],
      [{ path: 'data', type: 'dir' }, ...[0, 1, 2, 3].map((i) => ({ path: `data/blob${i}`, content: crypto.randomBytes(254000) }))]],
  });
  await images.pushImage(reg, 'outputs/app', 'v1', image);
  imageRef = `${reg.host}/outputs/app:v1`;
  await k3.imageCore.pullAnImage(imageRef);
  await k3.containerCore.createContainer(imageRef, { name: 'out-1' });
});

after(async () => {
  for (const r of readers) r.kill('SIGKILL');
  for (const dir of mounts) execFileSync('umount', ['-l', dir]);
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

function assertInvalid(err, name, error) {
  assert.equal(err.name, name, `${err.name}: ${JSON.stringify(err.details)}`);
  assert.ok(err instanceof K3Core.errors[name]);
  assert.equal(err.statusCode, 422);
  assert.equal(err.type, 'VALIDATION_ERROR');
  assert.match(err.details.error, error);
}

const exportTo = (file, options) => k3.containerCore.exportContainer('out-1', file, options);
const saveTo = (file, options) => k3.imageCore.saveImage(imageRef, file, options);

// The same output written to an ordinary file.
async function reference(write, name) {
  const file = path.join(tmp, `${name}-${crypto.randomUUID()}`);
  await write(file);
  const bytes = fs.readFileSync(file);
  fs.rmSync(file);
  return bytes;
}

function mkfifo(name) {
  const fifo = path.join(tmp, name);
  execFileSync('mkfifo', [fifo]);
  return fifo;
}

// Starts `cat fifo > file` (or another shell reader); resolves with its
// exit code once it is done, or 'still reading' (and kills it) after 60 s:
// a reader left waiting on a FIFO that was replaced never ends by itself.
function startReader(script, ...args) {
  const child = spawn('sh', ['-c', script, 'reader', ...args], { stdio: 'ignore' });
  readers.push(child);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve('still reading'); child.kill('SIGKILL'); }, 60000);
    child.on('exit', (code) => { clearTimeout(timer); resolve(code); });
  });
}

// Nothing but the target itself in its directory starts with its name.
function assertNothingBeside(target) {
  const base = path.basename(target);
  assert.deepEqual(fs.readdirSync(path.dirname(target)).filter((n) => n.includes(base) && n !== base), [],
    `no temporary file beside ${target}`);
}

function assertFifo(fifo) {
  assert.ok(fs.lstatSync(fifo).isFIFO(), `${fifo} is still a FIFO`);
  assertNothingBeside(fifo);
}

// A null device (c 1 3) made for the test, not the host's /dev/null.
function mknod(name, minor) {
  const dev = path.join(tmp, name);
  execFileSync('mknod', [dev, 'c', '1', String(minor)]);
  return dev;
}

function assertDevice(dev, minor) {
  const st = fs.lstatSync(dev);
  assert.ok(st.isCharacterDevice(), `${dev} is still a character device`);
  assert.equal(st.rdev, (1 << 8) | minor, `${dev} is still device 1,${minor}`);
  assertNothingBeside(dev);
}

test('exportContainer into a null device: written into, the device is still there', { skip }, async () => {
  const dev = mknod('null-dev', 3);
  for (const options of [undefined, { durable: true }]) {
    assert.equal(await exportTo(dev, options), `out-1 has exported successfully to ${dev}`);
    assertDevice(dev, 3);
  }
});

test('a device or FIFO on a file system with no room (as /dev often is): no space check, layers staged elsewhere', { skip }, async () => {
  const small = path.join(tmp, 'small');
  fs.mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small]);
  mounts.push(small);
  const dev = path.join(small, 'null');
  execFileSync('mknod', [dev, 'c', '1', '3']);
  await exportTo(dev);
  await saveTo(dev);
  assertDevice(dev, 3);
  const expected = await reference(saveTo, 'save.tar');
  const fifo = path.join(small, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const received = path.join(tmp, 'received-small.tar');
  const reader = startReader('cat "$1" > "$2"', fifo, received);
  await saveTo(fifo);
  assert.equal(await reader, 0);
  assert.ok(fs.readFileSync(received).equals(expected));
  assertFifo(fifo);
});

test('exportContainer into a FIFO: the reader gets exactly the bytes of an export to a file', { skip }, async () => {
  const expected = await reference(exportTo, 'export.tar');
  for (const options of [undefined, { durable: true }]) {
    const fifo = mkfifo(`export-${options ? 'durable' : 'plain'}.fifo`);
    const received = path.join(tmp, 'received.tar');
    const reader = startReader('cat "$1" > "$2"', fifo, received);
    assert.equal(await exportTo(fifo, options), `out-1 has exported successfully to ${fifo}`);
    assert.equal(await reader, 0);
    assert.ok(fs.readFileSync(received).equals(expected), 'the FIFO carried the same tar');
    assertFifo(fifo);
  }
});

test('a compressed name still compresses into a FIFO', { skip }, async () => {
  const expected = await reference(exportTo, 'export.tar');
  const fifo = mkfifo('export.tar.gz');
  const received = path.join(tmp, 'received.tar.gz');
  const reader = startReader('cat "$1" > "$2"', fifo, received);
  await exportTo(fifo);
  assert.equal(await reader, 0);
  assert.ok(zlib.gunzipSync(fs.readFileSync(received)).equals(expected));
  assertFifo(fifo);
});

test('a FIFO nobody reads waits for a reader until the call is aborted: AbortError, the FIFO kept', { skip }, async () => {
  const fifo = mkfifo('unread.fifo');
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300);
  const err = await failure(exportTo(fifo, { signal: controller.signal }));
  assert.equal(err.name, 'AbortError', `${err.name}: ${JSON.stringify(err.details)}`);
  assertFifo(fifo);
});

test('a FIFO whose reader goes away: ExportContainerIOFailure (EPIPE)', { skip }, async () => {
  const fifo = mkfifo('closed.fifo');
  const reader = startReader('head -c 1 "$1" > /dev/null', fifo);
  const err = await failure(exportTo(fifo));
  assert.equal(err.name, 'ExportContainerIOFailure', `${err.name}: ${JSON.stringify(err.details)}`);
  assert.match(err.details.error, /EPIPE/);
  assert.equal(await reader, 0);
  assertFifo(fifo);
});

test('a full device (c 1 7): InsufficientDiskSpaceForExport, the device kept', { skip }, async () => {
  const dev = mknod('full-dev', 7);
  const err = await failure(exportTo(dev));
  assert.equal(err.name, 'InsufficientDiskSpaceForExport', `${err.name}: ${JSON.stringify(err.details)}`);
  assert.equal(err.details.availableSpace, '0 B');
  assertDevice(dev, 7);
});

test('saveImage into a FIFO and a null device: the reader gets exactly the bytes of a save to a file', { skip }, async () => {
  const expected = await reference(saveTo, 'save.tar');
  const fifo = mkfifo('save.fifo');
  const received = path.join(tmp, 'received-save.tar');
  const reader = startReader('cat "$1" > "$2"', fifo, received);
  const result = await saveTo(fifo, { durable: true });
  assert.equal(result.Path, fifo);
  assert.equal(await reader, 0);
  assert.ok(fs.readFileSync(received).equals(expected), 'the FIFO carried the same archive');
  assertFifo(fifo);

  const dev = mknod('save-null-dev', 3);
  assert.equal((await saveTo(dev)).Path, dev);
  assertDevice(dev, 3);
});

test('a socket is refused with 422 and left as it is', { skip }, async () => {
  const sock = path.join(tmp, 'out.sock');
  const server = net.createServer().listen(sock);
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    assertInvalid(await failure(exportTo(sock)), 'InvalidExportContainerParameters', /out\.sock is a socket/);
    assertInvalid(await failure(saveTo(sock)), 'InvalidSaveImageParameters', /out\.sock is a socket/);
    assert.ok(fs.lstatSync(sock).isSocket(), 'the socket is still there');
    assertNothingBeside(sock);
  } finally {
    server.close();
  }
});

test('/proc, /sys and cgroup paths are refused with 422 naming the file system, not as a full disk', { skip }, async () => {
  const cgroup = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '))
    .find(([, , type]) => type === 'cgroup' || type === 'cgroup2');
  const cases = [['/proc/k3-x.tar', /^\/proc is on a special file system \(proc\); choose a path on a regular file system$/],
    ['/sys/k3-x.tar', /^\/sys is on a special file system \(sysfs\)/]];
  if (cgroup) cases.push([path.join(cgroup[1], 'k3-x.tar'), /special file system \(cgroup2?\)/]);
  for (const [file, reason] of cases) {
    assertInvalid(await failure(exportTo(file)), 'InvalidExportContainerParameters', reason);
    assertInvalid(await failure(saveTo(file)), 'InvalidSaveImageParameters', reason);
    assert.equal(fs.existsSync(file), false);
  }
});

test('a symlink at the output path is replaced; the file or device it points to is never written', { skip }, async () => {
  const expected = await reference(exportTo, 'export.tar');
  const victim = path.join(tmp, 'victim.txt');
  fs.writeFileSync(victim, 'keep me\n');
  const fifo = mkfifo('linked.fifo');
  for (const [name, target] of [['to-file.tar', victim], ['to-fifo.tar', fifo]]) {
    const link = path.join(tmp, name);
    fs.symlinkSync(target, link);
    await exportTo(link);
    assert.ok(fs.lstatSync(link).isFile(), `${name} is now a regular file`);
    assert.ok(fs.readFileSync(link).equals(expected));
  }
  assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me\n');
  assertFifo(fifo);
});
