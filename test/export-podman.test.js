'use strict';
// exportContainer against podman as the oracle: the same image, pulled from
// the same local registry by both, exported by both (`podman export` and
// exportContainer), compared entry for entry — paths, types, modes, link
// targets, owners, xattrs, mtimes of non-directories and file contents —
// first as created, then after the same changes (a file copied in, a file
// removed, a directory replaced) made through each tool's own means.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');
const { sha, tree, differences } = require('./helpers/tar-tree');

function problem() {
  const noRegistry = registryAvailable();
  if (noRegistry) return noRegistry;
  if (!whichSync('podman')) return 'podman is not installed';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'podman mount needs root';
  try {
    execFileSync('podman', ['info', '--format', '{{.Store.GraphDriverName}}'], { stdio: 'pipe', timeout: 60000 });
  } catch (e) {
    return `podman does not work here: ${String(e.stderr || e.message).trim().split('\n')[0]}`;
  }
  return false;
}
const skip = need(problem());
if (skip) console.log(`# skipping podman oracle tests: ${skip}`);
const zstdAvailable = Boolean(whichSync('zstd'));

let reg;
let tmp;
let k3;
let ref;
const fx = {};
const podmanName = `k3-oracle-${process.pid}`;
let podmanMounted = false;

const podman = (...args) => execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 }).trim();

function gnuList(file, extra = []) {
  return execFileSync('tar', [...extra, '--numeric-owner', '-tvf', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

async function exportBoth(label) {
  const a = path.join(tmp, `${label}-podman.tar`);
  const b = path.join(tmp, `${label}-k3.tar`);
  podman('export', '-o', a, podmanName);
  const message = await k3.containerCore.exportContainer('oracle', b);
  assert.equal(message, `oracle has exported successfully to ${b}`);
  return { a, b, oracle: tree(a), ours: tree(b) };
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-export-podman-'));
  reg = await startRegistry();
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  fx.big = crypto.randomBytes(5 * 1024 * 1024);
  const longDir = `usr/share/${'d'.repeat(60)}`;
  fx.longName = `${longDir}/${'f'.repeat(90)}.txt`;
  const T = 1700000000;
  fx.image = images.makeImage({
    layers: [
      [
        { path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'base\n' },
        { path: 'etc/gone', content: 'deleted by layer 2' }, { path: 'etc/keep', content: 'kept', mode: 0o640 },
        { path: 'bin', type: 'dir' }, { path: 'bin/tool', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
        { path: 'bin/suid', content: 'setuid', mode: 0o4755 },
        { path: 'bin/keep-suid', content: 'setuid kept', mode: 0o4755 }, { path: 'bin/sgid', content: 'setgid', mode: 0o2755 },
        { path: 'tmp', type: 'dir', mode: 0o1777 },
        { path: 'home', type: 'dir' }, { path: 'home/user', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
        { path: 'home/user/.profile', content: 'export A=1\n', uid: 1000, gid: 1000 },
        { path: 'usr', type: 'dir' }, { path: 'usr/share', type: 'dir' }, { path: longDir, type: 'dir' },
        { path: fx.longName, content: 'a name over 100 bytes' },
        { path: 'var', type: 'dir' }, { path: 'var/cache', type: 'dir' },
        { path: 'var/cache/old1', content: '1' }, { path: 'var/cache/old2', content: '2' },
        { path: 'var/cache/sub', type: 'dir' }, { path: 'var/cache/sub/x', content: 'x' },
        { path: 'data', type: 'dir' }, { path: 'data/original', content: 'shared inode' },
        { path: 'data/hl1', type: 'hardlink', linkname: 'data/original' },
        { path: 'data/hl2', type: 'hardlink', linkname: 'data/original' },
        { path: 'empty', content: '' },
        { path: 'big.bin', content: fx.big },
        { path: 'link-rel', type: 'symlink', linkname: 'bin/tool' },
        { path: 'link-abs', type: 'symlink', linkname: '/etc/hostname' },
        { path: 'dangling', type: 'symlink', linkname: '../nowhere' },
        { path: 'tagged', content: 'has xattrs', xattrs: { 'user.k3': 'yes', 'user.other': 'value with spaces' } },
        { path: 'pipe', type: 'fifo' },
        { path: 'dev', type: 'dir' }, { path: 'dev/k3null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
        { path: 'owned', content: 'owned by 1000', uid: 1000, gid: 1000, mode: 0o600 },
        { path: 'private', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 }, { path: 'private/secret', content: 's' },
        { path: 'sticky', type: 'dir', mode: 0o1777 }, { path: 'sticky/f', content: 'in sticky' },
        { path: 'old-mtime', content: 'old', mtime: 1500000000 },
      ],
      [
        { path: 'etc/.wh.gone', content: '' },
        { path: 'var/cache/.wh..wh..opq', content: '' }, { path: 'var/cache/new', content: 'new cache' },
        // Rewriting one name of a hardlinked inode in a later layer splits it.
        { path: 'data/original', content: 'rewritten above', mtime: T + 10 },
        { path: 'etc/hostname', content: 'top\n', mtime: T + 20 },
        { path: 'dangling', content: 'a file where a symlink was' },
        { path: 'newdir', type: 'dir' }, { path: 'newdir/file', content: 'layer 2' },
      ],
      [
        { path: '.wh.private', content: '' },
        { path: 'bin/.wh.suid', content: '' },
        { path: 'sticky', content: 'a file where a directory was' },
      ],
    ],
  });
  await images.pushImage(reg, 'k3-oracle/app', 'v1', fx.image);
  ref = `${reg.host}/k3-oracle/app:v1`;
  podman('pull', '--tls-verify=false', ref);
  podman('create', '--name', podmanName, ref, '/bin/true');
  await k3.imageCore.pullAnImage(ref);
  await k3.containerCore.createContainer(ref, { name: 'oracle' });
});

after(async () => {
  if (!skip) {
    if (podmanMounted) { try { podman('umount', podmanName); } catch { /* gone */ } }
    try { podman('rm', '-f', podmanName); } catch (e) { console.log(`# podman rm: ${e.message}`); }
    try { podman('rmi', '-f', ref); } catch (e) { console.log(`# podman rmi: ${e.message}`); }
  }
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a created container exports like podman export', { skip }, async () => {
  const { oracle, ours } = await exportBoth('created');
  // The oracle saw the layers as intended, so the comparison means something.
  assert.equal(oracle.get('big.bin').sha256, sha(fx.big));
  assert.equal(oracle.has('etc/gone'), false);
  assert.equal(oracle.has('var/cache/old1'), false);
  assert.equal(oracle.has('private'), false);
  assert.equal(oracle.get('sticky').type, 'file');
  assert.deepEqual(oracle.get('data/hl1').links, ['data/hl1', 'data/hl2']);
  assert.ok(oracle.has(fx.longName));
  assert.equal(oracle.get('tmp').mode, '1777');
  assert.equal(oracle.get('bin/keep-suid').mode, '4755');
  assert.equal(oracle.get('home/user').uid, 1000);
  assert.deepEqual(oracle.get('tagged').xattrs, { 'user.k3': 'yes', 'user.other': 'value with spaces' });
  assert.deepEqual(differences(oracle, ours), []);
});

test('after the same changes (copy in, remove, replace a directory) both export the same', { skip }, async () => {
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'cache'), { recursive: true });
  fs.writeFileSync(path.join(src, 'app.conf'), 'port=80\n', { mode: 0o640 });
  fs.chmodSync(path.join(src, 'app.conf'), 0o640);
  fs.writeFileSync(path.join(src, 'cache', 'fresh'), 'fresh');
  fs.chmodSync(path.join(src, 'cache'), 0o755);
  for (const p of ['app.conf', 'cache/fresh', 'cache']) fs.utimesSync(path.join(src, p), 1600000000, 1600000000);

  await k3.containerCore.copyToContainer('oracle', path.join(src, 'app.conf'), '/etc/');
  await k3.containerCore.removeFromContainer('oracle', '/bin/tool');
  await k3.containerCore.removeFromContainer('oracle', '/var/cache');
  await k3.containerCore.copyToContainer('oracle', path.join(src, 'cache'), '/var/cache');

  const merged = podman('mount', podmanName);
  podmanMounted = true;
  try {
    execFileSync('cp', ['-a', path.join(src, 'app.conf'), path.join(merged, 'etc') + '/']);
    fs.rmSync(path.join(merged, 'bin', 'tool'));
    fs.rmSync(path.join(merged, 'var', 'cache'), { recursive: true });
    execFileSync('cp', ['-a', path.join(src, 'cache'), path.join(merged, 'var', 'cache')]);
  } finally {
    podman('umount', podmanName);
    podmanMounted = false;
  }

  const { oracle, ours } = await exportBoth('changed');
  assert.equal(oracle.get('etc/app.conf').sha256, sha('port=80\n'));
  assert.equal(oracle.has('bin/tool'), false);
  assert.deepEqual([...oracle.keys()].filter((n) => n.startsWith('var/cache/')), ['var/cache/fresh']);
  assert.deepEqual(differences(oracle, ours), []);
});

test('GNU tar extracts our export, and .tar.gz / .tar.zst list the same entries', { skip }, async () => {
  const plain = path.join(tmp, 'gnu.tar');
  await k3.containerCore.exportContainer('oracle', plain);
  const dir = fs.mkdtempSync(path.join(tmp, 'x-'));
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xpf', plain, '-C', dir]);
  assert.equal(sha(fs.readFileSync(path.join(dir, 'big.bin'))), sha(fx.big));
  assert.equal(fs.readFileSync(path.join(dir, fx.longName), 'utf8'), 'a name over 100 bytes');
  assert.equal(fs.statSync(path.join(dir, 'data/hl1')).ino, fs.statSync(path.join(dir, 'data/hl2')).ino);
  assert.notEqual(fs.statSync(path.join(dir, 'data/hl1')).ino, fs.statSync(path.join(dir, 'data/original')).ino);
  assert.equal(fs.readFileSync(path.join(dir, 'data/original'), 'utf8'), 'rewritten above');
  assert.equal(fs.readlinkSync(path.join(dir, 'link-abs')), '/etc/hostname');
  assert.ok(fs.statSync(path.join(dir, 'pipe')).isFIFO());
  assert.equal(fs.statSync(path.join(dir, 'owned')).uid, 1000);
  assert.equal(fs.statSync(path.join(dir, 'old-mtime')).mtimeMs, 1500000000 * 1000);
  assert.equal(fs.readFileSync(path.join(dir, 'etc/app.conf'), 'utf8'), 'port=80\n');
  if (whichSync('python3')) {
    const xattr = execFileSync('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], "user.k3").decode())', path.join(dir, 'tagged')], { encoding: 'utf8' });
    assert.equal(xattr.trim(), 'yes');
  }

  const want = gnuList(plain);
  assert.ok(want.split('\n').length > 30);
  const gz = path.join(tmp, 'gnu.tar.gz');
  await k3.containerCore.exportContainer('oracle', gz);
  assert.equal(gnuList(gz, ['-z']), want);
  assert.deepEqual(zlib.gunzipSync(fs.readFileSync(gz)), fs.readFileSync(plain));
  const tgz = path.join(tmp, 'gnu.tgz');
  await k3.containerCore.exportContainer('oracle', tgz);
  assert.equal(gnuList(tgz, ['-z']), want);
  const zst = path.join(tmp, 'gnu.tar.zst');
  await k3.containerCore.exportContainer('oracle', zst);
  assert.equal(fs.readFileSync(zst).subarray(0, 4).toString('hex'), '28b52ffd');
  if (zstdAvailable) assert.equal(gnuList(zst, ['--zstd']), want);
  else console.log('# zstd is not installed: the .tar.zst listing is not compared');
});

// A hardlink entry carries its own owner, mode and times, which Docker and
// podman give the inode it links to: both names show them, even when the
// target is a lower layer's file. podman's overlay driver cannot link into
// a lower layer at all, so the oracle here is podman on its vfs driver, in
// a store of its own.
test('hardlink entries give their metadata to the inode they link to, as podman (vfs) exports it', { skip }, async () => {
  const T = 1700000000;
  const image = images.makeImage({
    layers: [
      [
        { path: 'etc', type: 'dir', mode: 0o750, mtime: T - 200 },
        { path: 'etc/owned', content: 'owned by 1000', uid: 1000, gid: 1000, mode: 0o600, mtime: T - 100 },
        { path: 'etc/same', content: 'linked in its own layer', uid: 1000, gid: 1000, mode: 0o600, mtime: T - 50 },
        { path: 'etc/same-link', type: 'hardlink', linkname: 'etc/same', mode: 0o644, mtime: T - 10 },
        { path: 'bin', type: 'dir' }, { path: 'bin/tool', content: 'tool', mode: 0o755 },
      ],
      [
        { path: 'owned-link', type: 'hardlink', linkname: 'etc/owned', mode: 0o644, mtime: T + 30 },
        { path: 'tool-link', type: 'hardlink', linkname: 'bin/tool', mode: 0o755 },
      ],
    ],
  });
  await images.pushImage(reg, 'k3-oracle/hardlinks', 'v1', image);
  const hlRef = `${reg.host}/k3-oracle/hardlinks:v1`;
  const vfs = ['--root', path.join(tmp, 'podman-vfs'), '--runroot', path.join(tmp, 'podman-vfs-run'), '--storage-driver', 'vfs'];
  const a = path.join(tmp, 'hardlinks-podman.tar');
  const b = path.join(tmp, 'hardlinks-k3.tar');
  try {
    podman(...vfs, 'pull', '--tls-verify=false', hlRef);
    podman(...vfs, 'create', '--name', 'k3-hardlinks', hlRef, '/bin/true');
    podman(...vfs, 'export', '-o', a, 'k3-hardlinks');
  } finally {
    try { podman(...vfs, 'rm', '-f', 'k3-hardlinks'); podman(...vfs, 'rmi', '-af'); } catch (e) { console.log(`# podman vfs cleanup: ${e.message}`); }
  }
  await k3.imageCore.pullAnImage(hlRef);
  await k3.containerCore.createContainer(hlRef, { name: 'hardlinks' });
  await k3.containerCore.exportContainer('hardlinks', b);
  const oracle = tree(a);
  const ours = tree(b);
  // The oracle applied the link's metadata to the lower layer's file.
  assert.deepEqual({ ...oracle.get('etc/owned'), sha256: undefined }, {
    type: 'file', mode: '644', uid: 0, gid: 0, xattrs: {}, mtime: T + 30, size: 13, sha256: undefined, links: ['etc/owned', 'owned-link'],
  });
  assert.equal(oracle.get('etc/same').uid, 0);
  assert.deepEqual(differences(oracle, ours), []);
});
