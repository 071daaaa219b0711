'use strict';
// podman as the same ordinary user is the oracle for the user's export: one
// image with many owners, setuid and setgid files, devices, a FIFO, xattrs,
// hardlinks within and across layers, a whiteout and an opaque directory,
// exported as a created container by k3-core and by `podman export`, both
// run as the user (as a cron job would), and compared entry for entry as
// test/export-podman.test.js compares root's exports.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const images = require('./helpers/images');
const { need } = require('./helpers/need');
const { whichSync } = require('./helpers/registry');
const { ordinaryUserReasons, ordinaryUser, giveTo, runAs } = require('./helpers/ordinary-user');
const { T, layers } = require('./helpers/kinds');
const { tree, differences } = require('./helpers/tar-tree');

const skip = need(ordinaryUserReasons() || (whichSync('podman') ? false : 'podman is not installed'));

// podman as a user maps the container's IDs 0-65535 onto the user and its
// 65536 subordinate IDs, and refuses a layer owned by any ID beyond them.
// The image podman can hold has those owners moved below 65536.
const NAMESPACE_SIZE = 65536;
const fit = (id) => (id === undefined || id < NAMESPACE_SIZE ? id : 60000 + (id % 1000));
const fittedLayers = () => layers().map((layer) => layer.map((e) => ({ ...e, uid: fit(e.uid), gid: fit(e.gid) })));

// In the child, as the user: k3-core pulls, creates and exports; podman
// (after `podman system migrate`, on its vfs driver) loads the same OCI
// layout, creates and exports; then podman is asked to load the image
// whose owners go beyond its namespace.
async function exportBoth(K3, input) {
  const { execFileSync: run } = require('node:child_process');
  const k3 = new K3({ root: `${input.home}/store` });
  const exported = {};
  for (const [name, layout] of Object.entries(input.layouts)) {
    await k3.imageCore.pullAnImage(layout, 'kinds:1', { containerImageTransport: 'oci' });
    await k3.containerCore.createContainer('kinds:1', { name });
    exported[name] = `${input.home}/${name}-k3.tar`;
    await k3.containerCore.exportContainer(name, exported[name]);
    await k3.containerCore.removeContainer(name);
    await k3.imageCore.removeImage('kinds:1');
  }
  const podman = (args) => run(input.podman, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  podman(['system', 'migrate']);
  const driver = podman(['info', '--format', '{{.Store.GraphDriverName}}']);
  const image = podman(['pull', '-q', `oci:${input.layouts.fitted}`]).split('\n').pop();
  const container = `k3-userns-podman-${process.pid}`;
  podman(['create', '--network', 'none', '--name', container, image, '/bin/true']);
  try {
    podman(['export', '-o', `${input.home}/fitted-podman.tar`, container]);
  } finally {
    podman(['rm', '-f', container]);
    podman(['rmi', '-f', image]);
  }
  let refused = '';
  try {
    podman(['rmi', '-f', podman(['pull', '-q', `oci:${input.layouts.kinds}`]).split('\n').pop()]);
  } catch (e) {
    refused = String(e.stderr);
  }
  return { driver, exported, refused };
}

let tmp;
let user;
let home;
let run;

before(async () => {
  if (skip) return;
  // Lowercase: podman names an image loaded from a layout after its path.
  tmp = path.join(os.tmpdir(), `k3-userns-podman-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  const layouts = { kinds: path.join(tmp, 'kinds'), fitted: path.join(tmp, 'fitted') };
  images.writeOciLayout(layouts.kinds, [{ image: images.makeImage({ layers: layers() }), refName: 'kinds:1' }]);
  images.writeOciLayout(layouts.fitted, [{ image: images.makeImage({ layers: fittedLayers() }), refName: 'kinds:1' }]);
  execFileSync('chmod', ['-R', 'a+rX', tmp]);
  user = ordinaryUser();
  home = path.join(user.home, `k3-podman-test-${process.pid}`);
  fs.mkdirSync(home);
  giveTo(user, home);
  const r = await runAs(user, exportBoth, { home, layouts, podman: whichSync('podman') }, { timeout: 300000 });
  assert.equal(r.error, undefined, JSON.stringify(r.error) + r.stderr);
  run = r.result;
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

// What podman as a user cannot hold, and leaves out of its export where
// k3-core, as the same user, keeps the image's true metadata:
// - device nodes: the kernel refuses mknod inside a user namespace, and
//   podman skips the layer's char and block devices;
// - trusted.* xattrs: only the initial namespace's root may set them, and
//   podman drops them with a warning (user.* and security.capability stay).
const DEVICES = {
  'dev/null': { type: 'char', mode: '666', uid: 0, gid: 0, xattrs: {}, mtime: T, devmajor: 1, devminor: 3 },
  'dev/sda': { type: 'block', mode: '660', uid: 0, gid: 6, xattrs: {}, mtime: T, devmajor: 8, devminor: 0 },
  'dev/far': { type: 'char', mode: '620', uid: fit(100000), gid: fit(100000), xattrs: {}, mtime: T, devmajor: 4, devminor: 64 },
};
const MARKED = { 'trusted.k3test': 'kept', 'user.k3test': 'also' };

test('as a user, the export is podman\'s as the same user, but for the devices and trusted xattrs podman cannot hold', { skip }, () => {
  assert.equal(run.driver, 'vfs');
  const oracle = tree(path.join(home, 'fitted-podman.tar'));
  const ours = tree(run.exported.fitted);
  // The oracle saw the layers as intended, so the comparison means something.
  assert.deepEqual([oracle.get('etc/shadow').mode, oracle.get('etc/shadow').gid], ['640', 42]);
  assert.equal(oracle.get('bin/su').mode, '4755');
  assert.deepEqual(oracle.get('bin/su').links, ['bin/su', 'bin/su-across', 'bin/su-again']);
  assert.deepEqual([oracle.get('owners/u65534').uid, oracle.get('owners/u65534').gid], [65534, 65535]);
  assert.deepEqual([oracle.get('run/fifo').type, oracle.get('run/fifo').uid], ['fifo', 33]);
  assert.ok(oracle.get('bin/ping').xattrs['security.capability']);
  assert.equal(oracle.get('tmp').mode, '1777');
  for (const gone of ['data/gone', 'cache/a']) assert.equal(oracle.has(gone), false, gone);

  for (const [name, want] of Object.entries(DEVICES)) assert.deepEqual(ours.get(name), want, name);
  assert.deepEqual(ours.get('bin/marked').xattrs, MARKED);
  const documented = [
    ...Object.keys(DEVICES).map((name) => `only in k3: ${name} ${JSON.stringify(ours.get(name))}`),
    `bin/marked: xattrs podman=${JSON.stringify({ 'user.k3test': 'also' })} k3=${JSON.stringify(ours.get('bin/marked').xattrs)}`,
  ];
  assert.deepEqual(differences(oracle, ours).sort(), documented.sort());
});

test('as a user, podman refuses owners beyond its namespace; k3-core exports them as they are', { skip }, () => {
  assert.match(run.refused, /potentially insufficient UIDs or GIDs available in user namespace \(requested 65536:65537 for \/owners\/u65536\)/);
  const ours = tree(run.exported.kinds);
  for (const id of [65536, 100000, 2000000]) {
    assert.deepEqual([ours.get(`owners/u${id}`).uid, ours.get(`owners/u${id}`).gid], [id, id + 1], `owners/u${id}`);
  }
  assert.deepEqual([ours.get('dev/far').uid, ours.get('dev/far').gid], [100000, 100000]);
});
