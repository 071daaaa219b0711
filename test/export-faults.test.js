'use strict';
// exportContainer under real faults: every error class of SPEC §3 provoked
// by the fault it names (a full tmpfs, a read-only mount, an unwritable
// directory seen by an unprivileged user, a failing disk, a removed bundle, a
// corrupt database or config...), a kill -9 in the middle of an export, and
// hostile layers pulled from a registry. After each failure: nothing at
// filePath (or the file already there, byte for byte), no temporary file
// beside it, and the store still exports.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile, execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const LIB = path.resolve(__dirname, '..');
const MB = 1024 * 1024;

const skip = need(registryAvailable());
if (skip) console.log(`# skipping export fault tests: ${skip}`);

// Mounts need root and a kernel that lets us mount tmpfs here.
function mountProblem() {
  if (skip) return skip;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root (mounts and setpriv need it)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return false;
  } catch (e) {
    return `cannot mount tmpfs: ${String(e.stderr || e.message).trim()}`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const mountSkip = need(mountProblem());
if (mountSkip && !skip) console.log(`# skipping mount-based export fault tests: ${mountSkip}`);

function commandProblem(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'pipe' });
    return false;
  } catch (e) {
    return `${cmd} is not usable: ${String(e.stderr || e.message).trim().split('\n')[0]}`;
  }
}
const setprivSkip = mountSkip || need(commandProblem('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']));
if (setprivSkip && !mountSkip) console.log(`# skipping the unprivileged-user test: ${setprivSkip}`);
const loopSkip = mountSkip || need(commandProblem('losetup', ['-f']) || commandProblem('mkfs.ext4', ['-V']));
if (loopSkip && !mountSkip) console.log(`# skipping loop-device tests: ${loopSkip}`);

// SPEC §3: class -> [statusCode, type, message].
const CATALOGUE = {
  InvalidExportContainerParameters: [422, 'VALIDATION_ERROR', 'Invalid export container parameters.'],
  ResolveContainerName: [500, 'DB_ERROR', 'Failed to resolve container name.'],
  ContainerNotFound: [404, 'NOT_FOUND', 'Container not found.'],
  FetchContainerInfoFailure: [500, 'CONTAINER_SERVICE_ERROR', 'Failed to fetch container information.'],
  ExportContainerPermissionDenied: [403, 'FILE_SYSTEM_ERROR', 'Permission denied to export container.'],
  InsufficientDiskSpaceForExport: [507, 'FILE_SYSTEM_ERROR', 'Insufficient disk space to export container.'],
  ReadOnlyFileSystem: [500, 'FILE_SYSTEM_ERROR', 'File system is read-only.'],
  ContainerBundleNotFound: [500, 'IMAGE_SERVICE_ERROR', 'Container bundle not found.'],
  ExportContainerIOFailure: [500, 'FILE_SYSTEM_ERROR', 'IO failure during container export.'],
  ExportContainerFailure: [500, 'IMAGE_SERVICE_ERROR', 'Failed to export container.'],
  GenericFailure: [500, 'GENERIC_ERROR', 'Generic failure during container export.'],
};

let reg;
let tmp;
let k3;
const fx = {};
const mounts = [];

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const describe = (e) => `${e && e.name}: ${e && e.message} ${JSON.stringify(e && e.details)}`;

async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

// err may be a K3Error or the plain {name, message, details} a child sends.
function assertClass(err, name, error) {
  const [statusCode, type, message] = CATALOGUE[name];
  assert.equal(err.name, name, describe(err));
  if (err instanceof Error) {
    assert.ok(err instanceof K3Core.errors[name], describe(err));
    assert.ok(err instanceof K3Core.errors.K3Error);
    assert.equal(err.statusCode, statusCode);
    assert.equal(err.type, type);
  }
  assert.equal(err.message, message);
  assert.equal(err.details.statusCode, statusCode);
  assert.equal(err.details.type, type);
  assert.equal(typeof err.details.error, 'string', describe(err));
  assert.ok(err.details.error.length > 0);
  assert.doesNotMatch(err.details.error, /\n\s+at /, 'details.error is not a stack trace');
  if (error instanceof RegExp) assert.match(err.details.error, error);
  else if (error !== undefined) assert.equal(err.details.error, error);
}

// Hidden temporary names an export could leave beside its target.
function leftovers(filePath) {
  const base = path.basename(filePath);
  return fs.readdirSync(path.dirname(filePath)).filter((n) => n.startsWith(`.${base}`));
}

// existing: null when nothing was at filePath, else the bytes that were.
function assertNoTrace(filePath, existing) {
  if (existing === null) assert.equal(fs.existsSync(filePath), false, `nothing may appear at ${filePath}`);
  else assert.equal(sha(fs.readFileSync(filePath)), sha(existing), `the file already at ${filePath} is untouched`);
  assert.deepEqual(leftovers(filePath), [], `no temporary file beside ${filePath}`);
}

// Runs the failing export twice: with nothing at filePath, then with a file
// already there. Returns both errors.
async function bothWays(filePath, exportTo) {
  const errs = [];
  for (const existing of [null, crypto.randomBytes(777)]) {
    fs.rmSync(filePath, { force: true });
    if (existing) fs.writeFileSync(filePath, existing);
    const err = await failure(exportTo(filePath));
    assertNoTrace(filePath, existing);
    errs.push(err);
  }
  fs.rmSync(filePath, { force: true });
  assert.equal(errs[0].name, errs[1].name, 'the same fault gives the same class whether or not a file is there');
  return errs;
}

// The store still works: a following export to an ordinary place succeeds.
let okCount = 0;
async function storeStillExports(store = k3, dir = tmp) {
  const file = path.join(dir, `still-ok-${okCount++}.tar`);
  const message = await store.containerCore.exportContainer('base-1', file);
  assert.equal(message, `base-1 has exported successfully to ${file}`);
  const listing = execFileSync('tar', ['-tf', file], { encoding: 'utf8' });
  assert.match(listing, /^etc\/hostname$/m);
  fs.rmSync(file);
}

function mount(args, dir) {
  execFileSync('mount', [...args, dir], { stdio: 'pipe' });
  mounts.push(dir);
}

function umount(dir) {
  const i = mounts.lastIndexOf(dir);
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  if (i >= 0) mounts.splice(i, 1);
}

function freeBytes(dir) {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
}

// "1.0 MB" -> 1e6 (the documents' units; accepts binary multiples too).
function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?) (B|KB|MB|GB|TB)$/.exec(text);
  assert.ok(m, `a size like "5 GB": ${JSON.stringify(text)}`);
  return Number(m[1]) * 1000 ** ['B', 'KB', 'MB', 'GB', 'TB'].indexOf(m[2]);
}

// Runs a program in a node child as uid/gid 65534 (nobody); resolves with
// what it printed as JSON.
function runAsNobody(program) {
  const wrapped = `
    const K3Core = require(${JSON.stringify(LIB)});
    const out = (v) => process.stdout.write(JSON.stringify(v));
    const asPlain = (e) => ({ name: e.name, message: e.message, statusCode: e.statusCode, type: e.type, details: e.details });
    (async () => { ${program} })().catch((e) => out({ thrown: asPlain(e) }));`;
  return new Promise((resolve, reject) => {
    execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', wrapped], {
      cwd: '/', env: { ...process.env, HOME: '/nonexistent' }, timeout: 300000,
    }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`child printed no JSON: ${stdout}\n${stderr}`));
      }
    });
  });
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-export-faults-'));
  // The unprivileged child must reach stores and directories under tmp.
  fs.chmodSync(tmp, 0o755);
  reg = await startRegistry();
  k3 = new K3Core({ root: path.join(tmp, 'store') });

  fx.base = images.makeImage({
    layers: [[
      { path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'base\n' },
      { path: 'bin', type: 'dir' }, { path: 'bin/tool', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    ]],
  });
  await images.pushImage(reg, 'faults/base', 'v1', fx.base);
  fx.baseRef = `${reg.host}/faults/base:v1`;
  // About 1 MB of incompressible files: "1.0 MB" in decimal and binary units.
  fx.mb = images.makeImage({
    layers: [[{ path: 'data', type: 'dir' },
      ...[0, 1, 2, 3].map((i) => ({ path: `data/blob${i}`, content: crypto.randomBytes(254000) }))]],
  });
  await images.pushImage(reg, 'faults/mb', 'v1', fx.mb);
  fx.mbRef = `${reg.host}/faults/mb:v1`;

  await k3.imageCore.pullAnImage(fx.baseRef);
  await k3.imageCore.pullAnImage(fx.mbRef);
  await k3.containerCore.createContainer(fx.baseRef, { name: 'base-1' });
  await k3.containerCore.createContainer(fx.mbRef, { name: 'big-1' });
});

after(async () => {
  for (const dir of [...mounts].reverse()) {
    try { umount(dir); } catch (e) { console.log(`# could not unmount ${dir}: ${e.message}`); }
  }
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Parameters

test('invalid container IDs: 422 with {containerId, filePath, error}', { skip }, async () => {
  const filePath = path.join(tmp, 'invalid-id.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('invalid@container', f));
  assertClass(err, 'InvalidExportContainerParameters', 'Container ID contains invalid characters');
  assert.deepEqual(err.details, {
    type: 'VALIDATION_ERROR', statusCode: 422, containerId: 'invalid@container', filePath,
    error: 'Container ID contains invalid characters',
  });
  for (const id of ['a b', '', 42, null, undefined, '../base-1', 'base-1;rm']) {
    const [e] = await bothWays(filePath, (f) => k3.containerCore.exportContainer(id, f));
    assertClass(e, 'InvalidExportContainerParameters');
    assert.deepEqual(Object.keys(e.details).sort(), ['containerId', 'error', 'filePath', 'statusCode', 'type'], `${JSON.stringify(id)}: ${describe(e)}`);
    assert.equal(e.details.filePath, filePath);
    if (typeof id === 'string') assert.equal(e.details.containerId, id);
  }
  await storeStillExports();
});

test('relative, empty, directory and dangling file paths: 422, nothing written', { skip }, async () => {
  const relative = `k3-relative-${process.pid}.tar`;
  const cases = [
    [relative, /absolute/i],
    ['', /required/i],
    [tmp, /directory/i],
    [`${tmp}/`, /directory/i],
    [path.join(tmp, 'no-such-dir', 'x.tar'), /does not exist/i],
  ];
  for (const [filePath, reason] of cases) {
    const err = await failure(k3.containerCore.exportContainer('base-1', filePath));
    assertClass(err, 'InvalidExportContainerParameters', reason);
    assert.equal(err.details.containerId, 'base-1');
    assert.equal(err.details.filePath, filePath);
  }
  assert.equal(fs.existsSync(path.join(process.cwd(), relative)), false);
  assert.equal(fs.existsSync(path.join(tmp, 'no-such-dir')), false);
  assert.ok(fs.statSync(tmp).isDirectory());
  await storeStillExports();
});

test('an ambiguous partial name is 422 and lists every match', { skip }, async () => {
  const w1 = await k3.containerCore.createContainer(fx.baseRef, { name: 'web-1' });
  const w2 = await k3.containerCore.createContainer(fx.baseRef, { name: 'web-2' });
  const filePath = path.join(tmp, 'web.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('web', f));
  assertClass(err, 'InvalidExportContainerParameters');
  assert.equal(err.details.containerId, 'web');
  assert.match(err.details.error, /web-1/);
  assert.match(err.details.error, /web-2/);
  assert.match(err.details.error, new RegExp(w1.Id.slice(0, 12)));
  assert.match(err.details.error, new RegExp(w2.Id.slice(0, 12)));
  await k3.containerCore.removeContainer('web-1');
  await k3.containerCore.removeContainer('web-2');
  await storeStillExports();
});

test('a container that does not exist: ContainerNotFound 404', { skip }, async () => {
  const filePath = path.join(tmp, 'missing.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('nonexistent-container', f));
  assertClass(err, 'ContainerNotFound');
  assert.equal(err.details.containerId, 'nonexistent-container');
  assert.equal(err.details.filePath, filePath);
  await storeStillExports();
});

// ---------------------------------------------------------------------------
// The store's own files

test('a removed bundle directory: ContainerBundleNotFound with bundleHashId', { skip }, async () => {
  const c = await k3.containerCore.createContainer(fx.baseRef, { name: 'no-bundle' });
  const { BundleDir } = await k3.containerCore.inspectContainer('no-bundle');
  fs.rmSync(BundleDir, { recursive: true, force: true });
  const filePath = path.join(tmp, 'no-bundle.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('no-bundle', f));
  assertClass(err, 'ContainerBundleNotFound');
  assert.equal(err.details.containerId, 'no-bundle');
  assert.equal(err.details.filePath, filePath);
  assert.equal(typeof err.details.bundleHashId, 'string');
  assert.match(err.details.bundleHashId, /^[0-9a-f]{12,64}$/);
  assert.ok(c.Id.startsWith(err.details.bundleHashId), `bundleHashId ${err.details.bundleHashId} is the container's hash ID ${c.Id}`);
  await storeStillExports();
});

test('a corrupt bundle config.json: FetchContainerInfoFailure', { skip }, async () => {
  await k3.containerCore.createContainer(fx.baseRef, { name: 'bad-config' });
  const { BundleDir } = await k3.containerCore.inspectContainer('bad-config');
  fs.writeFileSync(path.join(BundleDir, 'config.json'), '{"ociVersion": "1.0.2", "process": {"args": [tru');
  const filePath = path.join(tmp, 'bad-config.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('bad-config', f));
  assertClass(err, 'FetchContainerInfoFailure');
  assert.equal(err.details.containerId, 'bad-config');
  await storeStillExports();
});

test('an unreadable database: ResolveContainerName (DB_ERROR) in a fresh process', { skip }, async () => {
  const root = path.join(tmp, 'corrupt-db-store');
  const made = await runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    await k3.imageCore.pullAnImage(${JSON.stringify(fx.baseRef)});
    const c = await k3.containerCore.createContainer(${JSON.stringify(fx.baseRef)}, { name: 'my-container' });
    done(c.Name);`);
  assert.equal(made, 'my-container');
  for (const f of ['k3.db', 'k3.db-wal', 'k3.db-shm']) fs.rmSync(path.join(root, f), { force: true });
  fs.writeFileSync(path.join(root, 'k3.db'), crypto.randomBytes(64 * 1024));
  const filePath = path.join(tmp, 'corrupt-db.tar');
  const [err] = await bothWays(filePath, (f) => runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    done(await k3.containerCore.exportContainer('my-container', ${JSON.stringify(f)}));`).then((r) => {
    if (r && r.thrown) throw r.thrown;
    return r;
  }));
  assertClass(err, 'ResolveContainerName');
  assert.equal(err.details.containerId, 'my-container');
  await storeStillExports();
});

const xattrSkip = mountSkip || need(whichSync('python3') ? false : 'python3 is needed to set a trusted.* xattr');
test('a layer carrying overlayfs redirect/metacopy xattrs: ExportContainerFailure', { skip: skip || xattrSkip }, async () => {
  await k3.containerCore.createContainer(fx.baseRef, { name: 'overlay-redirect' });
  const { BundleDir } = await k3.containerCore.inspectContainer('overlay-redirect');
  // What an overlay mounted with redirect_dir=on leaves in an upper layer
  // after a directory rename: the directory's data is elsewhere.
  const moved = path.join(BundleDir, 'diff', 'moved');
  fs.mkdirSync(moved);
  execFileSync('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "trusted.overlay.redirect", b"/etc")', moved]);
  const filePath = path.join(tmp, 'overlay-redirect.tar');
  const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('overlay-redirect', f));
  assertClass(err, 'ExportContainerFailure', /redirect/);
  assert.equal(err.details.containerId, 'overlay-redirect');
  assert.equal(err.details.filePath, filePath);
  await storeStillExports();
});

// ---------------------------------------------------------------------------
// The output's file system

test('a full tmpfs: InsufficientDiskSpaceForExport 507 before writing, and on a real ENOSPC', { skip: skip || mountSkip }, async () => {
  const small = path.join(tmp, 'small');
  fs.mkdirSync(small);
  mount(['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs'], small);
  try {
    const empty = freeBytes(small);
    // Checked before writing: the plain tar (1 MB) cannot fit in 256 KB.
    const filePath = path.join(small, 'big-1.tar');
    const [err, errWithFile] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('big-1', f));
    assertClass(err, 'InsufficientDiskSpaceForExport', 'No space left on device (ENOSPC)');
    assert.equal(err.details.containerId, 'big-1');
    assert.equal(err.details.filePath, filePath);
    assert.equal(err.details.requiredSpace, '1.0 MB');
    assert.ok(parseSize(err.details.availableSpace) < parseSize(err.details.requiredSpace), describe(err));
    assert.ok(Math.abs(parseSize(err.details.availableSpace) - empty) <= 0.05 * empty, `available ${err.details.availableSpace} vs ${empty} bytes free`);
    assert.ok(parseSize(errWithFile.details.availableSpace) <= parseSize(err.details.availableSpace));
    assert.equal(freeBytes(small), empty, 'the failed export holds no space');

    // A .tar.gz is guessed at a quarter of the tar, which fits; random data
    // does not compress, so the write itself hits ENOSPC.
    const gz = path.join(small, 'big-1.tar.gz');
    const [gzErr] = await bothWays(gz, (f) => k3.containerCore.exportContainer('big-1', f));
    assertClass(gzErr, 'InsufficientDiskSpaceForExport', /ENOSPC/);
    assert.equal(gzErr.details.filePath, gz);
    parseSize(gzErr.details.requiredSpace);
    parseSize(gzErr.details.availableSpace);
    assert.equal(freeBytes(small), empty, 'the space the failed write took is given back');
    assert.deepEqual(fs.readdirSync(small), []);

    // A small container still fits there.
    await storeStillExports(k3, small);
    await storeStillExports();
  } finally {
    umount(small);
  }
});

test('a thin-provisioned disk that fills up while writing: a durable export sees InsufficientDiskSpaceForExport', { skip: skip || loopSkip }, async () => {
  // ext4 on a sparse 64 MB image that lives on a 3 MB tmpfs: statfs reports
  // plenty of room, and the write fails with ENOSPC only when the data
  // reaches the image, at writeback: only an export that waits for the disk
  // (durable) can see it, as with any tool that does not fsync.
  const backing = path.join(tmp, 'thin-backing');
  const out = path.join(tmp, 'thin');
  fs.mkdirSync(backing);
  fs.mkdirSync(out);
  mount(['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs'], backing);
  try {
    const img = path.join(backing, 'disk.img');
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync('mkfs.ext4', ['-q', '-O', '^has_journal', img]);
    mount(['-o', 'loop', img], out);
  } catch (e) {
    umount(backing);
    throw e;
  }
  try {
    const blob = crypto.randomBytes(6 * MB);
    const src = path.join(tmp, 'thin-src.bin');
    fs.writeFileSync(src, blob);
    await k3.containerCore.createContainer(fx.baseRef, { name: 'thin-1' });
    await k3.containerCore.copyToContainer('thin-1', src, '/blob.bin');
    assert.ok(freeBytes(out) > 20 * MB, 'the file system says there is room');
    const existing = crypto.randomBytes(100);
    const filePath = path.join(out, 'thin-1.tar');
    fs.writeFileSync(filePath, existing);
    execFileSync('sync');
    const err = await failure(k3.containerCore.exportContainer('thin-1', filePath, { durable: true }));
    assertClass(err, 'InsufficientDiskSpaceForExport', /ENOSPC/);
    parseSize(err.details.requiredSpace);
    parseSize(err.details.availableSpace);
    assertNoTrace(filePath, existing);
    await storeStillExports();
  } finally {
    umount(out);
    umount(backing);
  }
});

test('a read-only mount: ReadOnlyFileSystem (EROFS)', { skip: skip || mountSkip }, async () => {
  const ro = path.join(tmp, 'ro');
  fs.mkdirSync(ro);
  mount(['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs'], ro);
  try {
    const existingPath = path.join(ro, 'existing.tar');
    const existing = crypto.randomBytes(500);
    fs.writeFileSync(existingPath, existing);
    execFileSync('mount', ['-o', 'remount,ro', ro], { stdio: 'pipe' });
    const filePath = path.join(ro, 'base-1.tar');
    const err = await failure(k3.containerCore.exportContainer('base-1', filePath));
    assertClass(err, 'ReadOnlyFileSystem', 'Read-only file system (EROFS)');
    assert.equal(err.details.filePath, filePath);
    assertNoTrace(filePath, null);
    const err2 = await failure(k3.containerCore.exportContainer('base-1', existingPath));
    assertClass(err2, 'ReadOnlyFileSystem', 'Read-only file system (EROFS)');
    assertNoTrace(existingPath, existing);
    await storeStillExports();
  } finally {
    umount(ro);
  }
});

test('an output directory an unprivileged user cannot write: ExportContainerPermissionDenied 403', { skip: skip || setprivSkip }, async () => {
  // The user's own store, made by the user: its files are the user's, as
  // its unpacks in a user namespace wrote them.
  const root = path.join(tmp, 'nobody-store');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  const made = await runAsNobody(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    await k3.imageCore.pullAnImage(${JSON.stringify(fx.baseRef)});
    await k3.containerCore.createContainer(${JSON.stringify(fx.baseRef)}, { name: 'base-1' });
    out({ made: true });`);
  assert.deepEqual(made, { made: true });
  const setup = new K3Core({ root });
  const protectedDir = path.join(tmp, 'protected');
  fs.mkdirSync(protectedDir, { mode: 0o755 });
  fs.chmodSync(protectedDir, 0o755);
  const existingPath = path.join(protectedDir, 'existing.tar');
  const existing = crypto.randomBytes(300);
  fs.writeFileSync(existingPath, existing, { mode: 0o644 });
  const closed = path.join(tmp, 'closed');
  fs.mkdirSync(path.join(closed, 'sub'), { recursive: true });
  fs.chmodSync(closed, 0o700);
  const writable = path.join(tmp, 'nobody-out');
  fs.mkdirSync(writable);
  fs.chownSync(writable, 65534, 65534);

  const targets = [path.join(protectedDir, 'base-1.tar'), existingPath, path.join(protectedDir, 'base-1.tar.gz'), path.join(closed, 'sub', 'base-1.tar')];
  const result = await runAsNobody(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    const errors = [];
    for (const f of ${JSON.stringify(targets)}) {
      try { errors.push({ resolved: await k3.containerCore.exportContainer('base-1', f) }); } catch (e) { errors.push(asPlain(e)); }
    }
    const ok = await k3.containerCore.exportContainer('base-1', ${JSON.stringify(path.join(writable, 'ok.tar'))});
    out({ uid: process.getuid(), errors, ok });`);
  assert.equal(result.uid, 65534, JSON.stringify(result));
  result.errors.forEach((err, i) => {
    assertClass(err, 'ExportContainerPermissionDenied', 'Permission denied (EACCES)');
    assert.equal(err.statusCode, 403);
    assert.equal(err.type, 'FILE_SYSTEM_ERROR');
    assert.equal(err.details.containerId, 'base-1');
    assert.equal(err.details.filePath, targets[i]);
  });
  assertNoTrace(targets[0], null);
  assertNoTrace(existingPath, existing);
  assertNoTrace(targets[2], null);
  assert.deepEqual(fs.readdirSync(protectedDir), ['existing.tar']);
  assert.deepEqual(fs.readdirSync(path.join(closed, 'sub')), []);
  // The same store still exports for that user, and for root.
  assert.equal(result.ok, `base-1 has exported successfully to ${path.join(writable, 'ok.tar')}`);
  assert.ok(fs.statSync(path.join(writable, 'ok.tar')).size > 0);
  await storeStillExports(setup);
  await storeStillExports();
});

test('a disk that fails reads: ExportContainerIOFailure (EIO)', { skip: skip || loopSkip }, async () => {
  // The container's files include a directory on an ext4 loop device whose
  // backing image is cut short after mounting: reading the file's data
  // beyond the cut fails with EIO, as a dying disk does.
  await k3.containerCore.createContainer(fx.baseRef, { name: 'eio-1' });
  const { BundleDir } = await k3.containerCore.inspectContainer('eio-1');
  const img = path.join(tmp, 'eio.img');
  const staging = path.join(tmp, 'eio-staging');
  fs.mkdirSync(staging);
  execFileSync('truncate', ['-s', '16M', img]);
  execFileSync('mkfs.ext4', ['-q', '-O', '^has_journal', '-b', '1024', img]);
  mount(['-o', 'loop', img], staging);
  fs.writeFileSync(path.join(staging, 'disk-data'), crypto.randomBytes(4 * MB));
  umount(staging);
  const onDisk = path.join(BundleDir, 'diff', 'var-data');
  fs.mkdirSync(onDisk);
  mount(['-o', 'loop', img], onDisk);
  try {
    execFileSync('truncate', ['-s', '1M', img]);
    const filePath = path.join(tmp, 'eio-1.tar');
    const [err] = await bothWays(filePath, (f) => k3.containerCore.exportContainer('eio-1', f));
    assertClass(err, 'ExportContainerIOFailure', 'Input/output error (EIO)');
    assert.equal(err.details.containerId, 'eio-1');
    assert.equal(err.details.filePath, filePath);
    await storeStillExports();
  } finally {
    umount(onDisk);
  }
});

// A container holding 200 MB of random files, made once with copyToContainer.
let huge;
function ensureHuge() {
  if (!huge) {
    huge = (async () => {
      const src = path.join(tmp, 'bulk');
      fs.mkdirSync(src);
      for (let i = 0; i < 800; i++) fs.writeFileSync(path.join(src, `f${String(i).padStart(3, '0')}`), crypto.randomBytes(256 * 1024));
      await k3.containerCore.createContainer(fx.baseRef, { name: 'huge' });
      await k3.containerCore.copyToContainer('huge', src, '/bulk');
      fs.rmSync(src, { recursive: true, force: true });
      return 'huge';
    })();
  }
  return huge;
}

test('a file size limit (prlimit --fsize): ExportContainerIOFailure (EFBIG)', { skip }, async () => {
  // The kernel refuses writes past RLIMIT_FSIZE with EFBIG (node ignores
  // SIGXFSZ): a write fault that is neither ENOSPC nor EROFS nor EACCES.
  // The limit is far above the store's database files, far below the tar.
  await ensureHuge();
  const limit = 64 * MB;
  for (const f of fs.readdirSync(k3.root)) assert.ok(fs.statSync(path.join(k3.root, f)).size < limit / 4, f);
  const filePath = path.join(tmp, 'efbig.tar');
  const run = (f) => new Promise((resolve, reject) => {
    const program = `
      const K3Core = require(${JSON.stringify(LIB)});
      const k3 = new K3Core({ root: ${JSON.stringify(k3.root)} });
      k3.containerCore.exportContainer('huge', ${JSON.stringify(f)}).then(
        (m) => process.stdout.write(JSON.stringify({ resolved: m })),
        (e) => process.stdout.write(JSON.stringify({ name: e.name, message: e.message, details: e.details })));`;
    execFile('prlimit', [`--fsize=${limit}`, process.execPath, '-e', program], { timeout: 120000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message} (signal ${err.signal})\n${stderr}`));
      resolve(JSON.parse(stdout));
    });
  }).then((r) => {
    if (r.resolved) return r.resolved;
    throw r;
  });
  const [err] = await bothWays(filePath, run);
  assertClass(err, 'ExportContainerIOFailure', /EFBIG|too large/i);
  assert.equal(err.details.containerId, 'huge');
  assert.equal(err.details.filePath, filePath);
  await storeStillExports();
});

// ---------------------------------------------------------------------------
// kill -9 in the middle

// Runs `program` (which exports 'huge' to filePath) in a node child; `watch`
// is called with the child every 2 ms and may kill it. Resolves when it ends.
function runChild(program, watch) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      const K3Core = require(${JSON.stringify(LIB)});
      const k3 = new K3Core({ root: ${JSON.stringify(k3.root)} });
      ${program}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const poll = watch ? setInterval(() => watch(child), 2) : null;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({ code, signal, lines: stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr });
    });
  });
}

const report = `.then((m) => fs.writeSync(1, JSON.stringify({ resolved: m }) + '\\n'),
  (e) => fs.writeSync(1, JSON.stringify({ rejected: e.name, details: e.details }) + '\\n'));`;

test('kill -9 when onProgress reports more than 20 MB: no file, an existing one unchanged', { skip }, async () => {
  await ensureHuge();
  const filePath = path.join(tmp, 'huge-progress.tar');
  for (const existing of [null, crypto.randomBytes(4096)]) {
    fs.rmSync(filePath, { force: true });
    if (existing) fs.writeFileSync(filePath, existing);
    // The child prints each progress event and is killed with SIGKILL (by
    // itself, from the callback, so no time passes) once it reports > 20 MB.
    const r = await runChild(`
      k3.containerCore.exportContainer('huge', ${JSON.stringify(filePath)}, { onProgress: (e) => {
        fs.writeSync(1, JSON.stringify(e) + '\\n');
        if (e.phase === 'export' && e.current > 20 * 1024 * 1024) process.kill(process.pid, 'SIGKILL');
      } })${report}`);
    const progress = r.lines.filter((l) => l.phase).map((l) => `${l.phase}:${l.current}/${l.total}`);
    assert.equal(r.signal, 'SIGKILL', `onProgress never reported more than 20 MB before the export ended; events: ${progress.join(' ')}; then ${JSON.stringify(r.lines[r.lines.length - 1])}`);
    const last = r.lines[r.lines.length - 1];
    assert.ok(last.current > 20 * MB && last.current < 200 * MB, `killed midway: ${JSON.stringify(last)}`);
    assertNoTrace(filePath, existing);
  }
  fs.rmSync(filePath, { force: true });
  await storeStillExports();
});

// Bytes written so far to a file the child has open in dir (an O_TMPFILE
// shows as "dir/#123 (deleted)", a named temporary file by its name).
function bytesWrittenIn(pid, dir) {
  let most = 0;
  let fds = [];
  try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { return 0; }
  for (const fd of fds) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) most = Math.max(most, fs.statSync(`/proc/${pid}/fd/${fd}`).size);
    } catch { /* closed meanwhile */ }
  }
  return most;
}

test('kill -9 once the output holds more than 20 MB (watched from outside): no file, an existing one unchanged', { skip }, async () => {
  await ensureHuge();
  const dir = path.join(tmp, 'kill-out');
  fs.mkdirSync(dir);
  const filePath = path.join(dir, 'huge.tar');
  for (const existing of [null, crypto.randomBytes(4096)]) {
    fs.rmSync(filePath, { force: true });
    if (existing) fs.writeFileSync(filePath, existing);
    let seen = 0;
    const r = await runChild(`k3.containerCore.exportContainer('huge', ${JSON.stringify(filePath)})${report}`, (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      seen = Math.max(seen, bytesWrittenIn(child.pid, dir));
      if (seen > 20 * MB) child.kill('SIGKILL');
    });
    assert.equal(r.signal, 'SIGKILL', `the child was killed midway (saw ${seen} bytes): ${JSON.stringify(r)}`);
    assert.deepEqual(r.lines, [], 'the export did not finish');
    assertNoTrace(filePath, existing);
    assert.deepEqual(fs.readdirSync(dir), existing ? ['huge.tar'] : []);
  }
  // The store is fine afterwards: the same container exports completely.
  fs.rmSync(filePath, { force: true });
  const message = await k3.containerCore.exportContainer('huge', filePath);
  assert.equal(message, `huge has exported successfully to ${filePath}`);
  assert.ok(fs.statSync(filePath).size > 200 * MB);
  fs.rmSync(filePath);
  await storeStillExports();
});

// ---------------------------------------------------------------------------
// Hostile layers

// Every inode in the store, to make sure none is /etc/passwd's.
function inodesUnder(dir) {
  const seen = new Set();
  const walk = (d) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      const st = fs.lstatSync(p);
      seen.add(`${st.dev}:${st.ino}`);
      if (ent.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return seen;
}

test('hostile layers are refused (UnsafeImageContent) or kept inside the store; nothing lands outside', { skip }, async () => {
  const tag = crypto.randomBytes(4).toString('hex');
  const root = k3.root;
  const passwd = fs.readFileSync('/etc/passwd');
  const passwdStat = fs.statSync('/etc/passwd');
  const hostDir = path.join(os.tmpdir(), `k3-sym-${tag}`);
  fs.mkdirSync(hostDir);
  const deep = '../'.repeat(24);
  const cases = [
    { repo: 'slip', entries: [{ path: `../../escape-${tag}`, content: 'slipped' }],
      outside: [path.join(root, `escape-${tag}`), path.join(root, 'layers', `escape-${tag}`), path.join(path.dirname(root), `escape-${tag}`), path.join(root, 'tmp', `escape-${tag}`)],
      refuse: true },
    { repo: 'slip-deep', entries: [{ path: `${deep}tmp/k3-slip-${tag}`, content: 'slipped' }],
      outside: [path.join(os.tmpdir(), `k3-slip-${tag}`), `/tmp/k3-slip-${tag}`], refuse: true },
    { repo: 'absolute', entries: [{ path: `/tmp/k3-abs-${tag}`, content: 'absolute' }],
      outside: [`/tmp/k3-abs-${tag}`], inside: `tmp/k3-abs-${tag}` },
    { repo: 'symlink', entries: [{ path: 'evil', type: 'symlink', linkname: hostDir }, { path: 'evil/file', content: 'pwned' }],
      outside: [path.join(hostDir, 'file')], inside: `${hostDir.slice(1)}/file` },
    { repo: 'symlink-present', entries: [
      ...hostDir.slice(1).split('/').map((_, i, parts) => ({ path: parts.slice(0, i + 1).join('/'), type: 'dir' })),
      { path: 'evil', type: 'symlink', linkname: hostDir }, { path: 'evil/file', content: 'pwned' }],
    outside: [path.join(hostDir, 'file')], inside: `${hostDir.slice(1)}/file`, contained: true },
    { repo: 'hardlink', entries: [{ path: 'passwd', type: 'hardlink', linkname: '/etc/passwd' }], outside: [], refuse: true },
    { repo: 'hardlink-up', entries: [{ path: 'passwd', type: 'hardlink', linkname: `${deep}etc/passwd` }], outside: [], refuse: true },
  ];
  const problems = [];
  try {
    for (const c of cases) {
      const layer = images.makeLayer([{ path: 'ok', content: 'fine' }, ...c.entries]);
      const img = images.makeImage({ layers: [layer] });
      await images.pushImage(reg, `hostile/${c.repo}`, 'v1', img);
      const ref = `${reg.host}/hostile/${c.repo}:v1`;
      const outcome = await k3.imageCore.pullAnImage(ref).then(() => null, (e) => e);
      for (const p of c.outside) assert.equal(fs.existsSync(p), false, `${c.repo}: ${p} was written outside the store`);
      assert.equal(sha(fs.readFileSync('/etc/passwd')), sha(passwd), `${c.repo}: /etc/passwd changed`);
      assert.equal(fs.statSync('/etc/passwd').nlink, passwdStat.nlink, `${c.repo}: /etc/passwd gained a link`);
      assert.deepEqual(fs.readdirSync(hostDir), [], `${c.repo}: wrote through the symlink`);
      assert.equal(inodesUnder(root).has(`${passwdStat.dev}:${passwdStat.ino}`), false, `${c.repo}: the store links /etc/passwd`);
      assert.deepEqual(fs.readdirSync(path.join(root, 'tmp')), [], `${c.repo}: staging left behind`);
      const listed = (await k3.imageCore.listImages()).some((i) => i.Id === img.configDigest);
      if (outcome) {
        assert.equal(listed, false, `${c.repo}: a refused image is not recorded`);
        if (c.contained || outcome.name !== 'UnsafeImageContent') {
          problems.push(`${c.repo}: pull rejected with ${describe(outcome)}; expected ${c.contained ? 'success, contained inside the store' : 'UnsafeImageContent'}`);
        } else {
          assert.equal(outcome.statusCode, 500);
          assert.match(outcome.details.imageName, new RegExp(`hostile/${c.repo}`));
        }
        continue;
      }
      if (c.refuse) {
        problems.push(`${c.repo}: the pull succeeded; expected UnsafeImageContent`);
        continue;
      }
      // Accepted: what the layer wrote must be inside the container's root.
      assert.equal(listed, true);
      const name = `hostile-${c.repo}`;
      await k3.containerCore.createContainer(ref, { name });
      const file = path.join(tmp, `${name}.tar`);
      await k3.containerCore.exportContainer(name, file);
      const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
      assert.ok(names.includes('ok'), names.join(' '));
      if (c.inside && !names.includes(c.inside)) problems.push(`${c.repo}: accepted, but ${c.inside} is not in the container (${names.join(' ')})`);
      fs.rmSync(file);
    }
  } finally {
    fs.rmSync(hostDir, { recursive: true, force: true });
  }
  assert.deepEqual(problems, []);
  await storeStillExports();
});
