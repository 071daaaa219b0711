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

test('removeImage by name untags only that name when the image has others, as docker rmi', { skip: dockerSkip }, async () => {
  const id = await loadBoth(imageWith('two-tags'), ['app:v1', 'app:v2']);
  const ours = await k3.imageCore.removeImage('app:v1');
  const theirs = rmiLines(await dockerd.docker('rmi', 'app:v1'));
  assert.deepEqual(theirs, ['Untagged: app:v1']);
  assert.deepEqual(ours, { Untagged: ['docker.io/library/app:v1'], Deleted: [] });
  assert.deepEqual((await k3Tags(id)).map(familiar), await dockerTags(id));
  assert.deepEqual(await dockerTags(id), ['app:v2']);

  // The last name goes with the image, in both.
  const last = await k3.imageCore.removeImage('app:v2');
  const theirLast = rmiLines(await dockerd.docker('rmi', 'app:v2'));
  assert.deepEqual(last.Untagged.map(familiar), theirLast.filter((l) => l.startsWith('Untagged: ')).map((l) => l.slice(10)));
  assert.ok(last.Deleted.includes(id) && theirLast.includes(`Deleted: ${id}`));
  assert.equal(await k3Tags(id), null);
  assert.equal(await dockerTags(id), null);
});

test('removeImage by ID of an image with several names is refused without force, as docker rmi', { skip: dockerSkip }, async () => {
  const id = await loadBoth(imageWith('by-id'), ['byid:1', 'other/byid:2']);
  for (const ref of [id, id.slice(7), id.slice(7, 19)]) {
    const ours = await failure(k3.imageCore.removeImage(ref));
    assert.ok(ours instanceof K3Core.errors.ImageHasSeveralNames, `${ref}: ${ours.name}: ${ours.message}`);
    assert.equal(ours.statusCode, 409);
    assert.match(await dockerFailure('rmi', ref), /referenced in multiple repositories/);
  }
  assert.deepEqual((await k3Tags(id)).map(familiar).sort(), (await dockerTags(id)).sort());

  const ours = await k3.imageCore.removeImage(id.slice(7, 19), { force: true });
  const theirs = rmiLines(await dockerd.docker('rmi', '-f', id.slice(7, 19)));
  assert.deepEqual(ours.Untagged.map(familiar).sort(), theirs.filter((l) => l.startsWith('Untagged: ')).map((l) => l.slice(10)).sort());
  assert.ok(ours.Deleted.includes(id) && theirs.includes(`Deleted: ${id}`));
  assert.equal(await k3Tags(id), null);
  assert.equal(await dockerTags(id), null);
});

test('removeImage of the last name of an image a container uses is refused, as docker rmi', { skip: dockerSkip }, async () => {
  const id = await loadBoth(imageWith('used'), ['used:1']);
  await k3.containerCore.createContainer('used:1', { name: 'uses-it' });
  await dockerd.docker('create', '--name', 'uses-it', 'used:1');
  const ours = await failure(k3.imageCore.removeImage('used:1'));
  assert.ok(ours instanceof K3Core.errors.ImageInUse, ours.name);
  assert.match(await dockerFailure('rmi', 'used:1'), /container .* is using its referenced image/);
  assert.deepEqual((await k3Tags(id)).map(familiar), await dockerTags(id));
});

// The config fields docker commit --change can set.
const CHANGED_FIELDS = ['Env', 'Cmd', 'Entrypoint', 'ExposedPorts', 'Labels', 'Volumes', 'WorkingDir', 'User', 'OnBuild', 'Healthcheck'];
const empty = (v) => v === undefined || v === null || v === '' || (typeof v === 'object' && Object.keys(v).length === 0);
const changedFields = (config) => Object.fromEntries(CHANGED_FIELDS.map((k) => [k, empty(config[k]) ? null : config[k]]));

test('commitContainer applies changes as docker commit --change does', { skip: dockerSkip }, async () => {
  await loadBoth(imageWith('commit-base', {
    Env: ['PATH=/bin', 'HOME=/root'], Cmd: ['/bin/sh'], WorkingDir: '/w', Labels: { base: 'yes' },
    Healthcheck: { Test: ['CMD', 'true'], Interval: 30000000000, Retries: 3 },
  }), ['commit-base:1']);
  await k3.containerCore.createContainer('commit-base:1', { name: 'changes' });
  await dockerd.docker('create', '--name', 'changes', 'commit-base:1');
  const accepted = [
    ['ENV A=1 B=2', 'ENV C $A-$B'],
    ['ENV B=$PATH:/x C=${HOME}', 'LABEL "a b"=c d=e x=$HOME', 'USER $HOME'],
    ['ENTRYPOINT ["/bin/app"]'],
    ['CMD ["y"]', 'ENTRYPOINT /bin/app --flag'],
    ['CMD echo $HOME', 'WORKDIR rel', 'WORKDIR ../up'],
    ['EXPOSE 8000-8002/udp 9000', 'EXPOSE 1.2.3.4:80:81', 'VOLUME ["/a","/b"]', 'VOLUME /c /d'],
    ['ONBUILD run echo hi', 'HEALTHCHECK --timeout=5s CMD curl -f http://localhost/'],
    ['ENV A=1 \\', 'B=2'],
    ['ENTRYPOINT []', 'CMD []'],
  ];
  for (const [i, changes] of accepted.entries()) {
    const ours = await k3.containerCore.commitContainer('changes', { repository: 'committed', tag: `c${i}`, changes })
      .catch((e) => assert.fail(`${JSON.stringify(changes)}: ${e.createFullMessage()}`));
    await dockerd.docker('commit', ...changes.flatMap((c) => ['--change', c]), 'changes', `committed:c${i}`);
    const theirs = JSON.parse(await dockerd.docker('image', 'inspect', '--format', '{{json .Config}}', `committed:c${i}`));
    const ourConfig = JSON.parse(fs.readFileSync(path.join(k3.root, 'blobs', 'sha256', ours.Id.slice(7)), 'utf8')).config;
    assert.deepEqual(changedFields(ourConfig), changedFields(theirs), JSON.stringify(changes));
  }
  for (const change of ['RUN true', 'STOPSIGNAL SIGINT', 'MAINTAINER me', 'ARG X', '', 'ENV', 'EXPOSE 80/xyz', 'EXPOSE 70000', 'ONBUILD ONBUILD RUN x']) {
    const ours = await failure(k3.containerCore.commitContainer('changes', { changes: [change] }));
    assert.ok(ours instanceof K3Core.errors.InvalidCommitContainerParameters, `${JSON.stringify(change)}: ${ours.name}`);
    await dockerFailure('commit', '--change', change, 'changes', 'refused:1');
  }
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

// Names docker refuses as "invalid reference format"; a client that let
// them through would send ../../etc to a registry named "..".
const HOSTILE = ['../../etc', '..', 'a//b', '-a', '.hidden/x', 'x/.', 'a___b'];

test('hostile image names are refused by every call, before any network, as docker refuses them', { skip: dockerSkip }, async () => {
  const id = await loadBoth(imageWith('hostile-target'), ['hostile-target:1']);
  const out = path.join(tmp, 'hostile');
  fs.mkdirSync(out);
  for (const bad of HOSTILE) {
    const calls = {
      InvalidPullParameters: () => k3.imageCore.pullAnImage(bad, 'latest'),
      InvalidCopyImageParameters: () => k3.imageCore.copyImage(bad, 'latest', path.join(out, 'layout')),
      InvalidSaveImageParameters: () => k3.imageCore.saveImage(bad, path.join(out, 'x.tar'), { source: 'registry' }),
      InvalidPushParameters: () => k3.imageCore.pushAnImage('hostile-target:1', bad),
      InvalidTagImageParameters: () => k3.imageCore.tagImage('hostile-target:1', bad),
      InvalidCreateContainerParameters: () => k3.containerCore.createContainer(bad),
      InvalidInspectParameters: () => k3.imageCore.inspectAnImage(bad, { imageName: bad }),
    };
    // The store's images by a name docker refuses: refused too (docker save,
    // push, tag and create all say "invalid reference format").
    const fromStore = {
      InvalidSaveImageParameters: () => k3.imageCore.saveImage(bad, path.join(out, 'x.tar')),
      InvalidPushParameters: () => k3.imageCore.pushAnImage(bad),
      InvalidTagImageParameters: () => k3.imageCore.tagImage(bad, 'hostile-target:2'),
    };
    for (const [cls, call] of [...Object.entries(calls), ...Object.entries(fromStore)]) {
      const err = await failure(call());
      assert.equal(err.name, cls, `${bad}: ${err.createFullMessage?.() ?? err}`);
      assert.equal(err.statusCode, 422);
    }
    // '--' ends the docker CLI's options, so '-a' is read as a name.
    for (const args of [['pull', '--', bad], ['create', '--', bad], ['tag', '--', 'hostile-target:1', bad], ['tag', '--', bad, 'hostile-target:2'],
      ['push', '--', bad], ['save', '-o', path.join(out, 'd.tar'), '--', bad]]) {
      assert.match(await dockerFailure(...args), /invalid reference format/, `docker ${args.join(' ')}`);
    }
  }
  assert.deepEqual((await k3Tags(id)).map(familiar), ['hostile-target:1']);
});

test('the k3 transport is for inspectAnImage only: the other calls refuse it with their 422 class', async () => {
  const options = { containerImageTransport: 'k3' };
  const calls = {
    InvalidPullParameters: () => k3.imageCore.pullAnImage('alpine', 'latest', options),
    InvalidCopyImageParameters: () => k3.imageCore.copyImage('alpine', 'latest', path.join(tmp, 'k3-layout'), options),
  };
  for (const [cls, call] of Object.entries(calls)) {
    const err = await failure(call());
    assert.equal(err.name, cls, err.createFullMessage?.() ?? String(err));
    assert.match(err.details.error, /k3 transport/);
  }
});

test('calls that change a container take an exact name or an ID prefix, as docker does; export and inspect also a part of a name', { skip: dockerSkip }, async () => {
  await loadBoth(imageWith('names'), ['names:1']);
  const web = await k3.containerCore.createContainer('names:1', { name: 'web-frontend' });
  await dockerd.docker('create', '--name', 'web-frontend', 'names:1');
  const host = path.join(tmp, 'copied.txt');
  fs.writeFileSync(host, 'x');
  const changing = {
    removeContainer: () => k3.containerCore.removeContainer('frontend', { force: true }),
    stopContainer: () => k3.containerCore.stopContainer('frontend'),
    killContainer: () => k3.containerCore.killContainer('frontend'),
    startContainer: () => k3.containerCore.startContainer('frontend'),
    restartContainer: () => k3.containerCore.restartContainer('frontend'),
    pauseContainer: () => k3.containerCore.pauseContainer('frontend'),
    commitContainer: () => k3.containerCore.commitContainer('frontend'),
    copyToContainer: () => k3.containerCore.copyToContainer('frontend', host, '/'),
    removeFromContainer: () => k3.containerCore.removeFromContainer('frontend', '/names.txt'),
  };
  for (const [op, call] of Object.entries(changing)) {
    const err = await failure(call());
    assert.ok(err instanceof K3Core.errors.ContainerNotFound, `${op}: ${err.name}: ${err.message}`);
  }
  for (const args of [['rm', 'frontend'], ['stop', 'frontend'], ['kill', 'frontend'], ['start', 'frontend'], ['commit', 'frontend']]) {
    assert.match(await dockerFailure(...args), /No such container: frontend/, `docker ${args.join(' ')}`);
  }
  await dockerd.docker('rm', '-f', 'frontend'); // "no such container" is not an error with -f ...
  await dockerd.docker('container', 'inspect', 'web-frontend'); // ... and web-frontend is still there
  assert.equal((await k3.containerCore.inspectContainer('frontend')).Id, web.Id);
  assert.match(await k3.containerCore.exportContainer('frontend', path.join(tmp, 'web.tar')), /^web-frontend has exported successfully/);

  const removed = await k3.containerCore.removeContainer(web.Id.slice(0, 8), { force: true });
  assert.equal(removed.Id, web.Id);
  await dockerd.docker('rm', '-f', 'web-frontend');
});
