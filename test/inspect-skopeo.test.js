'use strict';
// skopeo as an oracle: for every image we build, `skopeo inspect` and
// inspectAnImage must agree on every field the two report, over a real
// docker-registry and over the three local transports (oci, oci-archive,
// docker-archive).
//
// skopeo 1.9.3 (Debian) prints neither LayersData nor Variant. Where skopeo
// has no such field, the expectation still comes from skopeo:
//   - LayersData from the manifest skopeo resolves (`inspect --raw`, or for a
//     multi-arch image the instance `skopeo copy` picks for the platform),
//     built the way newer skopeo builds it (mediaType, digest, size,
//     annotations of each layer descriptor);
//   - Variant from the image config skopeo reads (`inspect --config`);
//   - PlatformDigest (ours only) is the digest of that resolved manifest.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const skip = need(registryAvailable() || (whichSync('skopeo') ? null : 'skopeo is not installed'));
if (skip) console.log(`# skipping skopeo oracle tests: ${skip}`);

const k3 = new K3Core();
let reg;
let tmp;
let policy;
const fx = {};
const paths = {};

// Fields `skopeo inspect` and inspectAnImage share, plus our PlatformDigest.
const FIELDS = ['Name', 'Digest', 'PlatformDigest', 'RepoTags', 'Created', 'DockerVersion', 'Labels',
  'Architecture', 'Variant', 'Os', 'Layers', 'LayersData', 'Env'];

// ---------------------------------------------------------------------------
// skopeo

function skopeo(args) {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { timeout: 60000, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${stderr.toString().trim() || err.message}`));
        else resolve(stdout);
      });
  });
}

// What skopeo says about `ref` (a full skopeo image reference), in our
// output's shape; `global` are skopeo's global flags (--override-arch ...).
async function oracle(ref, global = []) {
  const remote = ref.startsWith('docker://');
  const tls = remote ? ['--tls-verify=false'] : [];
  const info = JSON.parse(await skopeo([...global, 'inspect', ...tls, ref]));
  const rawBytes = await skopeo([...global, 'inspect', '--raw', ...tls, ref]);
  let instanceBytes = rawBytes;
  if (Array.isArray(JSON.parse(rawBytes).manifests)) {
    // A multi-arch image: let skopeo pick the instance for the platform.
    const dest = fs.mkdtempSync(path.join(tmp, 'copy-'));
    await skopeo([...global, '--policy', policy, 'copy', ...(remote ? ['--src-tls-verify=false'] : []),
      ref, `dir:${dest}`]);
    instanceBytes = fs.readFileSync(path.join(dest, 'manifest.json'));
  }
  const instance = JSON.parse(instanceBytes);
  const config = JSON.parse(await skopeo([...global, 'inspect', '--config', ...tls, ref]));

  const expected = {};
  for (const key of FIELDS) if (key in info) expected[key] = info[key];
  expected.PlatformDigest = images.sha256(instanceBytes);
  if (!('LayersData' in info)) {
    expected.LayersData = instance.layers.map((l) => ({
      MIMEType: l.mediaType, Digest: l.digest, Size: l.size, Annotations: l.annotations ?? null,
    }));
  }
  if (!('Variant' in info) && config.variant) expected.Variant = config.variant;
  return normalise(expected);
}

// Our output restricted to the shared fields: a field either side has is
// compared, so one we add or drop shows up in the diff.
function project(ours, expected) {
  const out = {};
  for (const key of FIELDS) if (key in ours || key in expected) out[key] = ours[key];
  return normalise(out);
}

function normalise(o) {
  if (Array.isArray(o.RepoTags)) o.RepoTags = [...o.RepoTags].sort();
  return o;
}

async function compare(skopeoRef, global, ourName, postData) {
  const expected = await oracle(skopeoRef, global);
  const ours = await k3.imageCore.inspectAnImage(ourName, { imageName: ourName, ...postData });
  assert.deepEqual(project(ours, expected), expected,
    `inspectAnImage(${JSON.stringify(ourName)}, ${JSON.stringify(postData)}) vs skopeo ${[...global, skopeoRef].join(' ')}`);
  return ours;
}

// Registry image `repo:tag` through both.
function compareRemote(repo, tag, { global = [], platform = {} } = {}) {
  const name = `${reg.host}/${repo}`;
  return compare(`docker://${name}:${tag}`, global, name, { imageTag: tag, listTags: true, ...platform });
}

const ARM64 = { global: ['--override-arch', 'arm64', '--override-variant', 'v8'], platform: { architecture: 'arm64', variant: 'v8' } };
const ARMV7 = { global: ['--override-arch', 'arm', '--override-variant', 'v7'], platform: { architecture: 'arm', variant: 'v7' } };

// ---------------------------------------------------------------------------
// fixtures

// makeImage always writes `created`; this rebuilds an image without it.
function withoutCreated(image) {
  const config = { ...image.config };
  delete config.created;
  config.history = config.history.map(({ created_by: createdBy }) => ({ created_by: createdBy }));
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = images.sha256(configBytes);
  const manifest = { ...image.manifest, config: { ...image.manifest.config, digest: configDigest, size: configBytes.length } };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { ...image, manifest, manifestBytes, manifestDigest: images.sha256(manifestBytes), config, configBytes, configDigest };
}

function buildFixtures() {
  fx.single = images.makeImage({ layers: [[{ path: 'hello.txt', content: 'hello' }]], mediaType: 'oci' });
  fx.many = images.makeImage({
    layers: Array.from({ length: 5 }, (_, i) => [{ path: `layer${i}/file`, content: `layer ${i}` }]),
    mediaType: 'docker',
  });
  fx.labelled = images.makeImage({
    layers: [
      [{ path: 'etc/app.conf', content: 'x=1' }],
      [{ path: 'etc/other.conf', content: 'y=2' }],
      [{ path: 'etc/third.conf', content: 'z=3' }],
    ],
    config: {
      Labels: { 'org.opencontainers.image.title': 'app', maintainer: 'k3', empty: '' },
      Env: ['PATH=/bin', 'A=1=2', 'EMPTY=', 'SPACED=a b c'],
    },
    layerAnnotations: [{ 'org.example.note': 'first' }, undefined, { 'org.example.a': '1', 'org.example.b': '2' }],
    annotations: { 'org.example.manifest': 'yes' },
    mediaType: 'oci',
  });
  fx.amd64 = images.makeImage({ layers: [[{ path: 'arch', content: 'amd64' }]], architecture: 'amd64' });
  fx.arm64 = images.makeImage({ layers: [[{ path: 'arch', content: 'arm64' }]], architecture: 'arm64', variant: 'v8' });
  fx.armv7 = images.makeImage({ layers: [[{ path: 'arch', content: 'armv7' }]], architecture: 'arm', variant: 'v7' });
  fx.index = images.makeIndex([fx.amd64, fx.arm64, fx.armv7], { mediaType: 'oci' });
  fx.dAmd64 = images.makeImage({ layers: [[{ path: 'x', content: 'd-amd64' }]], mediaType: 'docker' });
  fx.dArm64 = images.makeImage({ layers: [[{ path: 'x', content: 'd-arm64' }]], mediaType: 'docker', architecture: 'arm64', variant: 'v8' });
  fx.dArmv7 = images.makeImage({ layers: [[{ path: 'x', content: 'd-armv7' }]], mediaType: 'docker', architecture: 'arm', variant: 'v7' });
  fx.dockerList = images.makeIndex([fx.dAmd64, fx.dArm64, fx.dArmv7], { mediaType: 'docker' });
  // No Labels and no Env keys in the config at all.
  fx.bare = images.makeImage({ layers: [[{ path: 'b', content: 'bare' }]], config: { Labels: undefined, Env: undefined }, mediaType: 'oci' });
  fx.bareDocker = images.makeImage({ layers: [[{ path: 'b', content: 'bare-d' }]], config: { Labels: undefined, Env: undefined }, mediaType: 'docker' });
  // No `created` in the config.
  fx.noCreated = withoutCreated(images.makeImage({ layers: [[{ path: 'n', content: 'nc' }]], mediaType: 'oci' }));
  fx.noCreatedDocker = withoutCreated(images.makeImage({ layers: [[{ path: 'n', content: 'nc-d' }]], mediaType: 'docker' }));
  assert.equal('created' in JSON.parse(fx.noCreated.configBytes), false);
  assert.equal('Labels' in JSON.parse(fx.bare.configBytes).config, false);
  assert.equal('Env' in JSON.parse(fx.bare.configBytes).config, false);
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-skopeo-'));
  policy = path.join(tmp, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  buildFixtures();

  reg = await startRegistry();
  await images.pushImage(reg, 'test/single', 'latest', fx.single);
  await images.pushImage(reg, 'test/single', 'v1', fx.single);
  await images.pushImage(reg, 'test/many', 'v5', fx.many);
  await images.pushImage(reg, 'test/labelled', '1.0', fx.labelled);
  await images.pushImage(reg, 'test/labelled', '1.0.1', fx.labelled);
  await images.pushIndex(reg, 'test/multi', 'v1', fx.index, [fx.amd64, fx.arm64, fx.armv7]);
  await images.pushIndex(reg, 'test/dockerlist', 'v1', fx.dockerList, [fx.dAmd64, fx.dArm64, fx.dArmv7]);
  await images.pushImage(reg, 'test/bare', 'oci', fx.bare);
  await images.pushImage(reg, 'test/bare', 'docker', fx.bareDocker);
  await images.pushImage(reg, 'test/nocreated', 'oci', fx.noCreated);
  await images.pushImage(reg, 'test/nocreated', 'docker', fx.noCreatedDocker);

  // skopeo 1.9.3 does not see docker-media-type images in an OCI layout, so
  // the layouts hold the OCI images only.
  const ociEntries = [
    { image: fx.single, refName: 'single' },
    { image: fx.labelled, refName: 'labelled' },
    { image: fx.bare, refName: 'bare' },
    { image: fx.noCreated, refName: 'nocreated' },
    { index: fx.index, images: [fx.amd64, fx.arm64, fx.armv7], refName: 'multi' },
  ];
  paths.layout = images.writeOciLayout(path.join(tmp, 'layout'), ociEntries);
  paths.ociArchive = images.writeOciArchive(path.join(tmp, 'image.oci.tar'), ociEntries);

  // One image per archive (read without a reference) ...
  for (const key of ['many', 'labelled', 'bareDocker', 'noCreatedDocker', 'single']) {
    paths[`docker-${key}`] = images.writeDockerArchive(path.join(tmp, `${key}.docker.tar`),
      [{ image: fx[key], repoTags: [`k3test/${key.toLowerCase()}:latest`] }]);
  }
  paths['docker-untagged'] = images.writeDockerArchive(path.join(tmp, 'untagged.docker.tar'), [{ image: fx.many, repoTags: [] }]);
  // ... and several images in one, chosen by repo:tag.
  paths.dockerMulti = images.writeDockerArchive(path.join(tmp, 'multi.docker.tar'), [
    { image: fx.many, repoTags: ['foo:bar'] },
    { image: fx.labelled, repoTags: ['docker.io/library/baz:qux', '127.0.0.1:5000/team/app:1.0'] },
    { image: fx.bareDocker, repoTags: ['quay.io/some/bare:v2'] },
  ]);
});

after(async () => {
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// docker:// (registry)

test('registry: single-layer OCI image', { skip }, async () => {
  const ours = await compareRemote('test/single', 'v1');
  assert.deepEqual([...ours.RepoTags].sort(), ['latest', 'v1']);
});

test('registry: 5-layer Docker v2 image', { skip }, async () => {
  const ours = await compareRemote('test/many', 'v5');
  assert.equal(ours.Layers.length, 5);
});

test('registry: labels, env and layer annotations', { skip }, async () => {
  const ours = await compareRemote('test/labelled', '1.0');
  assert.deepEqual(ours.LayersData.map((l) => l.Annotations),
    [{ 'org.example.note': 'first' }, null, { 'org.example.a': '1', 'org.example.b': '2' }]);
});

test('registry: 3-platform OCI index, host platform', { skip }, async () => {
  await compareRemote('test/multi', 'v1');
});

test('registry: 3-platform OCI index, arm64/v8', { skip }, async () => {
  const ours = await compareRemote('test/multi', 'v1', ARM64);
  assert.equal(ours.Digest, fx.index.indexDigest);
  assert.equal(ours.PlatformDigest, fx.arm64.manifestDigest);
});

test('registry: 3-platform OCI index, arm/v7', { skip }, async () => {
  const ours = await compareRemote('test/multi', 'v1', ARMV7);
  assert.equal(ours.PlatformDigest, fx.armv7.manifestDigest);
});

test('registry: Docker manifest list, host platform, arm64/v8 and arm/v7', { skip }, async () => {
  await compareRemote('test/dockerlist', 'v1');
  const arm64 = await compareRemote('test/dockerlist', 'v1', ARM64);
  assert.equal(arm64.PlatformDigest, fx.dArm64.manifestDigest);
  const armv7 = await compareRemote('test/dockerlist', 'v1', ARMV7);
  assert.equal(armv7.PlatformDigest, fx.dArmv7.manifestDigest);
});

test('registry: no Labels and no Env in the config (OCI)', { skip }, async () => {
  await compareRemote('test/bare', 'oci');
});

test('registry: no Labels and no Env in the config (Docker v2)', { skip }, async () => {
  await compareRemote('test/bare', 'docker');
});

test('registry: no created in the config (OCI)', { skip }, async () => {
  await compareRemote('test/nocreated', 'oci');
});

test('registry: no created in the config (Docker v2)', { skip }, async () => {
  await compareRemote('test/nocreated', 'docker');
});

// ---------------------------------------------------------------------------
// oci: and oci-archive:

for (const [transport, key] of [['oci', 'layout'], ['oci-archive', 'ociArchive']]) {
  const local = (ref, { global = [], platform = {} } = {}) =>
    compare(`${transport}:${paths[key]}:${ref}`, global, paths[key],
      { containerImageTransport: transport, imageTag: ref, ...platform });

  for (const ref of ['single', 'labelled', 'bare', 'nocreated']) {
    test(`${transport}: ${ref}`, { skip }, async () => {
      await local(ref);
    });
  }

  test(`${transport}: 3-platform index, host platform, arm64/v8 and arm/v7`, { skip }, async () => {
    const host = await local('multi');
    assert.equal(host.Digest, fx.index.indexDigest);
    const arm64 = await local('multi', ARM64);
    assert.equal(arm64.PlatformDigest, fx.arm64.manifestDigest);
    const armv7 = await local('multi', ARMV7);
    assert.equal(armv7.PlatformDigest, fx.armv7.manifestDigest);
  });
}

// ---------------------------------------------------------------------------
// docker-archive:

for (const key of ['many', 'labelled', 'bareDocker', 'noCreatedDocker', 'single', 'untagged']) {
  test(`docker-archive: one image, no reference (${key})`, { skip }, async () => {
    const file = paths[`docker-${key}`];
    await compare(`docker-archive:${file}`, [], file, { containerImageTransport: 'docker-archive' });
  });
}

for (const ref of ['foo:bar', 'docker.io/library/foo:bar', 'baz:qux', 'docker.io/library/baz:qux',
  '127.0.0.1:5000/team/app:1.0', 'quay.io/some/bare:v2']) {
  test(`docker-archive: several images, chosen by ${ref}`, { skip }, async () => {
    const file = paths.dockerMulti;
    await compare(`docker-archive:${file}:${ref}`, [], file, { containerImageTransport: 'docker-archive', imageTag: ref });
  });
}

test('docker-archive: a single image chosen by its repo:tag', { skip }, async () => {
  const file = paths['docker-many'];
  await compare(`docker-archive:${file}:k3test/many:latest`, [], file,
    { containerImageTransport: 'docker-archive', imageTag: 'k3test/many:latest' });
});
