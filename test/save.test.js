'use strict';
// saveImage: `docker save` byte for byte, checked against a real Docker
// daemon; OCI archives; the archives read by real consumers (docker load,
// podman load, skopeo, GNU tar, our own loadImage); reproducible under any
// TZ and umask; every error class provoked by its real fault.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const images = require('./helpers/images');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const { startDocker, dockerUnavailable } = require('./helpers/docker');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping saveImage tests: ${skip}`);
const dockerSkip = skip || need(dockerUnavailable());
if (dockerSkip && !skip) console.log(`# skipping the docker save byte-identity tests: ${dockerSkip}`);
const rootSkip = need(typeof process.getuid === 'function' && process.getuid() === 0 ? false : 'not running as root (mounts need it)');
if (rootSkip) console.log(`# skipping mount-based saveImage tests: ${rootSkip}`);

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

// Rebuilds an image around a config object changed by `edit`, as a build
// tool would have written it.
function withConfig(image, edit) {
  const config = JSON.parse(JSON.stringify(image.config));
  edit(config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = images.sha256(configBytes);
  const manifest = { ...image.manifest, config: { ...image.manifest.config, digest: configDigest, size: configBytes.length } };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { ...image, config, configBytes, configDigest, manifest, manifestBytes, manifestDigest: images.sha256(manifestBytes) };
}

const base = images.makeLayer([{ path: 'etc/', type: 'dir' }, { path: 'etc/os-release', content: 'ID=k3test\n' }, { path: 'bin/', type: 'dir' }, { path: 'bin/tool', content: 'x'.repeat(70000), mode: 0o755 }]);
const middle = images.makeLayer([{ path: 'srv/', type: 'dir' }, { path: 'srv/data.bin', content: crypto.randomBytes(200000) }]);
const top = images.makeLayer([{ path: 'srv/.wh.data.bin', content: '' }, { path: 'app/', type: 'dir' }, { path: 'app/run.sh', content: '#!/bin/sh\necho <&>\n', mode: 0o755 }]);

// Configs that exercise Docker's re-encoding of the top layer's json: every
// container config field, a string Cmd, HTML characters, a zone offset and
// nanoseconds, fields Docker does not know, the legacy top-level fields.
const rich = withConfig(images.makeImage({ layers: [base, middle, top], mediaType: 'docker', created: '2023-05-06T07:08:09.500Z' }), (c) => {
  c.created = '2023-05-06T09:08:09.123456789+02:00';
  c.author = 'K3 <k3@example.com>';
  c.docker_version = '20.10.24';
  c.container = 'f00dfeed';
  c.comment = 'built & tested';
  c.container_config = { Hostname: 'builder', Cmd: ['/bin/sh', '-c', '#(nop) CMD ["run"]'], Image: 'sha256:abc', Labels: { stage: 'build' } };
  c.config = {
    User: 'app:app', ExposedPorts: { '8080/tcp': {}, '53/udp': {} }, Env: ['PATH=/usr/bin:/bin', 'MODE=a<b&c>d'],
    Cmd: ['run', '--fast'], Entrypoint: ['/app/run.sh'], Healthcheck: { Test: ['CMD', 'true'], Interval: 30000000000, Retries: 3 },
    Volumes: { '/data': {} }, WorkingDir: '/app', OnBuild: ['RUN true'], Labels: { 'org.k3.x': '<a&b>', z: '1', a: '2' },
    StopSignal: 'SIGQUIT', StopTimeout: 7, Shell: ['/bin/bash', '-c'], ArgsEscaped: true, Unknown: { nested: true },
  };
  c.variant = 'v2';
  c['os.version'] = '1.0';
});
const plain = images.makeImage({ layers: [base, middle], mediaType: 'oci' });
const sharesBase = images.makeImage({ layers: [base, top], mediaType: 'docker', created: '2022-01-01T00:00:00Z' });
const noCreated = withConfig(images.makeImage({ layers: [base], mediaType: 'docker' }), (c) => {
  delete c.created;
  delete c.history;
});
const big = images.makeImage({ layers: [[{ path: 'a.bin', content: crypto.randomBytes(6 << 20) }], [{ path: 'b.bin', content: crypto.randomBytes(6 << 20) }]] });
// The same layer twice: Docker writes the second as a symlink to the first.
const repeated = images.makeImage({ layers: [base, middle, base], mediaType: 'docker' });

let reg;
let authReg;
let dockerd;
let tmp;
let k3;
const refs = {};

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-save-'));
  reg = await startRegistry();
  authReg = await startRegistry({ auth: { username: 'saver', password: 's3cret' } });
  const host = reg.url.replace('http://', '');
  for (const [label, image] of Object.entries({ rich, plain, sharesBase, noCreated, repeated })) {
    await images.pushImage(reg, `save/${label.toLowerCase()}`, '1.0', image);
    refs[label] = `${host}/save/${label.toLowerCase()}:1.0`;
  }
  await images.pushImage(authReg, 'save/private', 'v1', plain);
  await images.pushImage(reg, 'save/big', '1', big);
  refs.big = `${host}/save/big:1`;
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  for (const ref of Object.values(refs).filter((r) => r !== refs.big)) {
    const [name, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
    await k3.imageCore.pullAnImage(name, tag, { tlsVerify: false }).catch((e) => { throw new Error(`pull ${ref}: ${e.createFullMessage()}`); });
  }
  if (!dockerSkip) {
    dockerd = await startDocker();
    for (const ref of Object.values(refs).filter((r) => r !== refs.big)) await dockerd.docker('pull', ref);
  }
});

after(async () => {
  if (dockerd) await dockerd.stop();
  if (reg) await reg.stop();
  if (authReg) await authReg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const out = (name) => path.join(tmp, name);
const fromRegistry = { source: 'registry', tlsVerify: false };

async function dockerSave(file, ...names) {
  await dockerd.docker('save', '-o', file, ...names);
  return fs.readFileSync(file);
}

// The members of a tar: name -> {header fields, content digest}.
function members(buf) {
  const list = [];
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a, b) => h.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 136).trim() || '0', 8);
    list.push({
      name: field(0, 100), mode: field(100, 108), uid: field(108, 116), gid: field(116, 124), size,
      mtime: parseInt(field(136, 148), 8), type: field(156, 157), linkname: field(157, 257), magic: h.subarray(257, 265).toString('latin1'),
      uname: field(265, 297), gname: field(297, 329), sha: sha(buf.subarray(off + 512, off + 512 + size)),
      data: buf.subarray(off + 512, off + 512 + size),
    });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return list;
}

const member = (buf, name) => members(buf).find((m) => m.name === name);

for (const label of ['rich', 'plain', 'noCreated', 'sharesBase']) {
  test(`docker-archive of ${label} is byte-identical to docker save, from the registry and from the store`, { skip: dockerSkip }, async () => {
    const theirs = await dockerSave(out(`docker-${label}.tar`), refs[label]);
    const viaRegistry = await k3.imageCore.saveImage(refs[label], out(`ours-reg-${label}.tar`), { ...fromRegistry, dockerVersion: dockerd.version });
    const viaStore = await k3.imageCore.saveImage(refs[label], out(`ours-store-${label}.tar`), { dockerVersion: dockerd.version });
    for (const file of [viaRegistry.Path, viaStore.Path]) {
      const ours = fs.readFileSync(file);
      assert.equal(ours.length, theirs.length, `${file}: size`);
      assert.ok(ours.equals(theirs), `${file} differs from docker save at byte ${ours.findIndex((b, i) => b !== theirs[i])}`);
    }
    assert.deepEqual(viaStore.Images, [{ Id: ({ rich, plain, noCreated, sharesBase })[label].configDigest, RepoTags: [refs[label]] }]);
  });
}

test('a repeated layer is a symlink to its first copy, as in docker save; only Docker\'s clock-time dates differ', { skip: dockerSkip }, async () => {
  const theirs = members(await dockerSave(out('docker-repeated.tar'), refs.repeated));
  await k3.imageCore.saveImage(refs.repeated, out('ours-repeated.tar'), { dockerVersion: dockerd.version });
  const ours = members(fs.readFileSync(out('ours-repeated.tar')));
  assert.deepEqual(ours.map((m) => m.name), theirs.map((m) => m.name));
  const link = ours.find((m) => m.type === '2');
  assert.match(link.linkname, /^\.\.\/[0-9a-f]{64}\/layer\.tar$/);
  const created = Date.parse(repeated.config.created) / 1000;
  for (const [i, m] of ours.entries()) {
    const { mtime, sha: s, data, ...rest } = m;
    const { mtime: theirMtime, sha: theirSha, data: _, ...theirRest } = theirs[i];
    assert.deepEqual(rest, theirRest, m.name);
    assert.equal(s, theirSha, m.name);
    // Docker dates the repeated layer's directory by the clock; we use the image's time.
    if (m.name.startsWith(link.name.split('/')[0])) assert.equal(mtime, created, m.name);
    else assert.equal(mtime, theirMtime, m.name);
  }
});

test('several images in one archive: the same members as docker save (whose order of images is random)', { skip: dockerSkip }, async () => {
  const theirs = members(await dockerSave(out('docker-multi.tar'), refs.plain, refs.sharesBase));
  await k3.imageCore.saveImage([refs.plain, refs.sharesBase], out('ours-multi.tar'), { dockerVersion: '20.10' });
  const ours = members(fs.readFileSync(out('ours-multi.tar')));
  // A layer both images share is dated by whichever image Docker happened
  // to write first; every other member must match exactly.
  const key = (list) => list.filter((m) => m.name !== 'manifest.json').map(({ data, mtime, ...m }) => JSON.stringify(m)).sort();
  assert.deepEqual(key(ours), key(theirs));
  const dates = new Map(theirs.map((m) => [m.name, m.mtime]));
  const created = [plain, sharesBase].map((i) => Date.parse(i.config.created) / 1000);
  for (const m of ours) {
    if (m.mtime !== dates.get(m.name)) assert.ok(created.includes(m.mtime) && created.includes(dates.get(m.name)), m.name);
  }
  const manifest = (list) => JSON.parse(list.find((m) => m.name === 'manifest.json').data).sort((a, b) => a.Config.localeCompare(b.Config));
  assert.deepEqual(manifest(ours), manifest(theirs));
});

test('header styles: 23 (default) keeps type bits and drops owner names, 24 drops both, 20.10 keeps both', { skip }, async () => {
  const style = {};
  for (const v of ['20.10', '23', '24', undefined]) {
    const file = out(`style-${v}.tar`);
    await k3.imageCore.saveImage(refs.plain, file, v ? { dockerVersion: v } : undefined);
    const list = members(fs.readFileSync(file));
    const dir = list.find((m) => m.type === '5');
    style[v] = { dir: dir.mode, file: list.find((m) => m.type === '0').mode, uname: dir.uname, magic: dir.magic, owner: `${dir.uid}/${dir.gid}` };
  }
  assert.deepEqual(style['20.10'], { dir: '0040755', file: '0100644', uname: 'root', magic: 'ustar\x0000', owner: '0000000/0000000' });
  assert.deepEqual(style['23'], { dir: '0040755', file: '0100644', uname: '', magic: 'ustar\x0000', owner: '0000000/0000000' });
  assert.deepEqual(style['24'], { dir: '0000755', file: '0000644', uname: '', magic: 'ustar\x0000', owner: '0000000/0000000' });
  assert.deepEqual(style[undefined], style['23']);
});

test('saving twice, under different TZ and umask, gives identical bytes', { skip }, async () => {
  const snippet = (file) => `
    const k3 = new K3Core({ root: ${JSON.stringify(path.join(tmp, 'store'))} });
    process.umask(Number(process.env.K3_TEST_UMASK));
    const r = await k3.imageCore.saveImage(${JSON.stringify([refs.rich, refs.repeated])}, ${JSON.stringify(file)});
    done(r.Images.map((i) => i.Id));`;
  const a = await runInChild(snippet(out('tz-a.tar')), { TZ: 'Asia/Tehran', K3_TEST_UMASK: '0o077' });
  const b = await runInChild(snippet(out('tz-b.tar')), { TZ: 'America/Los_Angeles', K3_TEST_UMASK: '0o002' });
  assert.deepEqual(a, [rich.configDigest, repeated.configDigest]);
  assert.deepEqual(a, b);
  assert.ok(fs.readFileSync(out('tz-a.tar')).equals(fs.readFileSync(out('tz-b.tar'))));
});

test('.tar.gz and .tar.zst hold exactly the plain archive', { skip }, async () => {
  const plainFile = out('c.tar');
  await k3.imageCore.saveImage(refs.rich, plainFile);
  await k3.imageCore.saveImage(refs.rich, out('c.tar.gz'));
  assert.ok(zlib.gunzipSync(fs.readFileSync(out('c.tar.gz'))).equals(fs.readFileSync(plainFile)));
  await k3.imageCore.saveImage(refs.rich, out('c-durable.tar'), { durable: true });
  assert.ok(fs.readFileSync(out('c-durable.tar')).equals(fs.readFileSync(plainFile)), 'durable gives the same bytes');
  if (whichSync('zstd')) {
    await k3.imageCore.saveImage(refs.rich, out('c.tar.zst'));
    assert.ok(execFileSync('zstd', ['-dc', out('c.tar.zst')], { maxBuffer: 64 << 20 }).equals(fs.readFileSync(plainFile)));
  } else {
    console.log('# zstd not installed: .tar.zst content not checked');
  }
});

test('progress reports fetched and written bytes', { skip }, async () => {
  const events = [];
  await k3.imageCore.saveImage(refs.rich, out('progress.tar'), { ...fromRegistry, onProgress: (e) => events.push(e) });
  const last = (phase) => events.filter((e) => e.phase === phase).at(-1);
  const compressed = rich.layers.reduce((n, l) => n + l.size, 0);
  assert.deepEqual(last('layers'), { phase: 'layers', current: compressed, total: compressed });
  const uncompressed = rich.layers.reduce((n, l) => n + l.tar.length, 0);
  assert.deepEqual(last('write'), { phase: 'write', current: uncompressed, total: uncompressed });
});

// --- consumers -------------------------------------------------------------

function diffIDsOf(image) {
  return image.config.rootfs.diff_ids;
}

test('docker load reads our archives (legacy and Docker 25 layouts): same image ID and layers', { skip: dockerSkip }, async () => {
  for (const version of ['23', '25']) {
    const file = out(`for-docker-${version}.tar`);
    await k3.imageCore.saveImage(refs.rich, file, { dockerVersion: version });
    await dockerd.docker('rmi', refs.rich);
    const loaded = await dockerd.docker('load', '-i', file);
    assert.match(loaded, new RegExp(`Loaded image: ${refs.rich.replace(/[.]/g, '\\.')}`));
    const inspected = JSON.parse(await dockerd.docker('image', 'inspect', refs.rich))[0];
    assert.equal(inspected.Id, rich.configDigest, version);
    assert.deepEqual(inspected.RootFS.Layers, diffIDsOf(rich), version);
  }
});

test('podman load reads our docker-archive and oci-archive: same image ID and layers', { skip: skip || need(!whichSync('podman') && 'podman is not installed') || rootSkip }, async () => {
  const storage = path.join(tmp, 'podman');
  const podman = (...args) => execFileSync('podman', ['--root', path.join(storage, 'root'), '--runroot', path.join(storage, 'run'), '--storage-driver', 'vfs', ...args], { encoding: 'utf8' });
  for (const format of ['docker-archive', 'oci-archive']) {
    const file = out(`for-podman.${format}.tar`);
    await k3.imageCore.saveImage(refs.sharesBase, file, { format });
    podman('load', '-i', file);
    const [inspected] = JSON.parse(podman('image', 'inspect', refs.sharesBase));
    assert.equal(`sha256:${inspected.Id}`, sharesBase.configDigest, format);
    assert.deepEqual(inspected.RootFS.Layers, diffIDsOf(sharesBase), format);
    podman('rmi', '-a', '-f');
  }
});

test('skopeo reads our archives: same config and diff IDs; an OCI manifest keeps its digest, a Docker one becomes OCI', { skip: skip || need(!whichSync('skopeo') && 'skopeo is not installed') }, async () => {
  await k3.imageCore.saveImage(refs.rich, out('for-skopeo.tar'));
  await k3.imageCore.saveImage([refs.rich, refs.plain], out('for-skopeo-oci.tar'), { format: 'oci-archive' });
  for (const [src, dir] of [[`docker-archive:${out('for-skopeo.tar')}`, 'skopeo-a'], [`oci-archive:${out('for-skopeo-oci.tar')}:1.0`, 'skopeo-b']]) {
    execFileSync('skopeo', ['copy', '-q', src, `oci:${out(dir)}:x`]);
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${out(dir)}:x`], { encoding: 'utf8' }));
    assert.deepEqual(config.rootfs.diff_ids, diffIDsOf(rich), src);
    assert.equal(config.created, rich.config.created, src);
  }
  // Two images tagged 1.0: skopeo finds each by its full name.
  const index = JSON.parse(member(fs.readFileSync(out('for-skopeo-oci.tar')), 'index.json').data);
  assert.deepEqual(index.manifests.map((m) => m.annotations['io.containerd.image.name']), [refs.rich, refs.plain]);
  // Docker 25's layout is an OCI archive too.
  await k3.imageCore.saveImage(refs.plain, out('for-skopeo-25.tar'), { dockerVersion: '25' });
  const config25 = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${out('for-skopeo-25.tar')}:1.0`], { encoding: 'utf8' }));
  assert.deepEqual(config25.rootfs.diff_ids, diffIDsOf(plain));
  const plainRaw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${out('for-skopeo-oci.tar')}:1.0`]);
  const manifests = index.manifests.map((m) => m.digest);
  assert.ok(manifests.includes(plain.manifestDigest), 'the OCI manifest keeps its digest');
  assert.ok(manifests.includes(images.sha256(plainRaw)));
  const converted = JSON.parse(member(fs.readFileSync(out('for-skopeo-oci.tar')), `blobs/sha256/${index.manifests[0].digest.slice(7)}`).data);
  assert.equal(converted.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(converted.config.digest, rich.configDigest);
  assert.deepEqual(converted.layers.map((l) => [l.mediaType, l.digest]), rich.layers.map((l) => ['application/vnd.oci.image.layer.v1.tar+gzip', l.digest]));
});

test('GNU tar lists and extracts our archive; each layer.tar hashes to its diff ID', { skip: skip || need(!whichSync('tar') && 'tar is not installed') }, async () => {
  const file = out('for-tar.tar');
  await k3.imageCore.saveImage(refs.rich, file);
  const dir = out('extracted');
  fs.mkdirSync(dir);
  execFileSync('tar', ['-xf', file, '-C', dir]);
  const [entry] = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json')));
  assert.equal(entry.Config, `${rich.configDigest.slice(7)}.json`);
  assert.deepEqual(entry.Layers.map((l) => images.sha256(fs.readFileSync(path.join(dir, l)))), diffIDsOf(rich));
  const listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  assert.match(listing, /-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00 manifest\.json/);
  assert.match(listing, /drwxr-xr-x 0\/0 +0 2023-05-06 07:08 [0-9a-f]{64}\//);
});

test('our own loadImage reads every format back into a fresh store', { skip }, async () => {
  for (const [format, dockerVersion] of [['docker-archive', '23'], ['docker-archive', '25'], ['oci-archive', undefined]]) {
    const file = out(`roundtrip-${format}-${dockerVersion}.tar.gz`);
    await k3.imageCore.saveImage([refs.rich, refs.plain], file, { format, dockerVersion });
    const fresh = new K3Core({ root: path.join(tmp, `store-rt-${format}-${dockerVersion}`) });
    const { Loaded } = await fresh.imageCore.loadImage(file);
    assert.deepEqual(Loaded.map((l) => l.Id), [rich.configDigest, plain.configDigest], `${format} ${dockerVersion}`);
    assert.deepEqual(Loaded[0].RepoTags, [refs.rich]);
  }
});

test('a bare repository name saves every tag of it; an ID saves no names', { skip }, async () => {
  await k3.imageCore.tagImage(refs.plain, refs.plain.replace(':1.0', ':2.0'));
  const bare = await k3.imageCore.saveImage(refs.plain.replace(':1.0', ''), out('bare.tar'));
  assert.deepEqual(bare.Images, [{ Id: plain.configDigest, RepoTags: [refs.plain, refs.plain.replace(':1.0', ':2.0')] }]);
  const byId = await k3.imageCore.saveImage(plain.configDigest.slice(7, 19), out('by-id.tar'));
  assert.deepEqual(byId.Images, [{ Id: plain.configDigest, RepoTags: [] }]);
  const list = members(fs.readFileSync(out('by-id.tar')));
  assert.equal(list.find((m) => m.name === 'repositories'), undefined);
  assert.deepEqual(JSON.parse(member(fs.readFileSync(out('by-id.tar')), 'manifest.json').data)[0].RepoTags, null);
});

// --- what users compare with docker: saving by ID, Parent ------------------

test('saving by full ID (sha256:<id>, bare hex, sha256:<prefix>) names nothing: byte-identical to docker save by ID', { skip: dockerSkip }, async () => {
  const id = rich.configDigest;
  for (const [label, ref] of [['full', id], ['hex', id.slice(7)], ['prefix', `sha256:${id.slice(7, 19)}`]]) {
    const theirs = await dockerSave(out(`docker-by-${label}.tar`), ref);
    const saved = await k3.imageCore.saveImage(ref, out(`ours-by-${label}.tar`), { dockerVersion: dockerd.version });
    assert.deepEqual(saved.Images, [{ Id: id, RepoTags: [] }], label);
    const ours = fs.readFileSync(saved.Path);
    assert.equal(member(ours, 'manifest.json').data.toString(), member(theirs, 'manifest.json').data.toString(), label);
    assert.equal(member(ours, 'repositories'), undefined, label);
    assert.ok(ours.equals(theirs), `${label}: differs from docker save at byte ${ours.findIndex((b, i) => b !== theirs[i])}`);
  }
});

// go-containerregistry's own test archives, real `docker save` outputs, read
// from the Go module cache (the version go.mod requires), never copied here.
function ggcrTestdata(file) {
  const version = fs.readFileSync(path.join(__dirname, '..', 'go.mod'), 'utf8').match(/github\.com\/google\/go-containerregistry (v\S+)/)[1];
  const modcache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).trim();
  const dir = path.join(modcache, `github.com/google/go-containerregistry@${version}`, 'pkg/v1/tarball/testdata');
  if (!fs.existsSync(dir)) execFileSync('go', ['mod', 'download', `github.com/google/go-containerregistry@${version}`], { cwd: path.join(__dirname, '..') });
  return path.join(dir, file);
}

test('an archive whose manifest.json names a Parent loads and saves back with the same manifest.json, as docker load and save do', { skip }, async () => {
  const original = fs.readFileSync(ggcrTestdata('test_link.tar'));
  const store = new K3Core({ root: out('link-store') });
  await store.imageCore.loadImage(ggcrTestdata('test_link.tar'));
  const names = ['bazel/v1/tarball:test_image_1', 'bazel/v1/tarball:test_image_3'];
  const both = fs.readFileSync((await store.imageCore.saveImage(names, out('link-both.tar'), { dockerVersion: '20.10' })).Path);
  assert.equal(member(both, 'manifest.json').data.toString(), member(original, 'manifest.json').data.toString());
  // Saved without its parent, an image names none, as docker save writes it.
  const alone = fs.readFileSync((await store.imageCore.saveImage(names[1], out('link-alone.tar'), { dockerVersion: '20.10' })).Path);
  assert.doesNotMatch(member(alone, 'manifest.json').data.toString(), /Parent/);
  if (!dockerSkip) {
    await dockerd.docker('load', '-i', ggcrTestdata('test_link.tar'));
    const theirs = await dockerSave(out('docker-link-both.tar'), ...names);
    const byConfig = (buf) => JSON.parse(member(buf, 'manifest.json').data).sort((a, b) => a.Config.localeCompare(b.Config));
    assert.deepEqual(byConfig(both), byConfig(theirs));
  }
});

// Header fields Docker 25 fills from its clock when it saves: the mtime
// (bytes 136-147) and so the checksum (148-155) of blobs/sha256/ and
// index.json. We write 1970 there.
const DOCKER25_CLOCK_MEMBERS = ['blobs/sha256/', 'index.json'];

test('a real Docker 25 archive (hello-world-v25.tar, saved by ID) loads and saves back with dockerVersion 25 byte for byte but Docker\'s clock fields', { skip }, async () => {
  const theirs = fs.readFileSync(ggcrTestdata('hello-world-v25.tar'));
  const store = new K3Core({ root: out('hello-v25-store') });
  const [loaded] = (await store.imageCore.loadImage(ggcrTestdata('hello-world-v25.tar'))).Loaded;
  assert.deepEqual(loaded.RepoTags, []);
  const ours = fs.readFileSync((await store.imageCore.saveImage(loaded.Id, out('hello-v25.tar'), { dockerVersion: '25' })).Path);
  const offsets = (buf) => {
    const at = new Map();
    for (let off = 0; off + 512 <= buf.length && buf[off] !== 0;) {
      const h = buf.subarray(off, off + 512);
      at.set(h.toString('latin1', 0, 100).replace(/\0.*$/s, ''), off);
      off += 512 + Math.ceil(parseInt(h.toString('latin1', 124, 136), 8) / 512) * 512;
    }
    return at;
  };
  assert.deepEqual([...offsets(ours).keys()], [...offsets(theirs).keys()]);
  assert.equal(ours.length, theirs.length);
  const masked = Buffer.from(ours);
  for (const name of DOCKER25_CLOCK_MEMBERS) {
    const off = offsets(ours).get(name);
    assert.equal(parseInt(ours.toString('latin1', off + 136, off + 148), 8), 0, `${name}: dated 1970`);
    theirs.copy(masked, off + 136, off + 136, off + 156);
  }
  const at = masked.findIndex((b, i) => b !== theirs[i]);
  assert.equal(at, -1, `differs at byte ${at}, in ${[...offsets(ours)].filter(([, o]) => o <= at).at(-1)}`);
});

test('a committed image\'s parent is the container\'s image: docker save names it, as after docker commit', { skip: dockerSkip }, async () => {
  const committed = 'save/committed:c1';
  await dockerd.docker('create', '--name', 'k3-parent', refs.plain, '/bin/true');
  await dockerd.docker('commit', 'k3-parent', committed);
  await k3.containerCore.createContainer(refs.plain, { name: 'k3-parent' });
  await k3.containerCore.commitContainer('k3-parent', { repository: 'save/committed', tag: 'c1' });
  const entries = async (...names) => {
    const theirs = JSON.parse(member(await dockerSave(out('docker-commit.tar'), ...names), 'manifest.json').data);
    const saved = await k3.imageCore.saveImage(names, out('ours-commit.tar'), { dockerVersion: dockerd.version });
    const ours = JSON.parse(member(fs.readFileSync(saved.Path), 'manifest.json').data);
    const find = (list, tag) => list.find((e) => e.RepoTags[0] === tag);
    return { theirs: find(theirs, committed), ours: find(ours, committed) };
  };
  const both = await entries(committed, refs.plain);
  assert.equal(both.theirs.Parent, plain.configDigest, 'docker commit records the parent');
  assert.equal(both.ours.Parent, plain.configDigest);
  assert.deepEqual(Object.keys(both.ours), Object.keys(both.theirs), 'the same members, in docker\'s order');
  const alone = await entries(committed);
  assert.deepEqual(Object.keys(alone.ours), Object.keys(alone.theirs));
  assert.equal(alone.ours.Parent, undefined);
});

// --- errors ----------------------------------------------------------------

function assertNothingLeft(file) {
  assert.equal(fs.existsSync(file), false, `${file} exists`);
  const leftovers = fs.readdirSync(path.dirname(file)).filter((n) => n.includes('k3tmp') || n.includes('k3-layer'));
  assert.deepEqual(leftovers, []);
}

test('invalid parameters are InvalidSaveImageParameters with the reason', { skip }, async () => {
  const cases = [
    [[refs.plain, 'relative.tar'], /absolute/],
    [[[], out('x.tar')], /at least one image/],
    [[42, out('x.tar')], /image name or an array/],
    [[refs.plain, out('x.tar'), { format: 'zip' }], /docker-archive or oci-archive/],
    [[refs.plain, out('x.tar'), { source: 'daemon' }], /store or registry/],
    [[refs.plain, out('x.tar'), { dockerVersion: 'latest' }], /not a Docker version/],
    [[refs.plain, out('x.tar'), { tlsVerify: false }], /need options.source 'registry'/],
    [[refs.plain, path.join(tmp, 'no-such-dir', 'x.tar')], /does not exist/],
    [['bad name!', out('x.tar'), { source: 'registry' }], /./],
  ];
  for (const [args, reason] of cases) {
    const e = await failure(k3.imageCore.saveImage(...args));
    assert.ok(e instanceof K3Core.errors.InvalidSaveImageParameters, `${JSON.stringify(args)}: ${e.name} ${e.message}`);
    assert.equal(e.statusCode, 422);
    assert.match(e.details.error, reason);
  }
  assertNothingLeft(out('x.tar'));
});

test('missing images: ImageNotFoundLocally from the store, ImageNotFoundInRegistry from a registry', { skip }, async () => {
  const local = await failure(k3.imageCore.saveImage('nothing/here:1', out('nf.tar')));
  assert.ok(local instanceof K3Core.errors.ImageNotFoundLocally, local.name);
  assert.equal(local.statusCode, 404);
  const remote = await failure(k3.imageCore.saveImage(refs.plain.replace(':1.0', ':absent'), out('nf.tar'), fromRegistry));
  assert.ok(remote instanceof K3Core.errors.ImageNotFoundInRegistry, remote.name);
  assertNothingLeft(out('nf.tar'));
});

test('registry credentials: wrong ones are RegistryAuthenticationFailure, right ones save', { skip }, async () => {
  const ref = `${authReg.url.replace('http://', '')}/save/private:v1`;
  const e = await failure(k3.imageCore.saveImage(ref, out('auth.tar'), { ...fromRegistry, credentials: { username: 'saver', password: 'wrong' } }));
  assert.ok(e instanceof K3Core.errors.RegistryAuthenticationFailure, e.name);
  assertNothingLeft(out('auth.tar'));
  const ok = await k3.imageCore.saveImage(ref, out('auth.tar'), { ...fromRegistry, credentials: { username: 'saver', password: 's3cret' } });
  assert.equal(ok.Images[0].Id, plain.configDigest);
});

test('a corrupt layer in the store is LayerVerificationFailure; the file already at filePath is untouched', { skip }, async () => {
  const store = path.join(tmp, 'store-corrupt');
  const k = new K3Core({ root: store });
  const [name, tag] = [refs.middleOnly = refs.plain.slice(0, refs.plain.lastIndexOf(':')), '1.0'];
  await k.imageCore.pullAnImage(name, tag, { tlsVerify: false });
  const blob = path.join(store, 'blobs', 'sha256', middle.digest.slice(7));
  assert.ok(fs.existsSync(blob), blob);
  const gz = zlib.gunzipSync(fs.readFileSync(blob));
  gz[600] ^= 0xff;
  fs.writeFileSync(blob, zlib.gzipSync(gz));
  const file = out('corrupt.tar');
  fs.writeFileSync(file, 'precious');
  const e = await failure(k.imageCore.saveImage(refs.plain, file));
  assert.ok(e instanceof K3Core.errors.LayerVerificationFailure, `${e.name}: ${e.message}`);
  assert.match(e.details.error, /digest mismatch/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
});

test('an aborted save is AbortError and leaves nothing', { skip }, async () => {
  const controller = new AbortController();
  const promise = k3.imageCore.saveImage(refs.rich, out('aborted.tar'), { ...fromRegistry, signal: controller.signal });
  controller.abort();
  const e = await failure(promise);
  assert.ok(e instanceof K3Core.errors.AbortError, e.name);
  // An aborted call settles once its work has ended (README, Cancellation).
  assertNothingLeft(out('aborted.tar'));
});

function mount(dir, args) {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', [...args, dir]);
}

test('a full disk is InsufficientDiskSpaceForSave and leaves nothing', { skip: skip || rootSkip }, async () => {
  const dir = path.join(tmp, 'small');
  mount(dir, ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs']);
  try {
    const e = await failure(k3.imageCore.saveImage(refs.rich, path.join(dir, 'full.tar')));
    assert.ok(e instanceof K3Core.errors.InsufficientDiskSpaceForSave, e.createFullMessage ? e.createFullMessage() : String(e));
    assert.equal(e.statusCode, 507);
    assert.match(e.details.error, /ENOSPC/);
    assertNothingLeft(path.join(dir, 'full.tar'));
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    execFileSync('umount', [dir]);
  }
});

test('a read-only file system is ReadOnlyFileSystem', { skip: skip || rootSkip }, async () => {
  const dir = path.join(tmp, 'ro');
  mount(dir, ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs']);
  try {
    const e = await failure(k3.imageCore.saveImage(refs.plain, path.join(dir, 'ro.tar')));
    assert.ok(e instanceof K3Core.errors.ReadOnlyFileSystem, `${e.name}: ${e.message}`);
  } finally {
    execFileSync('umount', [dir]);
  }
});

test('an unwritable directory is SaveImagePermissionDenied for an unprivileged user', { skip: skip || rootSkip || need(!whichSync('setpriv') && 'setpriv is not installed') }, async () => {
  const dir = path.join(tmp, 'locked');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  const program = `
    const K3Core = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const k3 = new K3Core({ root: '/tmp/k3-save-nobody-' + process.pid });
    k3.imageCore.saveImage(${JSON.stringify(refs.plain)}, ${JSON.stringify(path.join(dir, 'denied.tar'))}, { source: 'registry', tlsVerify: false })
      .then((v) => process.stdout.write(JSON.stringify({ value: v })), (e) => process.stdout.write(JSON.stringify({ name: e.name, statusCode: e.statusCode, error: e.details.error })));`;
  const result = await new Promise((resolve, reject) => {
    execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', program],
      { cwd: '/', env: { ...process.env, HOME: '/nonexistent' }, timeout: 300000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout));
      });
  });
  assert.deepEqual(result, { name: 'SaveImagePermissionDenied', statusCode: 403, error: 'Permission denied (EACCES)' });
  assertNothingLeft(path.join(dir, 'denied.tar'));
});

test('kill -9 in the middle of writing: no file and no staged layer left, an existing file unchanged', { skip }, async () => {
  const dir = path.join(tmp, 'killed');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'big.tar');
  fs.writeFileSync(file, 'previous archive');
  const program = `
    const K3Core = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const k3 = new K3Core({ root: ${JSON.stringify(path.join(tmp, 'store-killed'))} });
    k3.imageCore.saveImage(${JSON.stringify(refs.big)}, ${JSON.stringify(file)}, { source: 'registry', tlsVerify: false, onProgress: (e) => {
      process.stdout.write(JSON.stringify(e) + '\\n');
      if (e.phase === 'write' && e.current > 4 * 1024 * 1024) process.kill(process.pid, 'SIGKILL');
    } }).then(() => process.stdout.write('finished\\n'));`;
  const stdout = await new Promise((resolve) => {
    execFile(process.execPath, ['-e', program], { timeout: 300000 }, (err, out) => resolve(out));
  });
  const events = stdout.trim().split('\n');
  assert.ok(!events.includes('finished'), 'the save was not killed');
  const last = JSON.parse(events.at(-1));
  assert.equal(last.phase, 'write');
  const whole = big.layers.reduce((n, l) => n + l.tar.length, 0);
  assert.ok(last.current > 4 << 20 && last.current < whole, `killed midway: ${JSON.stringify(last)} of ${whole}`);
  assert.deepEqual(fs.readdirSync(dir), ['big.tar']);
  assert.equal(fs.readFileSync(file, 'utf8'), 'previous archive');
});
