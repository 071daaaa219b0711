'use strict';
// Where users compare k3-core with docker, it answers as docker does. Each
// test does the same thing to the same image in our store and in a real
// Docker daemon of the test's own (helpers/docker.js): docker rmi's untag
// and conflict rules, docker commit --change, pulling a config docker
// accepts, refusing names docker refuses before any network, and resolving
// containers by exact name or ID prefix.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const { startDocker, dockerUnavailable } = require('./helpers/docker');
const { need } = require('./helpers/need');

const dockerSkip = need(dockerUnavailable());
if (dockerSkip) console.log(`# skipping the comparisons with docker: ${dockerSkip}`);
const registrySkip = dockerSkip || need(registryAvailable());

let tmp;
let k3;
let dockerd;
let reg;

async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}
async function dockerFailure(...args) {
  return dockerd.docker(...args).then((out) => assert.fail(`docker ${args.join(' ')} succeeded: ${out}`), (e) => e.message);
}

// A small image of its own (distinct content, so a distinct ID).
function imageWith(label, config = {}) {
  return images.makeImage({ mediaType: 'docker', layers: [[{ path: `${label}.txt`, content: `${label} ${crypto.randomUUID()}` }]], config });
}

// Loads the same archive, with the same names, into our store and docker.
async function loadBoth(image, repoTags) {
  const file = path.join(tmp, `${crypto.randomUUID()}.tar`);
  images.writeDockerArchive(file, [{ image, repoTags }]);
  await k3.imageCore.loadImage(file);
  if (dockerd) await dockerd.docker('load', '-i', file);
  return image.configDigest;
}

// docker spells docker.io names short; we keep the full name.
const familiar = (n) => n.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
const k3Tags = async (id) => ((await k3.imageCore.listImages()).find((i) => i.Id === id)?.RepoTags ?? null);
async function dockerTags(id) {
  const out = await dockerd.docker('image', 'inspect', '--format', '{{json .RepoTags}}', id).catch(() => null);
  return out === null ? null : JSON.parse(out);
}
const rmiLines = (out) => out.trim().split('\n').filter(Boolean);

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-parity-'));
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  if (!dockerSkip) dockerd = await startDocker();
  if (!registrySkip) reg = await startRegistry();
});

after(async () => {
  if (dockerd) await dockerd.stop();
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('pull accepts a config whose Cmd and Entrypoint are strings, as docker pull does', { skip: registrySkip }, async () => {
  const image = imageWith('string-cmd');
  const config = JSON.parse(JSON.stringify(image.config));
  config.config.Cmd = '--serve now';
  config.config.Entrypoint = '/bin/app';
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = images.sha256(configBytes);
  const manifest = { ...image.manifest, config: { ...image.manifest.config, digest: configDigest, size: configBytes.length } };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  await images.pushImage(reg, 'parity/stringcmd', '1', { ...image, configBytes, manifestBytes, manifestDigest: images.sha256(manifestBytes) });
  const ref = `${reg.url.replace('http://', '')}/parity/stringcmd`;

  const pulled = await k3.imageCore.pullAnImage(ref, '1', { tlsVerify: false });
  await dockerd.docker('pull', `${ref}:1`);
  assert.equal(pulled.Id, configDigest, 'the config is stored as served: the image ID does not change');
  assert.equal((await dockerd.docker('image', 'inspect', '--format', '{{.Id}}', `${ref}:1`)).trim(), configDigest);

  const created = await k3.containerCore.createContainer(`${ref}:1`, { name: 'string-cmd' });
  await dockerd.docker('create', '--name', 'string-cmd', `${ref}:1`);
  const theirs = JSON.parse(await dockerd.docker('container', 'inspect', '--format', '{{json .Config}}', 'string-cmd'));
  assert.deepEqual(theirs.Entrypoint, ['/bin/app']);
  assert.deepEqual(theirs.Cmd, ['--serve now']);
  assert.deepEqual(created.Command, [...theirs.Entrypoint, ...theirs.Cmd]);
});
