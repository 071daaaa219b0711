'use strict';
// commitContainer: a container's changes become one new layer of a new image.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');
const { need } = require('./helpers/need');

let tmp;
let k3;
const canRun = process.getuid() === 0 && Boolean(whichSync('runc')) && fs.existsSync('/bin/busybox');

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-commit-'));
  const img = images.makeImage({
    layers: [
      [{ path: 'etc', type: 'dir' }, { path: 'etc/keep', content: 'keep' }, { path: 'etc/edit', content: 'before' }, { path: 'etc/gone', content: 'x' },
        { path: 'cache', type: 'dir' }, { path: 'cache/old1', content: '1' }, { path: 'cache/old2', content: '2' }],
      [{ path: 'bin', type: 'dir' }, ...(canRun ? [{ path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
        ...['sh', 'sleep', 'echo', 'cat'].map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' }))] : [])],
    ],
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], Labels: { base: 'yes' } },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'base:1' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'base:1', { containerImageTransport: 'oci' });
});

after(async () => {
  for (const c of await k3.containerCore.listContainers()) await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

function listing(file) {
  return execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
}

test('commit round trip: the new image holds exactly the container\'s tree', async () => {
  await k3.containerCore.createContainer('base:1', { name: 'changed' });
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'fresh'), { recursive: true });
  fs.writeFileSync(path.join(src, 'edit'), 'after');
  fs.writeFileSync(path.join(src, 'added.txt'), 'added');
  fs.writeFileSync(path.join(src, 'fresh', 'new'), 'new cache');
  await k3.containerCore.copyToContainer('changed', path.join(src, 'added.txt'), '/etc/');
  await k3.containerCore.copyToContainer('changed', path.join(src, 'edit'), '/etc/edit');
  await k3.containerCore.removeFromContainer('changed', '/etc/gone');
  await k3.containerCore.removeFromContainer('changed', '/cache');
  await k3.containerCore.copyToContainer('changed', path.join(src, 'fresh'), '/cache');

  const out = await k3.containerCore.commitContainer('changed', {
    repository: 'k3test/committed', tag: 'v1', message: 'my change', author: 'k3 tests',
    changes: ['ENV COMMITTED=yes', 'CMD ["/bin/echo", "hi"]', 'LABEL stage=committed', 'WORKDIR /etc', 'EXPOSE 8080'],
  });
  assert.match(out.Id, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(out.RepoTags, ['docker.io/k3test/committed:v1']);
  assert.ok((await k3.imageCore.listImages()).some((i) => i.Id === out.Id && i.Layers === 3));

  const info = await k3.imageCore.inspectAnImage('k3test/committed', { imageName: 'k3test/committed', imageTag: 'v1', containerImageTransport: 'k3' });
  assert.equal(info.Layers.length, 3);
  assert.deepEqual(info.Env, ['PATH=/bin', 'COMMITTED=yes']);
  assert.deepEqual(info.Labels, { base: 'yes', stage: 'committed' });
  const config = JSON.parse(fs.readFileSync(path.join(k3.root, 'blobs', 'sha256', out.Id.slice(7)), 'utf8'));
  assert.deepEqual(config.config.Cmd, ['/bin/echo', 'hi']);
  assert.equal(config.config.WorkingDir, '/etc');
  assert.deepEqual(config.config.ExposedPorts, { '8080/tcp': {} });
  assert.equal(config.author, 'k3 tests');
  assert.equal(config.history[config.history.length - 1].comment, 'my change');
  assert.equal(config.rootfs.diff_ids.length, 3);

  await k3.containerCore.createContainer('k3test/committed:v1', { name: 'from-commit' });
  const a = path.join(tmp, 'changed.tar');
  const b = path.join(tmp, 'from-commit.tar');
  await k3.containerCore.exportContainer('changed', a);
  const layersBefore = fs.readdirSync(path.join(k3.root, 'layers')).sort();
  await k3.containerCore.exportContainer('from-commit', b);
  assert.deepEqual(fs.readdirSync(path.join(k3.root, 'layers')).sort(), layersBefore, 'an export unpacks nothing into the store');
  assert.deepEqual(fs.readdirSync(path.join(k3.root, 'tmp')), [], 'and leaves no scratch behind');
  assert.equal(listing(b), listing(a));
  assert.deepEqual(fs.readFileSync(b), fs.readFileSync(a), 'the two exports are the same bytes');
  const names = listing(b);
  assert.doesNotMatch(names, /etc\/gone|cache\/old1|\.wh\./);
  assert.match(names, /cache\/new/);
});

test('a bad change or name is InvalidCommitContainerParameters', async () => {
  await k3.containerCore.createContainer('base:1', { name: 'bad-commit' });
  for (const options of [{ changes: ['RUN rm -rf /'] }, { repository: 'Upper/Case' }, { tag: 'v1' }]) {
    const err = await k3.containerCore.commitContainer('bad-commit', options).then(() => null, (e) => e);
    assert.ok(err instanceof K3Core.errors.InvalidCommitContainerParameters, `${JSON.stringify(options)}: ${err && err.name}`);
  }
});

test('committing a running container keeps what it wrote, and it keeps running', { skip: need(canRun ? false : 'needs root, runc and /bin/busybox') }, async () => {
  await k3.containerCore.createContainer('base:1', { name: 'live', cmd: ['/bin/sh', '-c', 'echo written-while-running > /etc/live; sleep 1000'] });
  await k3.containerCore.startContainer('live');
  const bundle = (await k3.containerCore.inspectContainer('live')).BundleDir;
  const written = path.join(bundle, 'diff', 'etc', 'live');
  for (const end = Date.now() + 60000; !fs.existsSync(written); await new Promise((r) => setTimeout(r, 10))) {
    assert.ok(Date.now() < end, 'the container wrote /etc/live within a minute');
  }
  const out = await k3.containerCore.commitContainer('live', { repository: 'k3test/live' });
  assert.equal((await k3.containerCore.inspectContainer('live')).State, 'running', 'resumed after the commit');
  await k3.containerCore.createContainer(out.Id.slice(7, 19), { name: 'live-copy' });
  const file = path.join(tmp, 'live-copy.tar');
  await k3.containerCore.exportContainer('live-copy', file);
  const names = listing(file);
  assert.match(names, /etc\/live/);
  assert.doesNotMatch(names, / proc\/| sys\/| dev\//, 'the runtime\'s mount points are not committed');
  await k3.containerCore.removeContainer('live', { force: true });
});

// A running container that cannot be paused is not packed while it runs,
// where it could swap files under the pack, unless the caller asks for that.
test('a running container that cannot be paused fails the commit, unless pause is false', { skip: need(canRun ? false : 'needs root, runc and /bin/busybox') }, async () => {
  const runtime = path.join(tmp, 'no-pause-runtime');
  fs.writeFileSync(runtime, `#!/bin/sh\n[ "$1" = pause ] && { echo "this runtime refuses to pause" >&2; exit 1; }\nexec ${whichSync('runc')} "$@"\n`, { mode: 0o755 });
  const noPause = new K3Core({ root: path.join(tmp, 'store'), runtime });
  await noPause.containerCore.createContainer('base:1', { name: 'unpausable', cmd: ['/bin/sh', '-c', 'echo x > /etc/unpausable; sleep 1000'] });
  await noPause.containerCore.startContainer('unpausable');
  const err = await noPause.containerCore.commitContainer('unpausable', { repository: 'k3test/unpausable' })
    .then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
  assert.equal(err.name, 'CommitContainerFailure');
  assert.match(err.details.error, /cannot pause the running container.*this runtime refuses to pause/);
  assert.equal((await noPause.imageCore.listImages()).some((i) => (i.RepoTags || []).some((t) => t.includes('k3test/unpausable'))), false);
  const out = await noPause.containerCore.commitContainer('unpausable', { repository: 'k3test/unpausable', pause: false });
  assert.match(out.Id, /^sha256:/);
  assert.equal((await noPause.containerCore.inspectContainer('unpausable')).State, 'running');
  await noPause.containerCore.removeContainer('unpausable', { force: true });
});
