'use strict';
// Pulling into the store from every transport inspect reads, and copying a
// registry image into an OCI layout without unpacking it (skopeo checks the
// layout we write).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
let reg;
let tmp;
let k3;
const img = images.makeImage({
  layers: [[{ path: 'etc', type: 'dir' }, { path: 'etc/release', content: 'k3 test' }], [{ path: 'app', content: 'binary' }]],
  config: { Cmd: ['/app'] },
});
const arm = images.makeImage({ layers: [[{ path: 'arch', content: 'arm64' }]], architecture: 'arm64', variant: 'v8' });
const amd = images.makeImage({ layers: [[{ path: 'arch', content: 'amd64' }]] });
const index = images.makeIndex([amd, arm]);

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-transports-'));
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'v1' }, { index, images: [amd, arm], refName: 'multi' }]);
  images.writeOciArchive(path.join(tmp, 'image.oci.tar'), [{ image: img, refName: 'v1' }]);
  images.writeDockerArchive(path.join(tmp, 'image.docker.tar'), [{ image: img, repoTags: ['example.com/team/app:2.0'] }]);
  if (!skip) {
    reg = await startRegistry();
    await images.pushImage(reg, 'copy/app', 'v1', img);
    await images.pushIndex(reg, 'copy/multi', 'v1', index, [amd, arm]);
  }
});

after(async () => {
  if (reg) await reg.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function exportedFiles(imageRef, name) {
  await k3.containerCore.createContainer(imageRef, { name });
  const file = path.join(tmp, `${name}.tar`);
  await k3.containerCore.exportContainer(name, file);
  return execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
}

test('pull from an OCI layout directory, named by its ref', async () => {
  const dir = path.join(tmp, 'layout');
  const out = await k3.imageCore.pullAnImage(dir, 'v1', { containerImageTransport: 'oci' });
  assert.equal(out.Id, img.configDigest);
  assert.deepEqual(out.RepoTags, ['docker.io/library/v1:latest']);
  assert.deepEqual(await exportedFiles(img.configDigest, 'from-oci'), ['app', 'etc/', 'etc/release']);
});

test('pull a platform out of an index in a layout', async () => {
  const out = await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'multi', { containerImageTransport: 'oci', architecture: 'arm64' });
  assert.equal(out.Id, arm.configDigest);
  assert.equal(out.Architecture, 'arm64');
});

test('pull from an OCI archive', async () => {
  const out = await k3.imageCore.pullAnImage(path.join(tmp, 'image.oci.tar'), 'v1', { containerImageTransport: 'oci-archive' });
  assert.equal(out.Id, img.configDigest);
  assert.equal(out.LayersReused, 2, 'layers the store has are not unpacked again');
});

test('pull from a docker save archive, by its tag', async () => {
  const out = await k3.imageCore.pullAnImage(path.join(tmp, 'image.docker.tar'), 'example.com/team/app:2.0', { containerImageTransport: 'docker-archive' });
  assert.equal(out.Id, img.configDigest);
  assert.deepEqual(out.RepoTags, ['example.com/team/app:2.0']);
  const list = await k3.imageCore.listImages();
  assert.ok(list.find((i) => i.RepoTags.includes('example.com/team/app:2.0')));
});

test('local sources that are missing or wrong are typed errors', async () => {
  const missing = await k3.imageCore.pullAnImage(path.join(tmp, 'nope'), 'v1', { containerImageTransport: 'oci' }).then(() => null, (e) => e);
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundInRegistry, missing && missing.name);
  const noRef = await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'v9', { containerImageTransport: 'oci' }).then(() => null, (e) => e);
  assert.ok(noRef instanceof K3Core.errors.ImageNotFoundInRegistry, noRef && noRef.name);
});

test('a docker save archive whose layer is cut short fails the pull as LayerVerificationFailure, not a registry fault', async () => {
  const big = images.makeImage({ layers: [images.makeLayer([{ path: 'big.bin', content: Buffer.alloc(64 * 1024, 7) }], { gzip: false })], mediaType: 'docker' });
  const file = path.join(tmp, 'truncated.docker.tar');
  images.writeDockerArchive(file, [{ image: images.truncateLayers(big), repoTags: ['example.com/team/cut:1'] }]);
  const err = await k3.imageCore.pullAnImage(file, 'example.com/team/cut:1', { containerImageTransport: 'docker-archive' }).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.LayerVerificationFailure, `${err && err.name}: ${err && err.details.error}`);
  assert.match(err.details.error, /truncated.*layer sha256:[0-9a-f]{64}/);
  const list = await k3.imageCore.listImages();
  assert.equal(list.find((i) => i.RepoTags.includes('example.com/team/cut:1')), undefined);
});

test('copyImage: registry to OCI layout, readable by skopeo', { skip }, async () => {
  const dest = path.join(tmp, 'copied');
  const out = await k3.imageCore.copyImage(`${reg.host}/copy/app`, 'v1', dest);
  assert.deepEqual(out, { Digest: img.manifestDigest, Destination: dest, Tag: 'v1' });
  for (const l of img.layers) assert.ok(fs.existsSync(path.join(dest, 'blobs', 'sha256', l.digest.slice(7))));
  const ours = await k3.imageCore.inspectAnImage(dest, { imageName: dest, imageTag: 'v1', containerImageTransport: 'oci' });
  assert.equal(ours.Digest, img.manifestDigest);
  if (whichSync('skopeo')) {
    const theirs = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${dest}:v1`], { encoding: 'utf8' }));
    assert.equal(theirs.Digest, img.manifestDigest);
    assert.deepEqual(theirs.Layers, img.layers.map((l) => l.digest));
  }
  // A second image goes beside the first; the same tag again replaces it.
  await k3.imageCore.copyImage(`${reg.host}/copy/multi`, 'v1', dest, { destinationTag: 'multi', architecture: 'arm64' });
  await k3.imageCore.copyImage(`${reg.host}/copy/app`, 'v1', dest);
  const indexJson = JSON.parse(fs.readFileSync(path.join(dest, 'index.json'), 'utf8'));
  assert.deepEqual(indexJson.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort(), ['multi', 'v1']);
});

test('copyImage validates its destination', async () => {
  const err = await k3.imageCore.copyImage('alpine', 'latest', 'relative/dir').then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.InvalidCopyImageParameters, err && err.name);
});

test('inspectAnImage with the k3 transport reads the local store, as the registry says', { skip }, async () => {
  const ref = `${reg.host}/copy/app`;
  await k3.imageCore.pullAnImage(ref, 'v1');
  const remote = await k3.imageCore.inspectAnImage(ref, { imageName: ref, imageTag: 'v1' });
  const local = await k3.imageCore.inspectAnImage(ref, { imageName: ref, imageTag: 'v1', containerImageTransport: 'k3' });
  for (const field of ['Name', 'Digest', 'Created', 'Architecture', 'Os', 'Layers', 'LayersData', 'Env', 'Labels']) {
    assert.deepEqual(local[field], remote[field], field);
  }
  assert.ok(local.RepoTags.includes(`${ref}:v1`));
  const byId = await k3.imageCore.inspectAnImage(img.configDigest.slice(7, 19), { imageName: img.configDigest.slice(7, 19), containerImageTransport: 'k3' });
  assert.equal(byId.Digest, img.manifestDigest);
  const missing = await k3.imageCore.inspectAnImage('not/here', { imageName: 'not/here', containerImageTransport: 'k3' }).then(() => null, (e) => e);
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundInRegistry, missing && missing.name);
});
