'use strict';
// Checks the fixtures against an independent client (skopeo):
//   node test/helpers/selftest.js
// Exits non-zero if any check fails.

const { execFile } = require('node:child_process');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startRegistry, registryAvailable, whichSync } = require('./registry');
const images = require('./images');

const AUTH = { username: 'k3user', password: 'k3 secret!' };
const results = [];

async function check(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`PASS  ${name}`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL  ${name}\n      ${String(err.stack || err).split('\n').join('\n      ')}`);
  }
}

// Runs skopeo and returns stdout; rejects with stderr on a non-zero exit.
function skopeo(args) {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { timeout: 60000, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`skopeo ${args.join(' ')} failed: ${stderr.toString().trim() || err.message}`));
        } else {
          resolve(stdout);
        }
      });
  });
}

async function inspect(ref, extra = [], global = []) {
  return JSON.parse((await skopeo([...global, 'inspect', ...extra, ref])).toString());
}

function registryArgs(registry) {
  const args = ['--tls-verify=false'];
  if (registry.auth) args.push('--creds', `${registry.auth.username}:${registry.auth.password}`);
  return args;
}

// What `skopeo inspect` (not --raw) should report for an image we built.
function assertInspected(info, image, { layers = image.layers.map((l) => l.digest) } = {}) {
  assert.equal(info.Architecture, image.config.architecture);
  assert.equal(info.Os, image.config.os);
  // skopeo 1.9.3 has no Variant in its inspect output; the layers tell
  // the arm64/v8 and amd64 images apart instead.
  assert.deepEqual(info.Layers, layers);
  assert.deepEqual(info.Env, image.config.config.Env);
  assert.deepEqual(info.Labels || {}, image.config.config.Labels || {});
  assert.equal(info.Created, image.config.created);
}

function buildFixtures() {
  const ociImage = images.makeImage({
    layers: [
      [{ path: 'etc', type: 'dir' }, { path: 'etc/hello.txt', content: 'hello\n' }],
      [
        { path: 'bin', type: 'dir' },
        { path: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
        { path: 'bin/alias', type: 'symlink', linkname: 'tool' },
      ],
    ],
    layerAnnotations: [undefined, { 'org.example.layer': 'second' }],
    author: 'selftest',
  });
  const dockerImage = images.makeImage({
    mediaType: 'docker',
    config: {
      Env: ['PATH=/usr/bin:/bin', 'GREETING=hello world'],
      Labels: { 'org.opencontainers.image.title': 'k3 selftest', maintainer: 'nobody' },
      Cmd: ['/bin/echo', 'hi'],
    },
  });
  const amd64 = images.makeImage({ layers: [[{ path: 'arch', content: 'amd64\n' }]] });
  const arm64 = images.makeImage({
    architecture: 'arm64',
    variant: 'v8',
    layers: [[{ path: 'arch', content: 'arm64\n' }]],
  });
  const ociIndex = images.makeIndex([amd64, arm64]);

  const dAmd64 = images.makeImage({ mediaType: 'docker', layers: [[{ path: 'a', content: 'x' }]] });
  const dArm64 = images.makeImage({
    mediaType: 'docker', architecture: 'arm64', variant: 'v8', layers: [[{ path: 'a', content: 'y' }]],
  });
  const dockerList = images.makeIndex([dAmd64, dArm64], { mediaType: 'docker' });

  return { ociImage, dockerImage, amd64, arm64, ociIndex, dAmd64, dArm64, dockerList };
}

async function registryChecks(open, authed, fx, tmp) {
  const openArgs = registryArgs(open);
  const authArgs = registryArgs(authed);

  await check('push 2-layer OCI image to open registry', () =>
    images.pushImage(open, 'selftest/oci', 'v1', fx.ociImage));
  await check('skopeo inspect OCI image', async () => {
    const info = await inspect(`docker://${open.host}/selftest/oci:v1`, openArgs);
    assert.equal(info.Digest, fx.ociImage.manifestDigest);
    assertInspected(info, fx.ociImage);
  });
  await check('skopeo inspect --raw OCI image returns our exact bytes', async () => {
    const raw = await skopeo(['inspect', '--raw', ...openArgs, `docker://${open.host}/selftest/oci:v1`]);
    assert.ok(raw.equals(fx.ociImage.manifestBytes), 'manifest bytes differ');
    const config = await skopeo(['inspect', '--config', '--raw', ...openArgs,
      `docker://${open.host}/selftest/oci:v1`]);
    assert.ok(config.equals(fx.ociImage.configBytes), 'config bytes differ');
  });
  await check('skopeo copy OCI image (downloads and verifies every blob)', async () => {
    const policy = path.join(tmp, 'policy.json');
    fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await skopeo(['--policy', policy, 'copy', '--src-tls-verify=false',
      `docker://${open.host}/selftest/oci:v1`, `dir:${path.join(tmp, 'copied')}`]);
  });
  await check('push by digest, then HEAD finds the blobs', async () => {
    await images.pushImage(open, 'selftest/bydigest', fx.ociImage.manifestDigest, fx.ociImage);
    // --no-tags: the registry answers 404 to tags/list for a repo without tags.
    const info = await inspect(`docker://${open.host}/selftest/bydigest@${fx.ociImage.manifestDigest}`,
      ['--no-tags', ...openArgs]);
    assert.equal(info.Digest, fx.ociImage.manifestDigest);
    assert.ok(await images.blobExists(open, 'selftest/bydigest', fx.ociImage.configDigest));
  });

  await check('push docker image to auth registry', () =>
    images.pushImage(authed, 'selftest/docker', 'latest', fx.dockerImage));
  await check('auth registry rejects anonymous push and skopeo without creds', async () => {
    await assert.rejects(images.putBlob(authed.host, 'selftest/docker', Buffer.from('x')), /401/);
    await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--no-creds',
      `docker://${authed.host}/selftest/docker:latest`]));
  });
  await check('skopeo inspect --creds docker image (labels, env, cmd)', async () => {
    const info = await inspect(`docker://${authed.host}/selftest/docker:latest`, authArgs);
    assert.equal(info.Digest, fx.dockerImage.manifestDigest);
    assertInspected(info, fx.dockerImage);
    assert.equal(info.Labels['org.opencontainers.image.title'], 'k3 selftest');
    const config = JSON.parse(await skopeo(['inspect', '--config', ...authArgs,
      `docker://${authed.host}/selftest/docker:latest`]));
    assert.deepEqual(config.config.Cmd, ['/bin/echo', 'hi']);
  });
  await check('skopeo inspect --raw docker image returns our exact bytes', async () => {
    const raw = await skopeo(['inspect', '--raw', ...authArgs, `docker://${authed.host}/selftest/docker:latest`]);
    assert.ok(raw.equals(fx.dockerImage.manifestBytes));
    assert.equal(JSON.parse(raw).mediaType, images.MEDIA.docker.manifest);
  });

  for (const [label, repo, index, amd, arm] of [
    ['OCI index', 'selftest/multi', fx.ociIndex, fx.amd64, fx.arm64],
    ['docker manifest list', 'selftest/dlist', fx.dockerList, fx.dAmd64, fx.dArm64],
  ]) {
    const ref = `docker://${open.host}/${repo}:v1`;
    await check(`push 2-platform ${label}`, () => images.pushIndex(open, repo, 'v1', index, [amd, arm]));
    await check(`skopeo inspect --raw ${label} returns our exact bytes`, async () => {
      const raw = await skopeo(['inspect', '--raw', ...openArgs, ref]);
      assert.ok(raw.equals(index.indexBytes));
      assert.equal(JSON.parse(raw).manifests.length, 2);
    });
    await check(`skopeo inspect ${label} resolves amd64 and arm64/v8`, async () => {
      const a = await inspect(ref, openArgs, ['--override-arch', 'amd64']);
      assertInspected(a, amd);
      const b = await inspect(ref, openArgs, ['--override-arch', 'arm64', '--override-variant', 'v8']);
      assertInspected(b, arm);
    });
  }
}

async function fileChecks(fx, tmp) {
  const entries = [
    { image: fx.ociImage, refName: 'v1' },
    { index: fx.ociIndex, images: [fx.amd64, fx.arm64], refName: 'multi' },
  ];

  const layoutDir = path.join(tmp, 'layout');
  await check('skopeo inspect oci:DIR:v1 and oci:DIR:multi', async () => {
    images.writeOciLayout(layoutDir, entries);
    const info = await inspect(`oci:${layoutDir}:v1`);
    assert.equal(info.Digest, fx.ociImage.manifestDigest);
    assertInspected(info, fx.ociImage);
    const arm = await inspect(`oci:${layoutDir}:multi`, [], ['--override-arch', 'arm64', '--override-variant', 'v8']);
    assertInspected(arm, fx.arm64);
    const raw = await skopeo(['inspect', '--raw', `oci:${layoutDir}:multi`]);
    assert.ok(raw.equals(fx.ociIndex.indexBytes));
  });

  const archive = path.join(tmp, 'image.oci.tar');
  await check('skopeo inspect oci-archive:PATH:v1', async () => {
    images.writeOciArchive(archive, entries);
    const info = await inspect(`oci-archive:${archive}:v1`);
    assert.equal(info.Digest, fx.ociImage.manifestDigest);
    assertInspected(info, fx.ociImage);
  });

  const dockerTar = path.join(tmp, 'image.docker.tar');
  await check('skopeo inspect docker-archive:PATH', async () => {
    images.writeDockerArchive(dockerTar, [
      { image: fx.dockerImage, repoTags: ['127.0.0.1:5000/selftest/docker:latest'] },
    ]);
    const info = await inspect(`docker-archive:${dockerTar}`);
    // docker-archive layers are the uncompressed layer.tar files.
    assertInspected(info, fx.dockerImage, { layers: fx.dockerImage.layers.map((l) => l.diffId) });
    // skopeo reports no RepoTags for archives, but it can select by one.
    const byTag = await inspect(`docker-archive:${dockerTar}:127.0.0.1:5000/selftest/docker:latest`);
    assert.deepEqual(byTag.Layers, info.Layers);
    await assert.rejects(inspect(`docker-archive:${dockerTar}:127.0.0.1:5000/selftest/docker:nope`));
  });
}

async function main() {
  const reason = registryAvailable();
  if (reason) {
    console.log(`SKIP  ${reason}`);
    return 0;
  }
  if (!whichSync('skopeo')) throw new Error('skopeo is needed for the selftest');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-selftest-'));
  const fx = buildFixtures();
  let open;
  let authed;
  try {
    [open, authed] = await Promise.all([startRegistry(), startRegistry({ auth: AUTH })]);
    console.log(`registries: open ${open.host}, auth ${authed.host}`);
    await registryChecks(open, authed, fx, tmp);
    await fileChecks(fx, tmp);
  } finally {
    await Promise.all([open?.stop(), authed?.stop()]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length - failed.length}/${results.length} checks passed`);
  return failed.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(err);
  process.exitCode = 1;
});
