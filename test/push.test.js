'use strict';
// tagImage and pushAnImage: a store image leaves for another registry with
// the same digests, and comes back the same.
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
if (skip) console.log(`# skipping push tests: ${skip}`);
const user = { username: 'pusher', password: 'push-secret' };
let src;
let dst;
let tmp;
let k3;
const img = images.makeImage({ layers: [[{ path: 'a', content: 'first' }], [{ path: 'b', content: 'second' }]], mediaType: 'docker' });

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-push-'));
  src = await startRegistry();
  dst = await startRegistry({ auth: user });
  await images.pushImage(src, 'team/app', 'v1', img);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(`${src.host}/team/app`, 'v1');
});

after(async () => {
  if (src) await src.stop();
  if (dst) await dst.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}

test('tagImage names a store image again', { skip }, async () => {
  const target = `${dst.host}/mirror/app:1.0`;
  assert.deepEqual(await k3.imageCore.tagImage(`${src.host}/team/app:v1`, target), { Id: img.configDigest, Tagged: target });
  const listed = (await k3.imageCore.listImages()).find((i) => i.Id === img.configDigest);
  assert.deepEqual([...listed.RepoTags].sort(), [target, `${src.host}/team/app:v1`].sort());
  const missing = await failure(k3.imageCore.tagImage('no/such:image', 'x/y:z'));
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundLocally, missing.name);
  const bad = await failure(k3.imageCore.tagImage(img.configDigest, 'Bad Name'));
  assert.ok(bad instanceof K3Core.errors.InvalidTagImageParameters, bad.name);
});

test('pushAnImage needs the registry\'s credentials', { skip }, async () => {
  const err = await failure(k3.imageCore.pushAnImage(`${dst.host}/mirror/app:1.0`));
  assert.ok(err instanceof K3Core.errors.RegistryAuthenticationFailure, `${err.name}: ${err.details.error}`);
  assert.equal(err.statusCode, 401);
});

test('pushAnImage sends the same manifest: skopeo and a pull see the same digests', { skip }, async () => {
  const events = [];
  const out = await k3.imageCore.pushAnImage(`${dst.host}/mirror/app:1.0`, { credentials: user, onProgress: (e) => events.push(e) });
  assert.deepEqual(out, { Digest: img.manifestDigest, Destination: `${dst.host}/mirror/app:1.0` });
  // Progress counts every byte sent: the blobs, then the manifest.
  const sent = img.layers.reduce((sum, l) => sum + l.size, img.configBytes.length + img.manifestBytes.length);
  assert.equal(events[0].phase, 'upload', JSON.stringify(events));
  assert.deepEqual(events.at(-1), { phase: 'done', current: sent, total: sent });
  if (whichSync('skopeo')) {
    const seen = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--creds', `${user.username}:${user.password}`, `docker://${dst.host}/mirror/app:1.0`], { encoding: 'utf8' }));
    assert.equal(seen.Digest, img.manifestDigest);
    assert.deepEqual(seen.Layers, img.layers.map((l) => l.digest));
  }
  const other = new K3Core({ root: path.join(tmp, 'other-store') });
  const back = await other.imageCore.pullAnImage(`${dst.host}/mirror/app`, '1.0', { credentials: user });
  assert.equal(back.Id, img.configDigest);
  assert.equal(back.Digest, img.manifestDigest);
});

test('pushAnImage to another name, and of a committed image with a new layer', { skip }, async () => {
  await k3.containerCore.createContainer(`${src.host}/team/app:v1`, { name: 'to-commit' });
  fs.writeFileSync(path.join(tmp, 'c.txt'), 'committed');
  await k3.containerCore.copyToContainer('to-commit', path.join(tmp, 'c.txt'), '/c.txt');
  const committed = await k3.containerCore.commitContainer('to-commit', { repository: `${src.host}/team/app`, tag: 'v2' });
  const out = await k3.imageCore.pushAnImage(`${src.host}/team/app:v2`);
  const info = await k3.imageCore.inspectAnImage(`${src.host}/team/app`, { imageName: `${src.host}/team/app`, imageTag: 'v2' });
  assert.equal(info.Digest, out.Digest);
  assert.equal(info.Layers.length, 3);
  // The commit's layer is stored uncompressed and, as docker push does,
  // gzipped on the way out: a new manifest, the same config and image ID.
  const raw = await fetch(`${src.url}/v2/team/app/manifests/v2`, { headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.json());
  assert.notEqual(out.Digest, committed.Digest);
  assert.equal(raw.config.digest, committed.Id);
  assert.deepEqual(raw.layers.map((l) => l.mediaType), Array(3).fill('application/vnd.docker.image.rootfs.diff.tar.gzip'));
  const back = new K3Core({ root: path.join(tmp, 'store-back') });
  const pulled = await back.imageCore.pullAnImage(`${src.host}/team/app`, 'v2');
  assert.equal(pulled.Id, committed.Id);
  assert.equal(pulled.Digest, out.Digest);
  await back.containerCore.createContainer(`${src.host}/team/app:v2`, { name: 'pulled-back' });
  await back.containerCore.exportContainer('pulled-back', path.join(tmp, 'back.tar'));
  assert.match(execFileSync('tar', ['-xOf', path.join(tmp, 'back.tar'), 'c.txt'], { encoding: 'utf8' }), /^committed$/);
  const missing = await failure(k3.imageCore.pushAnImage('never/pulled:1'));
  assert.ok(missing instanceof K3Core.errors.ImageNotFoundLocally, missing.name);
});
