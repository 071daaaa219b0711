'use strict';
// inspectAnImage over the local transports on their own (no registry, no
// skopeo): OCI layout directories, OCI archives and `docker save` archives
// the test writes itself, and how each fails.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');

const k3 = new K3Core();
const E = K3Core.errors;
let tmp;
const fx = {};
const paths = {};

const HOST_ARCH = process.arch === 'x64' ? 'amd64' : process.arch;

function inspect(transport, file, postData = {}) {
  return k3.imageCore.inspectAnImage(file, { imageName: file, containerImageTransport: transport, ...postData });
}

async function rejectsWith(promise, Class, error) {
  const err = await promise.then((out) => assert.fail(`expected a rejection, got ${JSON.stringify(out)}`), (e) => e);
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.name}: ${err && err.message} ${JSON.stringify(err && err.details)}`);
  assert.ok(err instanceof E.K3Error);
  if (error instanceof RegExp) assert.match(err.details.error, error);
  else if (error !== undefined) assert.equal(err.details.error, error);
  return err;
}

function assertNotFound(err, imageName) {
  assert.equal(err.statusCode, 404);
  assert.equal(err.type, 'NOT_FOUND');
  assert.equal(err.message, 'Image not found in registry.');
  assert.equal(err.details.imageName, imageName);
}

function assertInspectFailure(err, imageName) {
  assert.equal(err.statusCode, 500);
  assert.equal(err.type, 'IMAGE_SERVICE_ERROR');
  assert.equal(err.message, 'Failed to inspect image.');
  assert.equal(err.details.imageName, imageName);
}

// Every field of an image read from an OCI layout or archive.
function assertOciImage(out, image, { digest = image.manifestDigest } = {}) {
  assert.equal('Name' in out, false, 'skopeo reports no Name for oci: references');
  assert.equal(out.Digest, digest);
  assert.equal(out.PlatformDigest, image.manifestDigest);
  assert.deepEqual(out.RepoTags, []);
  assert.equal(out.Created, image.config.created);
  assert.equal(out.DockerVersion, '');
  assert.deepEqual(out.Labels, image.config.config.Labels ?? null);
  assert.equal(out.Architecture, image.config.architecture);
  assert.equal(out.Os, image.config.os);
  if (image.config.variant) assert.equal(out.Variant, image.config.variant);
  else assert.equal('Variant' in out, false, 'Variant only when set');
  assert.deepEqual(out.Layers, image.manifest.layers.map((l) => l.digest));
  assert.deepEqual(out.LayersData, image.manifest.layers.map((l) => ({
    MIMEType: l.mediaType, Digest: l.digest, Size: l.size, Annotations: l.annotations ?? null,
  })));
  assert.deepEqual(out.Env, image.config.config.Env ?? null);
}

// The schema 2 manifest skopeo (containers/image) makes up for an image in a
// docker archive: uncompressed layer.tar files, labelled tar.gzip, compact
// JSON in Go's field order. Checked against `skopeo inspect --raw`.
function dockerArchiveManifest(image) {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: image.configBytes.length, digest: image.configDigest },
    layers: image.layers.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: l.tar.length, digest: l.diffId })),
  }));
}

function assertDockerArchiveImage(out, image, name) {
  const digest = images.sha256(dockerArchiveManifest(image));
  if (name === undefined) assert.equal('Name' in out, false, 'no Name without a reference');
  else assert.equal(out.Name, name);
  assert.equal(out.Digest, digest);
  assert.equal(out.PlatformDigest, digest);
  assert.deepEqual(out.RepoTags, []);
  assert.equal(out.Created, image.config.created);
  assert.equal(out.DockerVersion, '');
  assert.deepEqual(out.Labels, image.config.config.Labels ?? null);
  assert.equal(out.Architecture, image.config.architecture);
  assert.equal(out.Os, image.config.os);
  assert.deepEqual(out.Layers, image.layers.map((l) => l.diffId));
  assert.deepEqual(out.LayersData, image.layers.map((l) => ({
    MIMEType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', Digest: l.diffId, Size: l.tar.length, Annotations: null,
  })));
  assert.deepEqual(out.Env, image.config.config.Env ?? null);
}

// Every file under dir as makeTar entries (directories first, sorted).
function tarEntriesOf(dir) {
  const entries = [];
  const walk = (rel) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      if (fs.statSync(path.join(dir, p)).isDirectory()) {
        entries.push({ path: p, type: 'dir' });
        walk(p);
      } else {
        entries.push({ path: p, type: 'file', content: fs.readFileSync(path.join(dir, p)) });
      }
    }
  };
  walk('');
  return entries;
}

// Changes one byte of a blob in place (same length, still valid JSON).
function alterBlob(dir, digest, from, to) {
  const file = path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.includes(from), `${from} not in blob ${digest}`);
  assert.equal(from.length, to.length);
  fs.writeFileSync(file, text.replace(from, to));
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-local-'));
  fx.one = images.makeImage({
    layers: [[{ path: 'one/a', content: 'one a' }], [{ path: 'one/b', content: 'one b' }]],
    config: { Labels: { 'org.opencontainers.image.title': 'one' }, Env: ['PATH=/bin', 'ONE=1=1'] },
    layerAnnotations: [undefined, { 'org.example.layer': 'second' }],
    mediaType: 'oci',
  });
  fx.two = images.makeImage({
    layers: [[{ path: 'two', content: 'two' }]],
    config: { Labels: undefined, Env: undefined },
    created: '2023-05-06T07:08:09.123456789Z',
    mediaType: 'oci',
  });
  fx.amd64 = images.makeImage({ layers: [[{ path: 'arch', content: 'amd64' }]], architecture: 'amd64' });
  fx.arm64 = images.makeImage({ layers: [[{ path: 'arch', content: 'arm64' }]], architecture: 'arm64', variant: 'v8' });
  fx.armv7 = images.makeImage({ layers: [[{ path: 'arch', content: 'armv7' }]], architecture: 'arm', variant: 'v7' });
  fx.index = images.makeIndex([fx.amd64, fx.arm64, fx.armv7], { mediaType: 'oci' });
  fx.dockerA = images.makeImage({
    layers: [[{ path: 'a/1', content: 'A1' }], [{ path: 'a/2', content: 'A2' }], [{ path: 'a/3', content: 'A3' }]],
    config: { Labels: { who: 'A' } },
    mediaType: 'docker',
  });
  fx.dockerB = images.makeImage({
    layers: [[{ path: 'b', content: 'B' }]],
    config: { Env: ['PATH=/usr/bin', 'B=2'] },
    architecture: 'arm64',
    variant: 'v8',
    mediaType: 'docker',
  });

  const several = [
    { image: fx.one, refName: 'one' },
    { image: fx.two, refName: 'two' },
    { index: fx.index, images: [fx.amd64, fx.arm64, fx.armv7], refName: 'multi' },
  ];
  const writers = {
    oci: (p, entries) => images.writeOciLayout(p, entries),
    'oci-archive': (p, entries) => images.writeOciArchive(`${p}.tar`, entries),
  };
  for (const [transport, write] of Object.entries(writers)) {
    paths[transport] = {
      several: write(path.join(tmp, `${transport}-several`), several),
      named: write(path.join(tmp, `${transport}-named`), [{ image: fx.one, refName: 'only' }]),
      unnamed: write(path.join(tmp, `${transport}-unnamed`), [{ image: fx.two }]),
    };
  }
  paths.docker = {
    several: images.writeDockerArchive(path.join(tmp, 'several.docker.tar'), [
      { image: fx.dockerA, repoTags: ['foo:bar'] },
      { image: fx.dockerB, repoTags: ['docker.io/library/baz:qux', 'quay.io/team/app:1.0'] },
    ]),
    single: images.writeDockerArchive(path.join(tmp, 'single.docker.tar'), [{ image: fx.dockerB, repoTags: ['only/one:latest'] }]),
  };
  paths.notTar = path.join(tmp, 'not-a-tar.tar');
  fs.writeFileSync(paths.notTar, 'this is not a tar archive, only some text\n'.repeat(40));
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// oci: and oci-archive:, the same cases

for (const transport of ['oci', 'oci-archive']) {
  const p = () => paths[transport];

  test(`${transport}: two named images, each picked by imageTag`, async () => {
    assertOciImage(await inspect(transport, p().several, { imageTag: 'one' }), fx.one);
    assertOciImage(await inspect(transport, p().several, { imageTag: 'two' }), fx.two);
  });

  test(`${transport}: an index picked by imageTag, platform by postData`, async () => {
    const file = p().several;
    const host = await inspect(transport, file, { imageTag: 'multi' });
    assert.equal(host.Digest, fx.index.indexDigest);
    assert.equal(host.Architecture, HOST_ARCH);
    const arm64 = await inspect(transport, file, { imageTag: 'multi', architecture: 'arm64' });
    assertOciImage(arm64, fx.arm64, { digest: fx.index.indexDigest });
    const armv7 = await inspect(transport, file, { imageTag: 'multi', os: 'linux', architecture: 'arm', variant: 'v7' });
    assertOciImage(armv7, fx.armv7, { digest: fx.index.indexDigest });
    const amd64 = await inspect(transport, file, { imageTag: 'multi', architecture: 'amd64' });
    assertOciImage(amd64, fx.amd64, { digest: fx.index.indexDigest });
    await rejectsWith(inspect(transport, file, { imageTag: 'multi', architecture: 's390x' }),
      E.ImageNotFoundInRegistry, /s390x/);
  });

  test(`${transport}: the only image is the default, named or not`, async () => {
    assertOciImage(await inspect(transport, p().named), fx.one);
    assertOciImage(await inspect(transport, p().unnamed), fx.two);
    assertOciImage(await inspect(transport, p().named, { imageTag: 'only' }), fx.one);
  });

  test(`${transport}: several images and no imageTag is an error`, async () => {
    const err = await rejectsWith(inspect(transport, p().several), E.ImageNotFoundInRegistry, /imageTag|choose|more than one/i);
    assertNotFound(err, p().several);
  });

  test(`${transport}: an unknown ref name is ImageNotFoundInRegistry`, async () => {
    const err = await rejectsWith(inspect(transport, p().several, { imageTag: 'three' }), E.ImageNotFoundInRegistry);
    assertNotFound(err, p().several);
    await rejectsWith(inspect(transport, p().unnamed, { imageTag: 'latest' }), E.ImageNotFoundInRegistry);
  });

  test(`${transport}: a path that does not exist is ImageNotFoundInRegistry`, async () => {
    const missing = path.join(tmp, 'no', 'such', transport === 'oci' ? 'layout' : 'archive.tar');
    const err = await rejectsWith(inspect(transport, missing), E.ImageNotFoundInRegistry);
    assertNotFound(err, missing);
    await rejectsWith(inspect(transport, missing, { imageTag: 'one' }), E.ImageNotFoundInRegistry);
  });

  test(`${transport}: postData.imageName must equal imageName`, async () => {
    const file = p().several;
    const other = path.join(tmp, 'elsewhere');
    const err = await rejectsWith(
      k3.imageCore.inspectAnImage(file, { imageName: other, containerImageTransport: transport, imageTag: 'one' }),
      E.InvalidInspectParameters, /does not match/);
    assert.equal(err.statusCode, 422);
    assert.equal(err.type, 'VALIDATION_ERROR');
    assert.equal(err.message, 'Invalid inspection parameters.');
    assert.equal(err.details.imageName, file);
    // A trailing slash is a different string too: no silent normalising.
    await rejectsWith(
      k3.imageCore.inspectAnImage(file, { imageName: `${file}/`, containerImageTransport: transport }),
      E.InvalidInspectParameters);
  });

  // Images no other test has inspected, so nothing this process has seen
  // before stands in for the altered bytes.
  const fresh = (label) => {
    const tag = `${transport}-${label}`;
    const image = images.makeImage({ layers: [[{ path: 'tamper', content: tag }]], config: { Labels: { tag } } });
    const a = images.makeImage({ layers: [[{ path: 'arch', content: `${tag} amd64` }]], architecture: 'amd64' });
    const b = images.makeImage({ layers: [[{ path: 'arch', content: `${tag} arm64` }]], architecture: 'arm64', variant: 'v8' });
    return { image, a, b, index: images.makeIndex([a, b]) };
  };
  const layoutOf = (set) => [{ image: set.image, refName: 'one' }, { index: set.index, images: [set.a, set.b], refName: 'multi' }];

  // The layout is written as a directory and altered; the archive is that
  // directory tarred up afterwards.
  const writeTampered = (label, set, alter) => {
    const dir = path.join(tmp, `${transport}-tampered-${label}`);
    images.writeOciLayout(dir, layoutOf(set));
    if (alter) alter(dir);
    return repack(dir);
  };
  const repack = (dir) => {
    if (transport === 'oci') return dir;
    fs.writeFileSync(`${dir}.tar`, images.makeTar(tarEntriesOf(dir)));
    return `${dir}.tar`;
  };
  const otherDigest = (d) => d.slice(0, -1) + (d.endsWith('0') ? '1' : '0');

  test(`${transport}: a config blob altered after writing is a digest mismatch`, async () => {
    const set = fresh('config');
    const file = writeTampered('config', set, (dir) => alterBlob(dir, set.image.configDigest, '"amd64"', '"amd65"'));
    const err = await rejectsWith(inspect(transport, file, { imageTag: 'one' }), E.InspectImageFailure, /digest mismatch/);
    assertInspectFailure(err, file);
  });

  test(`${transport}: a manifest blob altered after writing is a digest mismatch`, async () => {
    const set = fresh('manifest');
    const layer = set.image.layers[0].digest;
    const file = writeTampered('manifest', set, (dir) => alterBlob(dir, set.image.manifestDigest, layer, otherDigest(layer)));
    const err = await rejectsWith(inspect(transport, file, { imageTag: 'one' }), E.InspectImageFailure, /digest mismatch/);
    assertInspectFailure(err, file);
  });

  test(`${transport}: an index blob altered after writing is a digest mismatch`, async () => {
    const set = fresh('index');
    const file = writeTampered('index', set, (dir) => alterBlob(dir, set.index.indexDigest, '"arm64"', '"arm65"'));
    const err = await rejectsWith(inspect(transport, file, { imageTag: 'multi', architecture: 'amd64' }),
      E.InspectImageFailure, /digest mismatch/);
    assertInspectFailure(err, file);
  });

  test(`${transport}: a platform's config blob altered after writing is a digest mismatch`, async () => {
    const set = fresh('platform-config');
    const file = writeTampered('platform-config', set, (dir) => alterBlob(dir, set.b.configDigest, '"v8"', '"v9"'));
    await rejectsWith(inspect(transport, file, { imageTag: 'multi', architecture: 'arm64' }),
      E.InspectImageFailure, /digest mismatch/);
  });

  // The same checks when the intact bytes were inspected earlier in this
  // process: what was read before must not stand in for what is on disk now.
  test(`${transport}: a config blob altered after an earlier inspect is still a digest mismatch`, async () => {
    const set = fresh('config-again');
    const dir = path.join(tmp, `${transport}-tampered-config-again`);
    const file = writeTampered('config-again', set);
    assertOciImage(await inspect(transport, file, { imageTag: 'one' }), set.image);
    alterBlob(dir, set.image.configDigest, '"amd64"', '"amd65"');
    repack(dir);
    const err = await rejectsWith(inspect(transport, file, { imageTag: 'one' }), E.InspectImageFailure, /digest mismatch/);
    assertInspectFailure(err, file);
  });

  test(`${transport}: a copy of an inspected layout with an altered config blob is a digest mismatch`, async () => {
    const set = fresh('copy');
    const intact = writeTampered('copy-intact', set);
    assertOciImage(await inspect(transport, intact, { imageTag: 'one' }), set.image);
    const file = writeTampered('copy-altered', set, (dir) => alterBlob(dir, set.image.configDigest, '"amd64"', '"amd65"'));
    await rejectsWith(inspect(transport, file, { imageTag: 'one' }), E.InspectImageFailure, /digest mismatch/);
  });

  test(`${transport}: a platform manifest altered after an earlier inspect is still a digest mismatch`, async () => {
    const set = fresh('platform-again');
    const dir = path.join(tmp, `${transport}-tampered-platform-again`);
    const file = writeTampered('platform-again', set);
    assertOciImage(await inspect(transport, file, { imageTag: 'multi', architecture: 'arm64' }), set.b, { digest: set.index.indexDigest });
    const layer = set.b.layers[0].digest;
    alterBlob(dir, set.b.manifestDigest, layer, otherDigest(layer));
    repack(dir);
    await rejectsWith(inspect(transport, file, { imageTag: 'multi', architecture: 'arm64' }), E.InspectImageFailure, /digest mismatch/);
  });
}

test('oci-archive: a file that is not a tar is InspectImageFailure', async () => {
  const err = await rejectsWith(inspect('oci-archive', paths.notTar), E.InspectImageFailure);
  assertInspectFailure(err, paths.notTar);
});

test('oci: a directory that is not a layout is ImageNotFoundInRegistry', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'empty-'));
  const err = await rejectsWith(inspect('oci', dir), E.ImageNotFoundInRegistry);
  assertNotFound(err, dir);
});

// ---------------------------------------------------------------------------
// docker-archive:

test('docker-archive: two images, chosen by repo:tag spelled short and long', async () => {
  const file = paths.docker.several;
  for (const ref of ['foo:bar', 'docker.io/library/foo:bar', 'library/foo:bar']) {
    assertDockerArchiveImage(await inspect('docker-archive', file, { imageTag: ref }), fx.dockerA, 'docker.io/library/foo');
  }
  for (const ref of ['baz:qux', 'docker.io/library/baz:qux']) {
    assertDockerArchiveImage(await inspect('docker-archive', file, { imageTag: ref }), fx.dockerB, 'docker.io/library/baz');
  }
  assertDockerArchiveImage(await inspect('docker-archive', file, { imageTag: 'quay.io/team/app:1.0' }), fx.dockerB, 'quay.io/team/app');
});

test('docker-archive: arm64/v8 image reports its variant', async () => {
  const out = await inspect('docker-archive', paths.docker.single);
  assert.equal(out.Architecture, 'arm64');
  assert.equal(out.Variant, 'v8');
});

test('docker-archive: the only image is the default', async () => {
  assertDockerArchiveImage(await inspect('docker-archive', paths.docker.single), fx.dockerB, undefined);
  assertDockerArchiveImage(await inspect('docker-archive', paths.docker.single, { imageTag: 'only/one:latest' }),
    fx.dockerB, 'docker.io/only/one');
});

test('docker-archive: several images and no imageTag is an error', async () => {
  const err = await rejectsWith(inspect('docker-archive', paths.docker.several), E.ImageNotFoundInRegistry, /imageTag|choose|more than one/i);
  assertNotFound(err, paths.docker.several);
});

test('docker-archive: an unknown repo:tag is ImageNotFoundInRegistry', async () => {
  const file = paths.docker.several;
  for (const ref of ['foo:nope', 'nope:bar', 'quay.io/foo:bar', 'docker.io/library/app:1.0']) {
    const err = await rejectsWith(inspect('docker-archive', file, { imageTag: ref }), E.ImageNotFoundInRegistry);
    assertNotFound(err, file);
  }
});

test('docker-archive: a path that does not exist is ImageNotFoundInRegistry', async () => {
  const missing = path.join(tmp, 'no-such.docker.tar');
  const err = await rejectsWith(inspect('docker-archive', missing), E.ImageNotFoundInRegistry);
  assertNotFound(err, missing);
});

test('docker-archive: a file that is not a tar is InspectImageFailure', async () => {
  const err = await rejectsWith(inspect('docker-archive', paths.notTar), E.InspectImageFailure);
  assertInspectFailure(err, paths.notTar);
});

test('docker-archive: postData.imageName must equal imageName', async () => {
  const file = paths.docker.several;
  const err = await rejectsWith(
    k3.imageCore.inspectAnImage(file, { imageName: 'foo', containerImageTransport: 'docker-archive', imageTag: 'foo:bar' }),
    E.InvalidInspectParameters, /does not match/);
  assert.equal(err.statusCode, 422);
  assert.equal(err.details.imageName, file);
});
