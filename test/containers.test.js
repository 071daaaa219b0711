'use strict';
// The local store: pulling images into it, listing and removing them, and
// containers made from them — created, found, changed, exported, removed.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping store tests: ${skip}`);

let reg;
let tmp;
let k3;
const fx = {};

// Reads a plain tar into [{name, type, mode, uid, gid, linkname, size, sha256}]
// with GNU tar itself, the reference reader.
function tarList(file, extraArgs = []) {
  const out = execFileSync('tar', [...extraArgs, '--numeric-owner', '-tvf', file], { encoding: 'utf8' });
  return out.trim().split('\n').map((line) => {
    const m = line.match(/^(\S+) (\d+)\/(\d+)\s+(\d+) \S+ \S+ (.*)$/);
    assert.ok(m, `unparsed tar line: ${line}`);
    return { perms: m[1], uid: Number(m[2]), gid: Number(m[3]), size: Number(m[4]), name: m[5] };
  });
}

function extract(file, extraArgs = []) {
  const dir = fs.mkdtempSync(path.join(tmp, 'x-'));
  execFileSync('tar', [...extraArgs, '-xpf', file, '-C', dir]);
  return dir;
}

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-store-test-'));
  reg = await startRegistry();
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  fx.big = crypto.randomBytes(3 * 1024 * 1024);
  const longName = `deep/${'d'.repeat(60)}/${'f'.repeat(90)}.txt`;
  fx.longName = longName;
  fx.image = images.makeImage({
    layers: [
      [
        { path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'base' }, { path: 'etc/gone', content: 'deleted later' },
        { path: 'bin', type: 'dir' }, { path: 'bin/tool', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
        { path: 'var', type: 'dir' }, { path: 'var/cache', type: 'dir' }, { path: 'var/cache/old1', content: '1' }, { path: 'var/cache/old2', content: '2' },
        { path: 'data', type: 'dir' }, { path: 'data/original', content: 'shared inode' },
        { path: 'empty', content: '' }, { path: 'big.bin', content: fx.big },
        { path: 'deep', type: 'dir' }, { path: `deep/${'d'.repeat(60)}`, type: 'dir' }, { path: longName, content: 'long name' },
        { path: 'link-to-tool', type: 'symlink', linkname: 'bin/tool' },
        { path: 'tagged', content: 'has an xattr', xattrs: { 'user.k3': 'yes' } },
        { path: 'pipe', type: 'fifo' },
      ],
      [
        { path: 'etc/.wh.gone', content: '' },
        { path: 'var/cache/.wh..wh..opq', content: '' }, { path: 'var/cache/new', content: 'new cache' },
        { path: 'data/second-name', type: 'hardlink', linkname: 'data/original' },
        { path: 'etc/hostname', content: 'top' },
      ],
    ],
    config: { Env: ['PATH=/bin', 'MODE=test'], Cmd: ['/bin/tool'], Labels: { app: 'k3' } },
  });
  await images.pushImage(reg, 'store/app', 'v1', fx.image);
  fx.other = images.makeImage({ layers: [[{ path: 'other', content: 'x' }]] });
  await images.pushImage(reg, 'store/other', 'latest', fx.other);
  fx.ref = `${reg.host}/store/app:v1`;
});

after(async () => {
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

test('pull: layers verified, unpacked, recorded, with progress', { skip }, async () => {
  const events = [];
  const out = await k3.imageCore.pullAnImage(`${reg.host}/store/app`, 'v1', { onProgress: (e) => events.push(e) });
  assert.equal(out.Id, fx.image.configDigest);
  assert.equal(out.Digest, fx.image.manifestDigest);
  assert.deepEqual(out.RepoTags, [fx.ref]);
  assert.deepEqual(out.RepoDigests, [`${reg.host}/store/app@${fx.image.manifestDigest}`]);
  assert.equal(out.Layers, 2);
  assert.equal(out.LayersPulled, 2);
  assert.equal(events[0].phase, 'resolved');
  assert.equal(events[events.length - 1].phase, 'done');
  // Blobs are kept by digest and really are what their names say.
  for (const l of fx.image.layers) {
    const blob = fs.readFileSync(path.join(k3.root, 'blobs', 'sha256', l.digest.slice(7)));
    assert.equal(`sha256:${sha(blob)}`, l.digest);
  }
});

test('pull again: every layer reused, nothing downloaded', { skip }, async () => {
  const out = await k3.imageCore.pullAnImage(fx.ref);
  assert.equal(out.LayersReused, 2);
  assert.equal(out.LayersPulled, 0);
});

test('listImages shows pulled images, docker-style', { skip }, async () => {
  await k3.imageCore.pullAnImage(`${reg.host}/store/other`);
  const list = await k3.imageCore.listImages();
  const app = list.find((i) => i.Id === fx.image.configDigest);
  assert.ok(app);
  assert.deepEqual(app.RepoTags, [fx.ref]);
  assert.equal(app.Layers, 2);
  assert.equal(app.Architecture, 'amd64');
  assert.ok(list.find((i) => i.RepoTags.includes(`${reg.host}/store/other:latest`)));
});

test('pull failures are typed: unknown image, bad name, closed port', { skip }, async () => {
  const missing = await failure(k3.imageCore.pullAnImage(`${reg.host}/store/nope`, 'v1'));
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundInRegistry, missing.name);
  assert.equal(missing.details.imageName, `${reg.host}/store/nope`);
  const bad = await failure(k3.imageCore.pullAnImage('Bad Name', 'v1'));
  assert.ok(bad instanceof K3Core.errors.InvalidPullParameters, bad.name);
  assert.equal(bad.statusCode, 422);
  const refused = await failure(k3.imageCore.pullAnImage('127.0.0.1:1/x/y', 'v1'));
  assert.ok(refused instanceof K3Core.errors.RegistryConnectionFailure, refused.name);
});

test('a layer whose content does not match its digest is refused and leaves nothing', { skip }, async () => {
  const img = images.makeImage({ layers: [[{ path: 'f', content: 'genuine' }]] });
  const forged = images.makeLayer([{ path: 'f', content: 'forged!' }]);
  // The manifest names the genuine layer, the config its diff ID; the blob
  // uploaded under the genuine digest is impossible, so serve a config whose
  // diff ID lies instead: the layer downloads fine and fails after unpacking.
  const config = { ...img.config, rootfs: { type: 'layers', diff_ids: [forged.diffId] } };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = await images.putBlob(reg, 'store/forged', configBytes);
  await images.putBlob(reg, 'store/forged', img.layers[0].blob);
  const manifest = { ...img.manifest, config: { ...img.manifest.config, digest: configDigest, size: configBytes.length } };
  await images.putRawManifest(reg, 'store/forged', 'v1', Buffer.from(JSON.stringify(manifest)), img.mediaType);
  const err = await failure(k3.imageCore.pullAnImage(`${reg.host}/store/forged`, 'v1'));
  assert.ok(err instanceof K3Core.errors.LayerVerificationFailure, `${err.name}: ${err.details.error}`);
  assert.match(err.details.error, /digest mismatch/);
  assert.equal((await k3.imageCore.listImages()).some((i) => i.Id === configDigest), false);
  assert.deepEqual(fs.readdirSync(path.join(k3.root, 'tmp')), [], 'no staging left behind');
});

test('createContainer: record, bundle and OCI config from the image', { skip }, async () => {
  const c = await k3.containerCore.createContainer(fx.ref, { name: 'web-1', env: ['MODE=prod', 'EXTRA=1'], labels: { tier: 'front' } });
  assert.match(c.Id, /^[0-9a-f]{64}$/);
  assert.equal(c.Name, 'web-1');
  assert.equal(c.State, 'created');
  assert.equal(c.ImageID, fx.image.configDigest);
  assert.equal(c.ImageDigest, fx.image.manifestDigest);
  assert.deepEqual(c.Command, ['/bin/tool']);
  const details = await k3.containerCore.inspectContainer('web-1');
  const spec = JSON.parse(fs.readFileSync(path.join(details.BundleDir, 'config.json'), 'utf8'));
  assert.deepEqual(spec.process.args, ['/bin/tool']);
  assert.deepEqual(spec.process.env, ['PATH=/bin', 'MODE=prod', 'EXTRA=1']);
  assert.equal(spec.root.path, 'rootfs');
  assert.equal(spec.annotations.tier, 'front');
  assert.ok(fs.statSync(path.join(details.BundleDir, 'diff')).isDirectory());
  assert.equal(path.basename(details.BundleDir), c.Id, 'the bundle is named by the hash ID');
});

test('names are unique, generated when absent, and validated', { skip }, async () => {
  const taken = await failure(k3.containerCore.createContainer(fx.ref, { name: 'web-1' }));
  assert.ok(taken instanceof K3Core.errors.ContainerNameInUse, taken.name);
  const generated = await k3.containerCore.createContainer(fx.ref);
  assert.match(generated.Name, /^[a-z]+_[a-z]+_\d+$/);
  await k3.containerCore.removeContainer(generated.Id);
  const invalid = await failure(k3.containerCore.createContainer(fx.ref, { name: 'bad name!' }));
  assert.ok(invalid instanceof K3Core.errors.InvalidCreateContainerParameters);
  const noImage = await failure(k3.containerCore.createContainer('no/such:image'));
  assert.ok(noImage instanceof K3Core.errors.ImageNotFoundLocally, noImage.name);
});

test('containers resolve by full ID, unique prefix and partial name; ambiguity is 422', { skip }, async () => {
  const w2 = await k3.containerCore.createContainer(fx.ref, { name: 'web-2' });
  const byId = await k3.containerCore.inspectContainer(w2.Id);
  const byPrefix = await k3.containerCore.inspectContainer(w2.Id.slice(0, 10));
  const byName = await k3.containerCore.inspectContainer('web-2');
  assert.equal(byId.Id, w2.Id);
  assert.equal(byPrefix.Id, w2.Id);
  assert.equal(byName.Id, w2.Id);
  const ambiguous = await failure(k3.containerCore.inspectContainer('web'));
  assert.ok(ambiguous instanceof K3Core.errors.InvalidInspectContainerParameters, ambiguous.name);
  assert.match(ambiguous.details.error, /matches 2 containers: web-[12] .*web-[12]/);
  const missing = await failure(k3.containerCore.inspectContainer('nothing-like-this'));
  assert.ok(missing instanceof K3Core.errors.ContainerNotFound);
  const list = await k3.containerCore.listContainers({ name: 'web' });
  assert.deepEqual(list.map((c) => c.Name).sort(), ['web-1', 'web-2']);
  assert.deepEqual(await k3.containerCore.listContainers({ state: 'running' }), []);
  assert.equal((await k3.containerCore.listContainers({ state: 'created' })).length, 2);
  await k3.containerCore.removeContainer('web-2');
  assert.equal(fs.existsSync(byId.BundleDir), false);
});

test('export: the image layers merged, whiteouts and opaque dirs applied, hardlinks kept', { skip }, async () => {
  const file = path.join(tmp, 'web-1.tar');
  const message = await k3.containerCore.exportContainer('web-1', file);
  assert.equal(message, `web-1 has exported successfully to ${file}`);
  const entries = tarList(file);
  const names = entries.map((e) => e.name.split(' ')[0]);
  assert.equal(names.includes('etc/gone'), false, 'a deleted file is absent');
  assert.equal(names.includes('var/cache/old1'), false, 'an opaque directory hides the lower one');
  assert.ok(names.includes('var/cache/new'));
  assert.ok(!names.some((n) => n.includes('.wh.')), 'whiteouts are never emitted');
  assert.ok(!names.includes('./') && !names.some((n) => n.startsWith('./') || n.startsWith('/')), 'no root entry, no ./ prefix');
  assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : 1)).sort(lexicalWalkOrder), 'lexical walk order');
  const hardlink = entries.find((e) => e.name.startsWith('data/second-name') || e.name.startsWith('data/original link to'));
  assert.ok(entries.some((e) => / link to /.test(e.name)), `a hardlink entry: ${JSON.stringify(hardlink)}`);
  for (const e of entries) {
    assert.equal(e.uid, 0);
    assert.equal(e.gid, 0);
  }
  const dir = extract(file);
  assert.equal(fs.readFileSync(path.join(dir, 'etc/hostname'), 'utf8'), 'top');
  assert.equal(sha(fs.readFileSync(path.join(dir, 'big.bin'))), sha(fx.big));
  assert.equal(fs.readFileSync(path.join(dir, 'empty')).length, 0);
  assert.equal(fs.readFileSync(path.join(dir, fx.longName), 'utf8'), 'long name');
  assert.equal(fs.readlinkSync(path.join(dir, 'link-to-tool')), 'bin/tool');
  assert.equal(fs.statSync(path.join(dir, 'bin/tool')).mode & 0o777, 0o755);
  const a = fs.statSync(path.join(dir, 'data/original'));
  const b = fs.statSync(path.join(dir, 'data/second-name'));
  assert.equal(a.ino, b.ino, 'the hardlink extracts as a hardlink');
  assert.ok(fs.statSync(path.join(dir, 'pipe')).isFIFO());
  const xattrs = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', file], { encoding: 'utf8' });
  assert.match(xattrs, /x:\s+\d+ user\.k3/, 'the xattr is in the export');
});

// filepath.Walk order: depth first, names sorted bytewise within a directory.
function lexicalWalkOrder(a, b) {
  const pa = a.replace(/\/$/, '').split('/');
  const pb = b.replace(/\/$/, '').split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

test('changes made with copyToContainer and removeFromContainer are exported', { skip }, async () => {
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'conf.d'), { recursive: true });
  fs.writeFileSync(path.join(src, 'app.conf'), 'port=80\n');
  fs.writeFileSync(path.join(src, 'conf.d', 'extra.conf'), 'x=1\n');
  fs.writeFileSync(path.join(tmp, 'hostname'), 'changed');
  assert.deepEqual(await k3.containerCore.copyToContainer('web-1', path.join(src, 'app.conf'), '/etc/'),
    { Id: (await k3.containerCore.inspectContainer('web-1')).Id, Path: '/etc/app.conf' });
  await k3.containerCore.copyToContainer('web-1', path.join(tmp, 'hostname'), '/etc/hostname');
  await k3.containerCore.copyToContainer('web-1', path.join(src, 'conf.d'), '/etc');
  await k3.containerCore.removeFromContainer('web-1', '/bin/tool');
  // Replace a directory: delete it, then copy a new one in its place.
  await k3.containerCore.removeFromContainer('web-1', '/var/cache');
  fs.mkdirSync(path.join(tmp, 'cache'));
  fs.writeFileSync(path.join(tmp, 'cache', 'fresh'), 'fresh');
  await k3.containerCore.copyToContainer('web-1', path.join(tmp, 'cache'), '/var/cache');

  const file = path.join(tmp, 'changed.tar');
  await k3.containerCore.exportContainer('web-1', file);
  const dir = extract(file);
  assert.equal(fs.readFileSync(path.join(dir, 'etc/app.conf'), 'utf8'), 'port=80\n');
  assert.equal(fs.readFileSync(path.join(dir, 'etc/hostname'), 'utf8'), 'changed');
  assert.equal(fs.readFileSync(path.join(dir, 'etc/conf.d/extra.conf'), 'utf8'), 'x=1\n');
  assert.equal(fs.existsSync(path.join(dir, 'bin/tool')), false);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'var/cache')), ['fresh'], 'the replaced directory shows only its new content');
  assert.equal(fs.statSync(path.join(dir, 'etc/app.conf')).uid, 0);

  const errs = [
    [() => k3.containerCore.copyToContainer('web-1', path.join(tmp, 'no-such-file'), '/etc'), K3Core.errors.CopySourceNotFound],
    [() => k3.containerCore.copyToContainer('web-1', path.join(src, 'app.conf'), '/no/such/dir/x'), K3Core.errors.CopyDestinationNotFound],
    [() => k3.containerCore.removeFromContainer('web-1', '/etc/never-there'), K3Core.errors.PathNotFoundInContainer],
  ];
  for (const [call, Cls] of errs) {
    const err = await failure(call());
    assert.ok(err instanceof Cls, `${err.name}: ${err.details && err.details.error}`);
  }
});

test('.tar.gz, .tgz and .tar.zst exports hold the same entries as .tar', { skip }, async () => {
  const plain = path.join(tmp, 'c.tar');
  await k3.containerCore.exportContainer('web-1', plain);
  const want = tarList(plain);
  for (const ending of ['.tar.gz', '.tgz']) {
    const file = path.join(tmp, `c${ending}`);
    await k3.containerCore.exportContainer('web-1', file);
    assert.equal(fs.readFileSync(file).subarray(0, 2).toString('hex'), '1f8b');
    assert.deepEqual(zlib.gunzipSync(fs.readFileSync(file)), fs.readFileSync(plain), `${ending} inflates to the same tar`);
  }
  const zst = path.join(tmp, 'c.tar.zst');
  await k3.containerCore.exportContainer('web-1', zst);
  assert.equal(fs.readFileSync(zst).subarray(0, 4).toString('hex'), '28b52ffd');
  let zstdAvailable = true;
  try { execFileSync('zstd', ['--version']); } catch { zstdAvailable = false; }
  if (zstdAvailable) assert.deepEqual(tarList(zst, ['--zstd']), want);
  const other = path.join(tmp, 'c.backup');
  await k3.containerCore.exportContainer('web-1', other);
  assert.deepEqual(fs.readFileSync(other), fs.readFileSync(plain), 'any other ending is a plain tar');
});

test('the same container exports to the same bytes', { skip }, async () => {
  const a = path.join(tmp, 'same-a.tar');
  const b = path.join(tmp, 'same-b.tar');
  await k3.containerCore.exportContainer('web-1', a);
  await k3.containerCore.exportContainer('web-1', b);
  assert.equal(sha(fs.readFileSync(a)), sha(fs.readFileSync(b)));
});

test('export replaces an existing file atomically and reports progress', { skip }, async () => {
  const file = path.join(tmp, 'replace.tar');
  fs.writeFileSync(file, 'old content');
  const events = [];
  await k3.containerCore.exportContainer('web-1', file, { onProgress: (e) => events.push(e) });
  assert.ok(tarList(file).length > 10);
  assert.equal(events[events.length - 1].phase, 'done');
  assert.ok(events[events.length - 1].total > fx.big.length);
  assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.includes('k3tmp')), [], 'no temporary file left');
});

test('a durable export is the same tar, synced before it is named', { skip }, async () => {
  const plain = path.join(tmp, 'plain.tar');
  const durable = path.join(tmp, 'durable.tar');
  await k3.containerCore.exportContainer('web-1', plain);
  await k3.containerCore.exportContainer('web-1', durable, { durable: true });
  assert.deepEqual(fs.readFileSync(durable), fs.readFileSync(plain));
  let strace = true;
  try { execFileSync('strace', ['-V']); } catch { strace = false; }
  if (strace) {
    // The real thing: the process fsyncs the file only when asked to.
    const script = (opts) => `const K3Core = require(${JSON.stringify(path.resolve(__dirname, '..'))});
      new K3Core({ root: ${JSON.stringify(k3.root)} }).containerCore.exportContainer('web-1', ${JSON.stringify(path.join(tmp, 'traced.tar'))}, ${opts});`;
    const count = (opts) => {
      const r = spawnSync('strace', ['-f', '-e', 'trace=fsync', process.execPath, '-e', script(opts)], { encoding: 'utf8' });
      return (r.stderr.match(/fsync\(/g) || []).length;
    };
    const withSync = count('{ durable: true }');
    const withoutSync = count('{}');
    assert.ok(withSync >= withoutSync + 2, `fsync calls: durable ${withSync}, plain ${withoutSync} (file and directory)`);
  }
  const bad = await failure(k3.containerCore.exportContainer('web-1', plain, { durable: 'yes' }));
  assert.ok(bad instanceof K3Core.errors.InvalidExportContainerParameters);
});

test('export honours an AbortSignal and leaves nothing', { skip }, async () => {
  const file = path.join(tmp, 'aborted.tar');
  const err = await failure(k3.containerCore.exportContainer('web-1', file, { signal: AbortSignal.abort() }));
  assert.ok(err instanceof K3Core.errors.AbortError);
  assert.equal(fs.existsSync(file), false);
});

test('removeImage refuses an image in use, unless forced; frees its layers when unused', { skip }, async () => {
  const inUse = await failure(k3.imageCore.removeImage(fx.ref));
  assert.ok(inUse instanceof K3Core.errors.ImageInUse, inUse.name);
  assert.equal(inUse.statusCode, 409);
  const otherRef = `${reg.host}/store/other:latest`;
  const removed = await k3.imageCore.removeImage(otherRef);
  // As docker rmi: the repository's last tag takes its digest reference along.
  assert.deepEqual(removed.Untagged, [otherRef, `${reg.host}/store/other@${fx.other.manifestDigest}`]);
  assert.ok(removed.Deleted.includes(fx.other.configDigest));
  for (const l of fx.other.layers) {
    assert.equal(fs.existsSync(path.join(k3.root, 'blobs', 'sha256', l.digest.slice(7))), false);
  }
  const missing = await failure(k3.imageCore.removeImage(otherRef));
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundLocally);
});

test('several processes share one store safely', { skip }, async () => {
  const root = path.join(tmp, 'shared-store');
  const snippet = (i) => `
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    await k3.imageCore.pullAnImage(${JSON.stringify(fx.ref)});
    const made = [];
    for (let j = 0; j < 5; j++) made.push((await k3.containerCore.createContainer(${JSON.stringify(fx.ref)}, { name: 'p${i}-' + j })).Name);
    done(made);`;
  const results = await Promise.all([0, 1, 2].map((i) => runInChild(snippet(i))));
  for (const r of results) assert.equal(r.length, 5, JSON.stringify(r));
  const shared = new K3Core({ root });
  assert.equal((await shared.containerCore.listContainers()).length, 15);
  assert.equal((await shared.imageCore.listImages()).length, 1);
});

test('the default store is $K3_ROOT, else ~/.local/share/k3-core', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-home-'));
  try {
    const prev = { HOME: process.env.HOME, K3_ROOT: process.env.K3_ROOT, XDG_DATA_HOME: process.env.XDG_DATA_HOME };
    process.env.HOME = home;
    delete process.env.K3_ROOT;
    delete process.env.XDG_DATA_HOME;
    assert.equal(new K3Core().root, path.join(home, '.local', 'share', 'k3-core'));
    process.env.K3_ROOT = path.join(home, 'elsewhere');
    assert.equal(new K3Core().root, path.join(home, 'elsewhere'));
    assert.equal(new K3Core({ root: path.join(home, 'given') }).root, path.join(home, 'given'));
    Object.assign(process.env, prev);
    for (const [k, v] of Object.entries(prev)) if (v === undefined) delete process.env[k];
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});
