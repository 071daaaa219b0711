'use strict';
// loadImage: docker save tarballs (ours and podman's) and OCI archives,
// plain or compressed, into the store; broken and hostile ones refused.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const images = require('./helpers/images');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const { need } = require('./helpers/need');

let tmp;
const one = images.makeImage({ layers: [[{ path: 'one', content: '1' }], [{ path: 'two', content: '2' }]], mediaType: 'docker' });
const other = images.makeImage({ layers: [[{ path: 'other', content: 'o' }]], mediaType: 'docker' });
let archive;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-load-'));
  archive = path.join(tmp, 'two-images.tar');
  images.writeDockerArchive(archive, [{ image: one, repoTags: ['example.com/team/one:1.0', 'one:latest'] }, { image: other, repoTags: ['other:2'] }]);
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fresh = (label) => new K3Core({ root: path.join(tmp, `store-${label}`) });
async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

test('a docker save tarball with two images loads both, under all their names', async () => {
  const k3 = fresh('docker');
  const out = await k3.imageCore.loadImage(archive);
  assert.deepEqual(out.Loaded, [
    { Id: one.configDigest, RepoTags: ['example.com/team/one:1.0', 'docker.io/library/one:latest'] },
    { Id: other.configDigest, RepoTags: ['docker.io/library/other:2'] },
  ]);
  const listed = await k3.imageCore.listImages();
  assert.equal(listed.length, 2);
  await k3.containerCore.createContainer('one', { name: 'from-load' });
  const tarFile = path.join(tmp, 'from-load.tar');
  await k3.containerCore.exportContainer('from-load', tarFile);
  assert.deepEqual(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).trim().split('\n'), ['one', 'two']);
});

test('a Parent manifest.json names that the image was not built on fails the load, as docker load refuses it', async () => {
  // Docker's test: the child's history is the parent's and one step more.
  const unrelated = images.makeImage({ layers: [[{ path: 'u', content: 'u' }]], history: [{ created: '2020-01-01T00:00:00Z', created_by: 'another build' }] });
  const file = path.join(tmp, 'bad-parent.tar');
  images.writeDockerArchive(file, [{ image: one, repoTags: ['one:1'], parent: unrelated.configDigest }, { image: unrelated, repoTags: ['unrelated:2'] }]);
  const err = await failure(fresh('bad-parent').imageCore.loadImage(file));
  assert.ok(err instanceof K3Core.errors.InvalidArchive, err.name);
  assert.match(err.details.error, /not built on it/);
});

test('compressed archives (.gz, .zst) load the same', async () => {
  const gz = path.join(tmp, 'two-images.tar.gz');
  fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(archive)));
  const out = await fresh('gz').imageCore.loadImage(gz);
  assert.deepEqual(out.Loaded.map((l) => l.Id), [one.configDigest, other.configDigest]);
  if (whichSync('zstd')) {
    execFileSync('zstd', ['-q', '-f', archive, '-o', `${archive}.zst`]);
    const z = await fresh('zst').imageCore.loadImage(`${archive}.zst`);
    assert.deepEqual(z.Loaded.map((l) => l.Id), [one.configDigest, other.configDigest]);
  }
});

test('an OCI archive loads under its ref name', async () => {
  const oci = path.join(tmp, 'image.oci.tar');
  images.writeOciArchive(oci, [{ image: one, refName: 'oci/one:3' }]);
  const out = await fresh('oci').imageCore.loadImage(oci);
  assert.deepEqual(out.Loaded, [{ Id: one.configDigest, RepoTags: ['docker.io/oci/one:3'] }]);
});

test('archives podman save writes load with the same image ID', { skip: need(registryAvailable() || (whichSync('podman') ? false : 'podman is not installed')) }, async () => {
  const reg = await startRegistry();
  const ref = `${reg.host}/load/podman:v1`;
  try {
    await images.pushImage(reg, 'load/podman', 'v1', one);
    execFileSync('podman', ['pull', '-q', '--tls-verify=false', ref]);
    for (const format of ['docker-archive', 'oci-archive']) {
      const file = path.join(tmp, `podman-${format}.tar`);
      execFileSync('podman', ['save', '-q', '--format', format, '-o', file, ref]);
      const out = await fresh(`podman-${format}`).imageCore.loadImage(file);
      assert.equal(out.Loaded.length, 1, format);
      assert.equal(out.Loaded[0].Id, archivedConfigDigest(file, format), `${format}: the config digest the archive holds`);
    }
  } finally {
    execFileSync('podman', ['rmi', '-f', ref], { stdio: 'ignore' });
    await reg.stop();
  }
});

// The config digest an archive holds: docker-archive keeps the original
// config; podman rewrites it for oci-archive, so it is read from the archive.
function archivedConfigDigest(file, format) {
  const read = (member) => execFileSync('tar', ['-xOf', file, member]);
  if (format === 'docker-archive') return `sha256:${JSON.parse(read('manifest.json'))[0].Config.replace(/^blobs\/sha256\//, '').replace(/\.json$/, '')}`;
  const index = JSON.parse(read('index.json'));
  const manifest = JSON.parse(read(`blobs/sha256/${index.manifests[0].digest.slice(7)}`));
  return manifest.config.digest;
}

test('missing, not an archive, not an image archive: typed errors and nothing stored', async () => {
  const k3 = fresh('errors');
  const missing = await failure(k3.imageCore.loadImage(path.join(tmp, 'nope.tar')));
  assert.ok(missing instanceof K3Core.errors.ArchiveNotFound, missing.name);
  assert.equal(missing.statusCode, 404);
  const text = path.join(tmp, 'text.tar');
  fs.writeFileSync(text, 'just some text, not a tar at all '.repeat(40));
  const notTar = await failure(k3.imageCore.loadImage(text));
  assert.ok(notTar instanceof K3Core.errors.InvalidArchive, notTar.name);
  const plain = path.join(tmp, 'plain.tar');
  fs.writeFileSync(plain, images.makeTar([{ path: 'hello.txt', content: 'hi' }]));
  const notImage = await failure(k3.imageCore.loadImage(plain));
  assert.ok(notImage instanceof K3Core.errors.InvalidArchive, notImage.name);
  assert.match(notImage.details.error, /manifest\.json|index\.json/);
  assert.deepEqual(await k3.imageCore.listImages(), []);
});

test('a layer that does not match its diff ID, or escapes, is refused', async () => {
  const k3 = fresh('hostile');
  const good = images.makeLayer([{ path: 'f', content: 'good' }], { gzip: false });
  const lying = images.makeImage({ layers: [good] });
  lying.config.rootfs.diff_ids = [images.sha256(Buffer.from('something else'))];
  lying.configBytes = Buffer.from(JSON.stringify(lying.config));
  lying.configDigest = images.sha256(lying.configBytes);
  const lyingFile = path.join(tmp, 'lying.tar');
  images.writeDockerArchive(lyingFile, [{ image: lying, repoTags: ['lying:1'] }]);
  const mismatch = await failure(k3.imageCore.loadImage(lyingFile));
  assert.ok(mismatch instanceof K3Core.errors.LayerVerificationFailure || mismatch instanceof K3Core.errors.InvalidArchive, `${mismatch.name}: ${mismatch.details.error}`);

  const marker = `k3-load-escape-${process.pid}`;
  const slip = images.makeImage({ layers: [images.makeLayer([{ path: `../../../../../../tmp/${marker}`, content: 'escaped' }], { gzip: false })] });
  const slipFile = path.join(tmp, 'slip.tar');
  images.writeDockerArchive(slipFile, [{ image: slip, repoTags: ['slip:1'] }]);
  const unsafe = await failure(k3.imageCore.loadImage(slipFile));
  assert.ok(unsafe instanceof K3Core.errors.UnsafeImageContent, `${unsafe.name}: ${unsafe.details.error}`);
  assert.equal(fs.existsSync(`/tmp/${marker}`), false, 'nothing was written outside the store');
  assert.deepEqual(await k3.imageCore.listImages(), []);
});

test('a docker save tarball whose layer is cut short is an InvalidArchive, not a registry fault', async () => {
  const k3 = fresh('truncated');
  const big = images.makeImage({ layers: [images.makeLayer([{ path: 'big.bin', content: Buffer.alloc(64 * 1024, 7) }], { gzip: false })], mediaType: 'docker' });
  const zipped = images.makeImage({ layers: [[{ path: 'big.bin', content: Buffer.alloc(64 * 1024, 9) }]], mediaType: 'docker' });
  // A plain layer.tar, and a gzipped one as archives of compressed blobs hold it.
  for (const [label, image] of [['plain', images.truncateLayers(big)], ['gzip', images.truncateLayers(zipped, { compressed: true })]]) {
    const file = path.join(tmp, `truncated-${label}.tar`);
    images.writeDockerArchive(file, [{ image, repoTags: [`truncated:${label}`] }]);
    const err = await failure(k3.imageCore.loadImage(file));
    assert.ok(err instanceof K3Core.errors.InvalidArchive, `${label}: ${err.name}: ${err.details.error}`);
    assert.equal(err.details.filePath, file);
    assert.match(err.details.error, /truncated/, label);
    assert.match(err.details.error, /layer sha256:[0-9a-f]{64}/, label);
    assert.doesNotMatch(err.details.error, /registry|internal error|goroutine/, label);
  }
  assert.deepEqual(await k3.imageCore.listImages(), []);
});
