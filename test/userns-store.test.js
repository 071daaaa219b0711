'use strict';
// An ordinary user's store keeps every entry's true metadata: the same
// container changes exported by root and by an ordinary user (with and
// without subordinate IDs) are the same bytes, and so are their commits.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { need } = require('./helpers/need');
const { ordinaryUserReasons, ordinaryUser, giveTo, runAs } = require('./helpers/ordinary-user');
const { T, layers } = require('./helpers/kinds');

const missing = ordinaryUserReasons();
const skip = need(missing || false);

// What root and the user each do, in their own store: pull and change the
// container; then (phase 'export') export, commit, and export a container
// of the commit.
async function scenario(K3, input) {
  const k3 = new K3({ root: input.root });
  const cc = k3.containerCore;
  if (input.phase === 'change') {
    await k3.imageCore.pullAnImage(input.layout, 'kinds:1', { containerImageTransport: 'oci' });
    const { Id } = await cc.createContainer('kinds:1', { name: 'c' });
    await cc.copyToContainer('c', input.file, '/etc/');
    await cc.removeFromContainer('c', '/data/old');
    await cc.removeFromContainer('c', '/cache2');
    await cc.copyToContainer('c', input.dir, '/cache2');
    return { id: Id, changes: await cc.containerChanges('c') };
  }
  await cc.exportContainer('c', `${input.out}/c.tar`);
  await cc.commitContainer('c', { repository: 'k3test/kinds', tag: 'c' });
  const committed = await k3.imageCore.inspectAnImage('k3test/kinds', { imageName: 'k3test/kinds', imageTag: 'c', containerImageTransport: 'k3' });
  await cc.createContainer('k3test/kinds:c', { name: 'd' });
  await cc.exportContainer('d', `${input.out}/d.tar`);
  await cc.removeContainer('c');
  await cc.removeContainer('d');
  await k3.imageCore.removeImage('k3test/kinds:c');
  return { layers: committed.Layers, left: require('node:fs').readdirSync(`${input.root}/tmp`) };
}

// The directories a container changes take the time of the change, which
// differs between two runs: they are set to one time, as a clock would
// give both runs the same one.
function settleChangedDirs(store, id) {
  execFileSync('find', [path.join(store, 'containers', id, 'diff'), '-type', 'd', '-exec', 'touch', '-h', '-d', `@${T}`, '{}', '+']);
}

// Runs both phases with run(input), settling in between.
async function bothPhases(run, input) {
  const changed = await run({ ...input, phase: 'change' });
  settleChangedDirs(input.root, changed.id);
  return { ...changed, ...(await run({ ...input, phase: 'export' })) };
}

let tmp;
let layout;
let fixtures;
let rootRun;

before(async () => {
  if (missing) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-userns-store-'));
  fs.chmodSync(tmp, 0o755);
  layout = path.join(tmp, 'layout');
  images.writeOciLayout(layout, [{ image: images.makeImage({ layers: layers() }), refName: 'kinds:1' }]);
  fixtures = path.join(tmp, 'fixtures');
  fs.mkdirSync(path.join(fixtures, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(fixtures, 'added.conf'), 'added');
  fs.writeFileSync(path.join(fixtures, 'dir', 'new'), 'new');
  for (const p of ['added.conf', 'dir/new', 'dir']) fs.utimesSync(path.join(fixtures, p), T, T);
  execFileSync('chmod', ['-R', 'a+rX', tmp]);
  const out = path.join(tmp, 'root-out');
  fs.mkdirSync(out);
  const result = await bothPhases((input) => scenario(K3Core, input),
    { root: path.join(tmp, 'root-store'), layout, file: path.join(fixtures, 'added.conf'), dir: path.join(fixtures, 'dir'), out });
  rootRun = { ...result, out };
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function entries(tarFile) {
  return execFileSync('tar', ['--numeric-owner', '-tvf', tarFile], { encoding: 'utf8' });
}

// Runs the scenario as user in a fresh store under the user's home.
async function asUser(user) {
  const home = path.join(user.home, `k3-store-test-${process.pid}`);
  fs.rmSync(home, { recursive: true, force: true });
  execFileSync('runuser', ['-u', user.name, '--', 'mkdir', '-p', `${home}/out`]);
  const result = await bothPhases(async (input) => {
    const r = await runAs(user, scenario, input);
    assert.equal(r.error, undefined, JSON.stringify(r.error) + r.stderr);
    return r.result;
  }, { root: `${home}/store`, layout, file: path.join(fixtures, 'added.conf'), dir: path.join(fixtures, 'dir'), out: `${home}/out` });
  return { ...result, out: `${home}/out`, home };
}

function sameExports(user, run) {
  for (const name of ['c.tar', 'd.tar']) {
    const ours = fs.readFileSync(path.join(rootRun.out, name));
    const theirs = fs.readFileSync(path.join(run.out, name));
    assert.equal(entries(path.join(run.out, name)), entries(path.join(rootRun.out, name)), `${user.name}'s ${name} lists as root's`);
    assert.ok(ours.equals(theirs), `${user.name}'s ${name} is root's, byte for byte`);
  }
  assert.deepEqual(run.changes, rootRun.changes);
  assert.deepEqual(run.layers, rootRun.layers, 'the committed layer is root\'s, byte for byte');
  assert.deepEqual(run.left, [], 'nothing is left in the store\'s scratch space');
}

test('root\'s export holds the true metadata the user\'s must match', { skip }, () => {
  const list = entries(path.join(rootRun.out, 'd.tar'));
  assert.match(list, /-rw-r----- 0\/42 .* etc\/shadow/);
  assert.match(list, /-rwsr-xr-x 0\/0 .* bin\/su\n/);
  assert.match(list, /crw-rw-rw- 0\/0 +1,3 .* dev\/null/);
  assert.match(list, /brw-rw---- 0\/6 +8,0 .* dev\/sda/);
  assert.match(list, /crw--w---- 100000\/100000 +4,64 .* dev\/far/);
  assert.match(list, /prw------- 33\/33 .* run\/fifo/);
  assert.match(list, /-rw-r--r-- 2000000\/2000001 .* owners\/u2000000/);
  assert.match(list, /hrwsr-xr-x 0\/0 .* bin\/su-across link to bin\/su/);
  assert.match(list, /-rw-r--r-- 0\/0 .* etc\/added.conf/);
  assert.doesNotMatch(list, /data\/gone|data\/old|cache\/a|cache2\/b|\.wh\./);
});

test('an ordinary user with subordinate IDs exports and commits exactly what root does', { skip }, async () => {
  const user = ordinaryUser();
  const run = await asUser(user);
  sameExports(user, run);
  const layerDirs = fs.readdirSync(path.join(run.home, 'store', 'layers'));
  const shadow = layerDirs.map((d) => path.join(run.home, 'store', 'layers', d, 'etc', 'shadow')).find((p) => fs.existsSync(p));
  const st = fs.statSync(shadow);
  const subgid = Number(fs.readFileSync('/etc/subgid', 'utf8').split('\n').find((l) => l.startsWith(`${user.name}:`)).split(':')[1]);
  assert.equal(st.uid, user.uid, 'the namespace\'s root is the user');
  assert.equal(st.gid, subgid + 41, 'group 42 is the 42nd of the namespace, the 41st subordinate ID');
  fs.rmSync(run.home, { recursive: true, force: true });
});

test('an ordinary user with no subordinate IDs still exports and commits exactly what root does', { skip }, async () => {
  const user = ordinaryUser({ subordinate: false });
  const run = await asUser(user);
  sameExports(user, run);
  fs.rmSync(run.home, { recursive: true, force: true });
});

test('a store shared by a user and root: root reads it, converts its layers and refuses to change the user\'s container; the user then refuses root\'s layers', { skip }, async () => {
  const user = ordinaryUser();
  const home = path.join(user.home, `k3-shared-test-${process.pid}`);
  fs.rmSync(home, { recursive: true, force: true });
  execFileSync('runuser', ['-u', user.name, '--', 'mkdir', '-p', home]);
  const store = path.join(home, 'store');
  const made = await runAs(user, async (K3, input) => {
    const k3 = new K3({ root: input.store });
    await k3.imageCore.pullAnImage(input.layout, 'kinds:1', { containerImageTransport: 'oci' });
    await k3.containerCore.createContainer('kinds:1', { name: 'mine' });
  }, { store, layout });
  assert.equal(made.error, undefined, JSON.stringify(made.error));

  // Root reads the user's container, its owners turned back by the mapping
  // it recorded, but does not change it.
  const k3 = new K3Core({ root: store });
  const own = new K3Core({ root: path.join(tmp, 'root-store') });
  await own.containerCore.createContainer('kinds:1', { name: 'plain' });
  await own.containerCore.exportContainer('plain', path.join(tmp, 'plain.tar'));
  await k3.containerCore.exportContainer('mine', path.join(tmp, 'mine.tar'));
  assert.ok(fs.readFileSync(path.join(tmp, 'mine.tar')).equals(fs.readFileSync(path.join(tmp, 'plain.tar'))), 'root reads the user\'s container as the user does');
  await assert.rejects(k3.containerCore.copyToContainer('mine', path.join(fixtures, 'added.conf'), '/etc/'), (err) => {
    assert.ok(err instanceof K3Core.errors.UnpackedOtherwise, `${err.name}: ${err.message}`);
    assert.match(err.createFullMessage(), /create it again/);
    return true;
  });
  // Root's own container of the user's image: its layers are converted
  // when the container is changed.
  await k3.containerCore.createContainer('kinds:1', { name: 'roots' });
  await k3.containerCore.exportContainer('roots', path.join(tmp, 'roots-read.tar'));
  assert.ok(fs.readFileSync(path.join(tmp, 'roots-read.tar')).equals(fs.readFileSync(path.join(tmp, 'plain.tar'))), 'read from the blobs, the export is root\'s');
  await k3.containerCore.removeFromContainer('roots', '/data/old');
  await own.containerCore.removeFromContainer('plain', '/data/old');
  settleChangedDirs(store, (await k3.containerCore.inspectContainer('roots')).Id);
  settleChangedDirs(path.join(tmp, 'root-store'), (await own.containerCore.inspectContainer('plain')).Id);
  await k3.containerCore.exportContainer('roots', path.join(tmp, 'roots.tar'));
  await own.containerCore.exportContainer('plain', path.join(tmp, 'plain.tar'));
  assert.ok(fs.readFileSync(path.join(tmp, 'roots.tar')).equals(fs.readFileSync(path.join(tmp, 'plain.tar'))), 'converted, the layers give root\'s export');

  const after = await runAs(user, async (K3, input) => {
    await new K3({ root: input.store }).containerCore.exportContainer('mine', `${input.store}/../mine.tar`);
  }, { store });
  assert.equal(after.error && after.error.name, 'UnpackedOtherwise', JSON.stringify(after.error));
  fs.rmSync(home, { recursive: true, force: true });
});

// Hostile layers, pulled by the user: the unpack runs in the helper, as the
// namespace's root, and must refuse or contain every write all the same.
test('hostile layers pulled by an ordinary user are refused or contained by the helper', { skip }, async () => {
  const user = ordinaryUser();
  const home = path.join(user.home, `k3-hostile-test-${process.pid}`);
  fs.rmSync(home, { recursive: true, force: true });
  execFileSync('runuser', ['-u', user.name, '--', 'mkdir', '-p', `${home}/victim`]);
  const victim = `${home}/victim`;
  const cases = {
    dotdot: { layers: [[{ path: '../../escape', content: 'x' }]], refused: true },
    'dotdot deep': { layers: [[{ path: 'a/../../../escape', content: 'x' }]], refused: true },
    'symlink to root': { layers: [[{ path: 's', type: 'symlink', linkname: '/' }, { path: `s${victim}/escape`, content: 'x' }]] },
    'symlink up': { layers: [[{ path: 's', type: 'symlink', linkname: '../../../../../..' }, { path: `s${victim}/escape`, content: 'x' }]] },
    'symlink in a lower layer': { layers: [[{ path: 's', type: 'symlink', linkname: victim }], [{ path: 's/escape', content: 'x' }]] },
    'hardlink up': { layers: [[{ path: 'h', type: 'hardlink', linkname: '../../../etc/passwd' }]], refused: true },
    'hardlink absolute': { layers: [[{ path: 'h', type: 'hardlink', linkname: `${victim}/keep` }]], refused: true },
    'device through symlink': { layers: [[{ path: 's', type: 'symlink', linkname: '../../..' }, { path: 's/null', type: 'char', devmajor: 1, devminor: 3 }]] },
    'symlink to a directory outside': { layers: [[{ path: 's', type: 'symlink', linkname: victim }, { path: 's/escape', content: 'x' }]], refused: true },
  };
  fs.writeFileSync(`${victim}/keep`, 'keep');
  giveTo(user, victim);
  const dir = path.join(tmp, 'hostile');
  fs.mkdirSync(dir);
  for (const [name, c] of Object.entries(cases)) {
    images.writeOciLayout(path.join(dir, name.replace(/ /g, '-')), [{ image: images.makeImage({ layers: c.layers }), refName: 'h:1' }]);
  }
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  const r = await runAs(user, async (K3, input) => {
    const k3 = new K3({ root: input.store });
    const out = {};
    for (const name of input.names) {
      try {
        await k3.imageCore.pullAnImage(`${input.dir}/${name.replace(/ /g, '-')}`, 'h:1', { containerImageTransport: 'oci' });
        await k3.containerCore.createContainer('h:1', { name: name.replace(/ /g, '-') });
        await k3.containerCore.exportContainer(name.replace(/ /g, '-'), `${input.store}/../${name.replace(/ /g, '-')}.tar`);
        out[name] = 'pulled';
      } catch (e) {
        out[name] = e.name;
      }
    }
    return out;
  }, { store: `${home}/store`, dir, names: Object.keys(cases) });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  for (const [name, c] of Object.entries(cases)) {
    assert.equal(r.result[name], c.refused ? 'UnsafeImageContent' : 'pulled', name);
  }
  assert.deepEqual(fs.readdirSync(victim), ['keep'], 'nothing was written beside the victim file');
  assert.equal(fs.readFileSync(`${victim}/keep`, 'utf8'), 'keep');
  assert.ok(!fs.existsSync('/escape') && !fs.existsSync(path.join(user.home, 'escape')));
  for (const name of ['symlink to root', 'symlink up']) {
    const list = entries(path.join(home, `${name.replace(/ /g, '-')}.tar`));
    assert.match(list, new RegExp(`${victim.slice(1)}/escape`), `${name}: the write landed inside the container`);
  }
  assert.match(entries(path.join(home, 'device-through-symlink.tar')), /crw-rw-rw- 0\/0 +1,3 .* null/, 'the device landed inside the container');
  fs.rmSync(home, { recursive: true, force: true });
});

