'use strict';
// inspectAnImage against a real docker-registry on 127.0.0.1 holding images
// the test builds itself.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { startFakeRegistry, startSilentServer, closedPort } = require('./helpers/fakeRegistry');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping registry tests: ${skip}`);

const k3 = new K3Core();
let reg;
const fixtures = {};

function inspect(repo, postData = {}) {
  const name = `${reg.host}/${repo}`;
  return k3.imageCore.inspectAnImage(name, { imageName: name, ...postData });
}

async function rejectsWith(promise, Class, error) {
  const err = await promise.then(() => assert.fail('expected a rejection'), (e) => e);
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.name}: ${err && err.message} ${JSON.stringify(err && err.details)}`);
  assert.ok(err instanceof K3Core.errors.K3Error);
  if (error instanceof RegExp) assert.match(err.details.error, error);
  else if (error !== undefined) assert.equal(err.details.error, error);
  return err;
}

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  fixtures.single = images.makeImage({ layers: [[{ path: 'hello.txt', content: 'hello' }]], mediaType: 'oci' });
  fixtures.many = images.makeImage({
    layers: Array.from({ length: 7 }, (_, i) => [{ path: `layer${i}/file`, content: `layer ${i}` }]),
    mediaType: 'docker',
  });
  fixtures.labelled = images.makeImage({
    layers: [[{ path: 'etc/app.conf', content: 'x=1' }]],
    config: { Labels: { 'org.opencontainers.image.title': 'app', maintainer: 'k3' }, Env: ['PATH=/bin', 'A=1=2', 'EMPTY='] },
    layerAnnotations: [{ 'org.example.note': 'first' }],
    mediaType: 'oci',
  });
  fixtures.amd64 = images.makeImage({ layers: [[{ path: 'arch', content: 'amd64' }]], architecture: 'amd64' });
  fixtures.arm64 = images.makeImage({ layers: [[{ path: 'arch', content: 'arm64' }]], architecture: 'arm64', variant: 'v8' });
  fixtures.armv7 = images.makeImage({ layers: [[{ path: 'arch', content: 'armv7' }]], architecture: 'arm', variant: 'v7' });
  fixtures.index = images.makeIndex([fixtures.amd64, fixtures.arm64, fixtures.armv7], { mediaType: 'oci' });
  fixtures.dockerAmd64 = images.makeImage({ layers: [[{ path: 'x', content: 'd' }]], mediaType: 'docker' });
  fixtures.dockerArm64 = images.makeImage({ layers: [[{ path: 'x', content: 'e' }]], mediaType: 'docker', architecture: 'arm64', variant: 'v8' });
  fixtures.dockerList = images.makeIndex([fixtures.dockerAmd64, fixtures.dockerArm64], { mediaType: 'docker' });

  await images.pushImage(reg, 'test/single', 'latest', fixtures.single);
  await images.pushImage(reg, 'test/single', 'v1', fixtures.single);
  await images.pushImage(reg, 'test/many', 'v1', fixtures.many);
  await images.pushImage(reg, 'test/labelled', '1.0', fixtures.labelled);
  await images.pushIndex(reg, 'test/multi', 'v1', fixtures.index, [fixtures.amd64, fixtures.arm64, fixtures.armv7]);
  await images.pushIndex(reg, 'test/dockerlist', 'v1', fixtures.dockerList, [fixtures.dockerAmd64, fixtures.dockerArm64]);
});

after(async () => {
  if (reg) await reg.stop();
});

test('single-layer OCI image: every field', { skip }, async () => {
  const out = await inspect('test/single', { imageTag: 'v1' });
  const img = fixtures.single;
  assert.equal(out.Name, `${reg.host}/test/single`);
  assert.equal(out.Digest, img.manifestDigest);
  assert.equal(out.PlatformDigest, img.manifestDigest);
  assert.deepEqual(out.RepoTags, []);
  assert.equal(out.Created, '2024-01-02T03:04:05Z');
  assert.equal(out.DockerVersion, '');
  assert.equal(out.Architecture, 'amd64');
  assert.equal(out.Os, 'linux');
  assert.equal('Variant' in out, false);
  assert.deepEqual(out.Layers, [img.layers[0].digest]);
  assert.deepEqual(out.LayersData, [{
    MIMEType: 'application/vnd.oci.image.layer.v1.tar+gzip', Digest: img.layers[0].digest, Size: img.layers[0].size, Annotations: null,
  }]);
  assert.deepEqual(out.Env, img.config.config.Env);
});

test('imageTag defaults to latest, and a tag in the name is used', { skip }, async () => {
  const byDefault = await inspect('test/single');
  assert.equal(byDefault.Digest, fixtures.single.manifestDigest);
  const name = `${reg.host}/test/single:v1`;
  const inName = await k3.imageCore.inspectAnImage(name, { imageName: name });
  assert.equal(inName.Digest, fixtures.single.manifestDigest);
});

test('many-layer Docker v2 image keeps layer order, sizes and media types', { skip }, async () => {
  const out = await inspect('test/many', { imageTag: 'v1' });
  const img = fixtures.many;
  assert.equal(out.Layers.length, 7);
  assert.deepEqual(out.Layers, img.layers.map((l) => l.digest));
  assert.deepEqual(out.LayersData.map((l) => l.Size), img.layers.map((l) => l.size));
  for (const l of out.LayersData) assert.equal(l.MIMEType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.equal(out.Digest, img.manifestDigest);
});

test('labels, env with "=" in values, and layer annotations', { skip }, async () => {
  const out = await inspect('test/labelled', { imageTag: '1.0' });
  assert.deepEqual(out.Labels, { 'org.opencontainers.image.title': 'app', maintainer: 'k3' });
  assert.deepEqual(out.Env, ['PATH=/bin', 'A=1=2', 'EMPTY=']);
  assert.deepEqual(out.LayersData[0].Annotations, { 'org.example.note': 'first' });
});

test('multi-arch OCI index: host platform by default, others on request', { skip }, async () => {
  const host = await inspect('test/multi', { imageTag: 'v1' });
  assert.equal(host.Digest, fixtures.index.indexDigest, 'Digest is the index digest, as in skopeo');
  const hostArch = process.arch === 'x64' ? 'amd64' : process.arch;
  assert.equal(host.Architecture, hostArch);
  const hostImage = hostArch === 'arm64' ? fixtures.arm64 : fixtures.amd64;
  assert.equal(host.PlatformDigest, hostImage.manifestDigest);

  const arm64 = await inspect('test/multi', { imageTag: 'v1', architecture: 'arm64' });
  assert.equal(arm64.PlatformDigest, fixtures.arm64.manifestDigest);
  assert.equal(arm64.Architecture, 'arm64');
  assert.equal(arm64.Variant, 'v8');
  assert.deepEqual(arm64.Layers, [fixtures.arm64.layers[0].digest]);

  const armv7 = await inspect('test/multi', { imageTag: 'v1', os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(armv7.PlatformDigest, fixtures.armv7.manifestDigest);

  const err = await rejectsWith(inspect('test/multi', { imageTag: 'v1', architecture: 's390x' }),
    K3Core.errors.ImageNotFoundInRegistry, /no image for platform linux\/s390x/);
  assert.match(err.details.error, /linux\/arm64\/v8/);
});

test('Docker manifest list with platform choice', { skip }, async () => {
  const out = await inspect('test/dockerlist', { imageTag: 'v1', architecture: 'arm64', variant: 'v8' });
  assert.equal(out.Digest, fixtures.dockerList.indexDigest);
  assert.equal(out.PlatformDigest, fixtures.dockerArm64.manifestDigest);
  const amd = await inspect('test/dockerlist', { imageTag: 'v1', architecture: 'amd64' });
  assert.equal(amd.PlatformDigest, fixtures.dockerAmd64.manifestDigest);
});

test('by digest, in the name or as imageTag', { skip }, async () => {
  const d = fixtures.many.manifestDigest;
  const name = `${reg.host}/test/many@${d}`;
  const a = await k3.imageCore.inspectAnImage(name, { imageName: name });
  assert.equal(a.Digest, d);
  const b = await inspect('test/many', { imageTag: d });
  assert.equal(b.Digest, d);
  const missing = 'sha256:' + '0'.repeat(64);
  await rejectsWith(inspect('test/many', { imageTag: missing }), K3Core.errors.ImageNotFoundInRegistry, 'manifest unknown');
});

test('listTags fills RepoTags from the registry', { skip }, async () => {
  const out = await inspect('test/single', { listTags: true });
  assert.deepEqual([...out.RepoTags].sort(), ['latest', 'v1']);
});

test('a tag that moves is seen at once, even though results are cached', { skip }, async () => {
  const first = images.makeImage({ layers: [[{ path: 'v', content: '1' }]] });
  const second = images.makeImage({ layers: [[{ path: 'v', content: '2' }]] });
  await images.pushImage(reg, 'test/moving', 'latest', first);
  assert.equal((await inspect('test/moving')).Digest, first.manifestDigest);
  assert.equal((await inspect('test/moving')).Digest, first.manifestDigest);
  await images.pushImage(reg, 'test/moving', 'latest', second);
  const moved = await inspect('test/moving');
  assert.equal(moved.Digest, second.manifestDigest);
  assert.deepEqual(moved.Layers, [second.layers[0].digest]);
});

test('unknown repository, tag and digest are ImageNotFoundInRegistry', { skip }, async () => {
  const repo = await rejectsWith(inspect('test/does-not-exist'), K3Core.errors.ImageNotFoundInRegistry);
  assert.match(repo.details.error, /^(name|manifest) unknown$/);
  assert.equal(repo.statusCode, 404);
  assert.equal(repo.type, 'NOT_FOUND');
  assert.equal(repo.message, 'Image not found in registry.');
  assert.equal(repo.details.imageName, `${reg.host}/test/does-not-exist`);
  await rejectsWith(inspect('test/single', { imageTag: 'nope' }), K3Core.errors.ImageNotFoundInRegistry, 'manifest unknown');
});

test('invalid names and postData are InvalidInspectParameters', { skip }, async () => {
  const E = K3Core.errors.InvalidInspectParameters;
  const cases = [
    [['invalid@image', { imageName: 'invalid@image' }], 'Image name contains invalid characters'],
    [['bad name', { imageName: 'bad name' }], 'Image name contains invalid characters'],
    [['UPPER/case', { imageName: 'UPPER/case' }], 'Image name must be lowercase'],
    [['', { imageName: '' }], 'Image name is required'],
    [[undefined, { imageName: 'alpine' }], 'Image name is required'],
    [[42, { imageName: 'alpine' }], 'imageName must be a string'],
    [['alpine'], 'postData is required'],
    [['alpine', 'latest'], 'postData must be an object'],
    [['alpine', {}], 'postData.imageName is required'],
    [['alpine', { imageName: 'nginx' }], 'postData.imageName (nginx) does not match imageName (alpine)'],
    [['alpine', { imageName: 'alpine', imageTag: 'bad tag!' }], 'Image tag contains invalid characters'],
    [['alpine', { imageName: 'alpine', imageTag: 7 }], 'postData.imageTag must be a string'],
    [['alpine:1', { imageName: 'alpine', imageTag: '2' }], 'imageTag 2 does not match the tag in imageName (1)'],
    [['alpine', { imageName: 'alpine', containerImageTransport: 'ftp' }], /unknown transport "ftp"/],
    [['alpine', { imageName: 'alpine', credentials: { username: 'u' } }], 'postData.credentials must be {username, password} or {registryToken}'],
    [['alpine', { imageName: 'alpine', credentials: 'u:p' }], 'postData.credentials must be an object'],
    [['alpine', { imageName: 'alpine', tlsVerify: 'no' }], 'postData.tlsVerify must be true or false'],
    [['alpine', { imageName: 'alpine', listTags: 1 }], 'postData.listTags must be true or false'],
    [['alpine', { imageName: 'alpine', timeout: -5 }], 'postData.timeout must be a positive number of milliseconds'],
    [['alpine', { imageName: 'alpine', architecture: 'x/y' }], 'postData.architecture contains invalid characters'],
    [['alpine', { imageName: 'alpine', signal: 'stop' }], 'postData.signal must be an AbortSignal'],
    [['alpine', { imageName: 'alpine', imageTag: 10n }], /postData.imageTag must be a string|could not be serialised/],
  ];
  const circular = { imageName: 'alpine' };
  circular.self = circular;
  cases.push([['alpine', circular], /postData could not be serialised/]);
  for (const [args, reason] of cases) {
    const err = await rejectsWith(k3.imageCore.inspectAnImage(...args), E, reason);
    assert.equal(err.statusCode, 422);
    assert.equal(err.type, 'VALIDATION_ERROR');
    assert.equal(err.message, 'Invalid inspection parameters.');
  }
});

test('same repository spelled two ways agrees', { skip }, async () => {
  // docker.io/library/alpine and alpine are one repository; this must pass
  // validation and fail only on the network (no internet here).
  const err = await k3.imageCore.inspectAnImage('docker.io/library/alpine', { imageName: 'alpine', timeout: 1500 })
    .then(() => null, (e) => e);
  if (err) assert.notEqual(err.name, 'InvalidInspectParameters', err.details && err.details.error);
});

test('a closed port is RegistryConnectionFailure: connection refused', { skip }, async () => {
  const port = await closedPort();
  const name = `127.0.0.1:${port}/x/y`;
  const err = await rejectsWith(k3.imageCore.inspectAnImage(name, { imageName: name }),
    K3Core.errors.RegistryConnectionFailure, 'connection refused');
  assert.equal(err.statusCode, 500);
  assert.equal(err.type, 'NETWORK_ERROR');
  assert.equal(err.cause.code, 'ECONNREFUSED');
  assert.equal(err.message, 'Failed to connect to registry.');
});

test('a registry that never answers: timeout', { skip }, async () => {
  const silent = await startSilentServer();
  try {
    const name = `${silent.host}/x/y`;
    const started = Date.now();
    await rejectsWith(k3.imageCore.inspectAnImage(name, { imageName: name, timeout: 300 }),
      K3Core.errors.RegistryConnectionFailure, 'connection timeout');
    assert.ok(Date.now() - started < 5000, 'the timeout bounds the whole call');
  } finally {
    await silent.stop();
  }
});

test('an unresolvable host is RegistryConnectionFailure', { skip }, async () => {
  const name = 'no-such-host.invalid/x/y';
  await rejectsWith(k3.imageCore.inspectAnImage(name, { imageName: name, timeout: 5000 }),
    K3Core.errors.RegistryConnectionFailure, /no such host|connection timeout/);
});

test('a corrupt config blob is InspectImageFailure', { skip }, async () => {
  const img = images.makeImage({ layers: [[{ path: 'f', content: 'c' }]] });
  const garbage = Buffer.from('{"architecture": "amd64", "os": ');
  const configDigest = await images.putBlob(reg, 'test/corrupt', garbage);
  await images.putBlob(reg, 'test/corrupt', img.layers[0].blob);
  const manifest = { ...img.manifest, config: { ...img.manifest.config, digest: configDigest, size: garbage.length } };
  await images.putRawManifest(reg, 'test/corrupt', 'latest', Buffer.from(JSON.stringify(manifest)), img.mediaType);
  await rejectsWith(inspect('test/corrupt'), K3Core.errors.InspectImageFailure, /malformed image config/);
});

test('an unsupported manifest media type is InspectImageFailure', { skip }, async () => {
  const body = '{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}';
  const digest = images.sha256(Buffer.from(body));
  const route = { headers: { 'Content-Type': 'application/vnd.example.thing+json', 'Docker-Content-Digest': digest }, body };
  const fake = await startFakeRegistry({ '/v2/x/y/manifests/latest': route, [`/v2/x/y/manifests/${digest}`]: route });
  try {
    const name = `${fake.host}/x/y`;
    await rejectsWith(k3.imageCore.inspectAnImage(name, { imageName: name }), K3Core.errors.InspectImageFailure, /unsupported manifest media type/);
  } finally {
    await fake.stop();
  }
});

test('a manifest that does not match its digest is InspectImageFailure', { skip }, async () => {
  const img = images.makeImage({ layers: [[{ path: 'f', content: 'lie' }]] });
  const claimed = 'sha256:' + 'a'.repeat(64);
  const route = { headers: { 'Content-Type': img.mediaType, 'Docker-Content-Digest': claimed }, body: img.manifestBytes };
  const fake = await startFakeRegistry({ '/v2/x/y/manifests/latest': route, [`/v2/x/y/manifests/${claimed}`]: route });
  try {
    const name = `${fake.host}/x/y`;
    await rejectsWith(k3.imageCore.inspectAnImage(name, { imageName: name }), K3Core.errors.InspectImageFailure, /digest mismatch/);
  } finally {
    await fake.stop();
  }
});

test('Docker schema 1 manifests are read from their v1 history', { skip }, async () => {
  const v1c = (o) => JSON.stringify(o);
  const manifest = JSON.stringify({
    schemaVersion: 1, name: 'x/y', tag: 'latest', architecture: 'amd64',
    fsLayers: [{ blobSum: 'sha256:' + 'b'.repeat(64) }, { blobSum: 'sha256:' + 'c'.repeat(64) }],
    history: [
      { v1Compatibility: v1c({ id: 'top', parent: 'base', created: '2016-01-02T03:04:05.123456789Z', docker_version: '1.9.1', architecture: 'amd64', os: 'linux', config: { Env: ['A=1'], Labels: { l: 'v' } } }) },
      { v1Compatibility: v1c({ id: 'base', created: '2016-01-01T00:00:00Z' }) },
    ],
  });
  const digest = images.sha256(Buffer.from(manifest));
  const route = { headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+json', 'Docker-Content-Digest': digest }, body: manifest };
  const fake = await startFakeRegistry({ '/v2/x/y/manifests/latest': route, [`/v2/x/y/manifests/${digest}`]: route });
  try {
    const name = `${fake.host}/x/y`;
    const out = await k3.imageCore.inspectAnImage(name, { imageName: name });
    assert.equal(out.Digest, digest);
    assert.equal(out.Created, '2016-01-02T03:04:05.123456789Z');
    assert.equal(out.DockerVersion, '1.9.1');
    assert.deepEqual(out.Labels, { l: 'v' });
    assert.deepEqual(out.Env, ['A=1']);
    assert.deepEqual(out.Layers, ['sha256:' + 'c'.repeat(64), 'sha256:' + 'b'.repeat(64)], 'base layer first');
    assert.equal(out.LayersData[0].Size, -1, 'schema 1 does not record sizes');
  } finally {
    await fake.stop();
  }
});

test('tlsVerify: false reads a plain-HTTP registry that is not on loopback by name', { skip }, async () => {
  // localhost is a loopback name go-containerregistry already allows over
  // HTTP; tlsVerify:false must keep working for it too.
  const name = `localhost:${reg.port}/test/single`;
  const out = await k3.imageCore.inspectAnImage(name, { imageName: name, tlsVerify: false, imageTag: 'v1' });
  assert.equal(out.Digest, fixtures.single.manifestDigest);
});
