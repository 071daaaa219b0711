'use strict';
// The ordinary-user harness (helpers/ordinary-user.js): a child Node process
// as a user the tests create, as a cron job runs, loads k3-core and keeps a
// store under its home.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { need } = require('./helpers/need');
const { ordinaryUserReasons, ordinaryUser, giveTo, runAs } = require('./helpers/ordinary-user');
const { writeBusyboxLayout } = require('./helpers/runc');

const skip = need(ordinaryUserReasons() || (fs.existsSync('/bin/busybox') ? '' : 'busybox-static is not installed'));

let tmp;
before(() => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-ordinary-'));
  fs.chmodSync(tmp, 0o755);
  writeBusyboxLayout(path.join(tmp, 'layout'), 'busybox:user', ['sh']);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// What the child sees of itself, and a pull into a store under its home.
async function selfAndPull(K3Core, input) {
  const os = require('node:os');
  const path = require('node:path');
  const fs = require('node:fs');
  const root = path.join(os.homedir(), 'k3-harness-store');
  fs.rmSync(root, { recursive: true, force: true });
  const k3 = new K3Core({ root });
  await k3.imageCore.pullAnImage(input.layout, 'busybox:user', { containerImageTransport: 'oci' });
  const images = await k3.imageCore.listImages();
  const owner = fs.statSync(root).uid;
  fs.rmSync(root, { recursive: true, force: true });
  return {
    uid: process.getuid(), gid: process.getgid(), home: os.homedir(),
    xdg: process.env.XDG_RUNTIME_DIR || null, sessionBus: process.env.DBUS_SESSION_BUS_ADDRESS || null,
    tags: images.flatMap((i) => i.RepoTags), owner,
  };
}

for (const subordinate of [true, false]) {
  test(`a user ${subordinate ? 'with' : 'without'} a subordinate range runs k3-core with no login session and a store in its home`, { skip }, async () => {
    const user = ordinaryUser({ subordinate });
    giveTo(user, path.join(tmp, 'layout'));
    const subuid = fs.readFileSync('/etc/subuid', 'utf8');
    assert.equal(subuid.split('\n').some((l) => l.startsWith(`${user.name}:`)), subordinate, `/etc/subuid for ${user.name}`);
    assert.notEqual(user.uid, 0);
    const r = await runAs(user, selfAndPull, { layout: path.join(tmp, 'layout') }, { env: { XDG_RUNTIME_DIR: '/run/user/0' } });
    assert.equal(r.code, 0, `${JSON.stringify(r.error)}\n${r.stderr}`);
    assert.deepEqual(r.result, {
      uid: user.uid, gid: user.gid, home: user.home, xdg: '/run/user/0', sessionBus: null, tags: ['docker.io/library/busybox:user'], owner: user.uid,
    });
    const cron = await runAs(user, () => process.env.XDG_RUNTIME_DIR || null);
    assert.equal(cron.result, null, 'the harness gives no XDG_RUNTIME_DIR');
  });
}

test('a failure in the child comes back as the error with its full message', { skip }, async () => {
  const r = await runAs(ordinaryUser(), async (K3Core) => {
    const k3 = new K3Core({ root: '/root/not-mine' });
    await k3.imageCore.listImages();
  });
  assert.equal(r.code, 1);
  assert.ok(r.error && r.error.name && r.error.full.includes(r.error.message), JSON.stringify(r.error));
});
