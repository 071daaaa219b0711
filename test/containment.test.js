'use strict';
// Paths on the container's side stay inside the container. A container owns
// its files, symlinks included: whatever it or its image makes there,
// copyToContainer and removeFromContainer resolve every path as the
// container itself would (an absolute symlink starts at its root), and never
// touch a host file. Real containers, run by runc, with a static busybox.
const { test, before, beforeEach, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');

const missing = [];
if (process.getuid() !== 0) missing.push('not root');
if (!whichSync('runc')) missing.push('runc is not installed');
if (!fs.existsSync('/bin/busybox')) missing.push('busybox-static is not installed');
// Under CI a missing peer is a failure, not a skip: a green run means this ran.
if (missing.length && process.env.CI === 'true') {
  test('containment needs root, runc and busybox', () => assert.fail(missing.join(', ')));
}
const skip = missing.length ? missing.join(', ') : false;
if (skip) console.log(`# skipping containment tests: ${skip}`);

let tmp;
let k3;
// Host files and directories a container's symlinks point at.
const host = {};
const APPLETS = ['sh', 'cat', 'ln', 'mkdir', 'touch', 'sleep', 'ls', 'readlink', 'test', '['];
const HOST_BYTES = 'host file: must never change\n';

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-contain-'));
  host.file = path.join(tmp, 'host-file');
  host.dir = path.join(tmp, 'host-dir');
  const up = '../'.repeat(8);
  const img = images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'tmp', type: 'dir', mode: 0o1777 }, { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' },
      { path: 'dev', type: 'dir' }, { path: 'inside', type: 'dir' }, { path: 'inside/keep', content: 'kept' },
      { path: 'inside/old', content: 'old' },
      // The image itself points at the host, as a container could.
      { path: 'layer', type: 'dir' }, { path: 'layer/d', type: 'dir' },
      { path: 'layer/d/x', type: 'symlink', linkname: host.file },
      { path: 'layer/d/rel', type: 'symlink', linkname: up + host.file.slice(1) },
      { path: 'layer/e', type: 'symlink', linkname: host.dir },
      { path: 'to-inside', type: 'symlink', linkname: '/inside' },
      { path: 'to-inside-rel', type: 'symlink', linkname: `${up}inside` },
      { path: 'to-host', type: 'symlink', linkname: host.dir },
    ]],
    config: { Cmd: ['/bin/sh', '-c', 'true'], Env: ['PATH=/bin'] },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'contain:1' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'contain:1', { containerImageTransport: 'oci' });
});

// Each test starts from the same host files, so each finds its own damage.
beforeEach(() => {
  if (skip) return;
  fs.writeFileSync(host.file, HOST_BYTES);
  fs.rmSync(host.dir, { recursive: true, force: true });
  fs.mkdirSync(host.dir);
  fs.writeFileSync(path.join(host.dir, 'victim'), HOST_BYTES);
});

after(async () => {
  if (!k3) return;
  for (const c of await k3.containerCore.listContainers()) {
    await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

function assertHostUntouched() {
  assert.equal(fs.readFileSync(host.file, 'utf8'), HOST_BYTES, 'the host file is byte-identical');
  assert.deepEqual(fs.readdirSync(host.dir), ['victim'], 'nothing was written into the host directory');
  assert.equal(fs.readFileSync(path.join(host.dir, 'victim'), 'utf8'), HOST_BYTES);
}

// A host tree to copy in: name/d/x, name/d/rel and name/e/y.
function payload(name) {
  const dir = path.join(fs.mkdtempSync(path.join(tmp, 'src-')), name);
  fs.mkdirSync(path.join(dir, 'd'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'e'));
  fs.writeFileSync(path.join(dir, 'd', 'x'), `x from ${name}\n`);
  fs.writeFileSync(path.join(dir, 'd', 'rel'), `rel from ${name}\n`);
  fs.writeFileSync(path.join(dir, 'e', 'y'), `y from ${name}\n`);
  return dir;
}

function exported(file) {
  const dir = fs.mkdtempSync(path.join(tmp, 'x-'));
  execFileSync('tar', ['-xpf', file, '-C', dir]);
  return dir;
}

async function exportOf(id) {
  const file = path.join(tmp, `${id}-${Date.now()}.tar`);
  await k3.containerCore.exportContainer(id, file);
  return exported(file);
}

async function waitFor(predicate, ms = 60000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

async function rejection(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

test('a running container\'s own symlinks never carry a copy onto the host', { skip }, async () => {
  const up = '../'.repeat(8);
  // The container points its writable layer at the host, then waits for the
  // copy and reads what arrived, as its own process sees it.
  const script = [
    'mkdir -p /payload/d',
    `ln -s ${host.file} /payload/d/x`,
    `ln -s ${up}${host.file.slice(1)} /payload/d/rel`,
    `ln -s ${host.dir} /payload/e`,
    'touch /ready',
    'while [ ! -e /go ]; do sleep 0.05; done',
    'cat /payload/d/x /payload/d/rel /payload/e/y',
  ].join('; ');
  await k3.containerCore.createContainer('contain:1', { name: 'live', cmd: ['/bin/sh', '-c', script] });
  await k3.containerCore.startContainer('live');
  const info = await k3.containerCore.inspectContainer('live');
  assert.ok(await waitFor(() => fs.existsSync(path.join(info.BundleDir, 'diff', 'ready'))), 'the container got ready');

  const src = payload('payload');
  assert.deepEqual(await k3.containerCore.copyToContainer('live', src, '/'), { Id: info.Id, Path: '/payload' });
  assertHostUntouched();
  fs.writeFileSync(path.join(tmp, 'go'), '');
  await k3.containerCore.copyToContainer('live', path.join(tmp, 'go'), '/');
  const waited = await k3.containerCore.waitContainer('live');
  assert.equal(waited.ExitCode, 0);
  const logs = (await k3.containerCore.containerLogs('live')).map((l) => l.log);
  assert.deepEqual(logs, ['x from payload', 'rel from payload', 'y from payload'], 'the container read the copy at once');
  assertHostUntouched();
  const dir = await exportOf('live');
  assert.equal(fs.readFileSync(path.join(dir, 'payload/d/x'), 'utf8'), 'x from payload\n');
  assert.ok(fs.lstatSync(path.join(dir, 'payload/e')).isDirectory(), 'the symlinked directory was replaced by the copied one');
});

test('a stopped container\'s symlinks, from its image or an earlier copy, never carry a copy onto the host', { skip }, async () => {
  await k3.containerCore.createContainer('contain:1', { name: 'cold' });
  // The image holds /layer/d/x, /layer/d/rel and /layer/e pointing at the host.
  const src = payload('layer');
  await k3.containerCore.copyToContainer('cold', src, '/');
  assertHostUntouched();
  // A first copy brings symlinks to the host; the second copies files over them.
  const links = path.join(fs.mkdtempSync(path.join(tmp, 'src-')), 'payload');
  fs.mkdirSync(path.join(links, 'd'), { recursive: true });
  fs.symlinkSync(host.file, path.join(links, 'd', 'x'));
  fs.symlinkSync('../'.repeat(8) + host.file.slice(1), path.join(links, 'd', 'rel'));
  fs.symlinkSync(host.dir, path.join(links, 'e'));
  await k3.containerCore.copyToContainer('cold', links, '/');
  await k3.containerCore.copyToContainer('cold', payload('payload'), '/');
  assertHostUntouched();

  const dir = await exportOf('cold');
  for (const name of ['layer', 'payload']) {
    assert.equal(fs.readFileSync(path.join(dir, name, 'd/x'), 'utf8'), `x from ${name}\n`);
    assert.equal(fs.readFileSync(path.join(dir, name, 'd/rel'), 'utf8'), `rel from ${name}\n`);
    assert.equal(fs.readFileSync(path.join(dir, name, 'e/y'), 'utf8'), `y from ${name}\n`);
  }
});

test('a symlink in the destination\'s directories is followed inside the container, as docker cp does', { skip }, async () => {
  await k3.containerCore.createContainer('contain:1', { name: 'dest' });
  const file = path.join(tmp, 'dest-file');
  fs.writeFileSync(file, 'through the link\n');
  assert.equal((await k3.containerCore.copyToContainer('dest', file, '/to-inside/')).Path, '/inside/dest-file');
  await k3.containerCore.copyToContainer('dest', file, '/to-inside-rel/renamed');
  // /to-host points at a directory that exists on the host, not in the container.
  const err = await rejection(k3.containerCore.copyToContainer('dest', file, '/to-host/dest-file'));
  assert.ok(err instanceof K3Core.errors.CopyDestinationNotFound, `${err.name}: ${err.details && err.details.error}`);
  assertHostUntouched();
  const dir = await exportOf('dest');
  assert.equal(fs.readFileSync(path.join(dir, 'inside/dest-file'), 'utf8'), 'through the link\n');
  assert.equal(fs.readFileSync(path.join(dir, 'inside/renamed'), 'utf8'), 'through the link\n');
  assert.equal(fs.readlinkSync(path.join(dir, 'to-inside')), '/inside', 'the link itself is unchanged');
});

test('removeFromContainer resolves a symlinked parent inside the container and never deletes a host file', { skip }, async () => {
  const script = [`ln -s ${host.dir} /rm`, `ln -s ${'../'.repeat(8)}${host.dir.slice(1)} /rm-rel`, 'touch /ready',
    'while [ ! -e /go ]; do sleep 0.05; done', 'ls /inside'].join('; ');
  await k3.containerCore.createContainer('contain:1', { name: 'rm-live', cmd: ['/bin/sh', '-c', script] });
  await k3.containerCore.startContainer('rm-live');
  const info = await k3.containerCore.inspectContainer('rm-live');
  assert.ok(await waitFor(() => fs.existsSync(path.join(info.BundleDir, 'diff', 'ready'))), 'the container got ready');
  for (const p of ['/rm/victim', '/rm-rel/victim', '/layer/e/victim', '/to-host/victim']) {
    const err = await rejection(k3.containerCore.removeFromContainer('rm-live', p));
    assert.ok(err instanceof K3Core.errors.PathNotFoundInContainer, `${p}: ${err.name}: ${err.details && err.details.error}`);
    assertHostUntouched();
  }
  assert.deepEqual(await k3.containerCore.removeFromContainer('rm-live', '/to-inside/old'), { Id: info.Id, Path: '/inside/old' });
  // The link itself goes, not what it points at.
  await k3.containerCore.removeFromContainer('rm-live', '/rm');
  assertHostUntouched();
  fs.writeFileSync(path.join(tmp, 'go'), '');
  await k3.containerCore.copyToContainer('rm-live', path.join(tmp, 'go'), '/');
  assert.equal((await k3.containerCore.waitContainer('rm-live')).ExitCode, 0);
  assert.deepEqual((await k3.containerCore.containerLogs('rm-live')).map((l) => l.log), ['keep'], 'the container saw the removal');
  const dir = await exportOf('rm-live');
  assert.equal(fs.existsSync(path.join(dir, 'rm')), false);
});

test('bind-mount destinations are absolute, without "..", and kept cleaned', { skip }, async () => {
  for (const destination of ['relative/dir', '/a/../../etc', '/..', '/', '']) {
    const err = await rejection(k3.containerCore.createContainer('contain:1', { mounts: [{ source: host.dir, destination }] }));
    assert.ok(err instanceof K3Core.errors.InvalidCreateContainerParameters, `${JSON.stringify(destination)}: ${err.name}`);
  }
  await k3.containerCore.createContainer('contain:1', { name: 'bind', mounts: [{ source: host.dir, destination: '/a//b/./c/' }] });
  const info = await k3.containerCore.inspectContainer('bind');
  assert.equal(info.Config.mounts[0].destination, '/a/b/c');
});
