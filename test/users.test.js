'use strict';
// The user a container runs as, resolved from the container's own
// /etc/passwd and /etc/group as docker resolves it, with podman as the
// oracle: the same image run by k3-core and by podman (both with runc)
// must print the same `id` and HOME. An image whose passwd and group are
// symlinks to host files must not make k3-core read the host's files.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');

function problem() {
  if (process.getuid() !== 0) return 'not root';
  for (const tool of ['runc', 'podman']) if (!whichSync(tool)) return `${tool} is not installed`;
  if (!fs.existsSync('/bin/busybox')) return 'busybox-static is not installed';
  return false;
}
// Under CI every peer is installed: a missing one fails the tests there.
const missing = problem();
const skip = missing && process.env.CI !== 'true' ? missing : false;
if (skip) console.log(`# skipping user resolution against podman: ${skip}`);

let tmp;
let k3;
const podmanImages = [];
// A host file an image links its passwd and group to, with a user and a
// group found nowhere else.
let hostPasswd;
let hostGroup;

// podman as root raises the container's limits past this host's hard ones,
// and its default runtime here (crun) refuses hybrid cgroups: both sides
// run with runc and the limits stated.
const podman = (...args) => execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
const podmanRun = ['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--passwd=false',
  '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

function busyboxImage(etc) {
  return images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...['sh', 'id', 'echo'].map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'tmp', type: 'dir', mode: 0o1777 }, { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' },
      { path: 'dev', type: 'dir' }, { path: 'etc', type: 'dir' }, ...etc,
    ]],
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
  });
}

before(async () => {
  if (missing) return;
  // podman names an image pulled from a layout after its path, which must
  // then be lowercase.
  tmp = path.join(os.tmpdir(), `k3-users-${crypto.randomBytes(6).toString('hex')}`);
  fs.mkdirSync(tmp);
  hostPasswd = path.join(tmp, 'host-passwd');
  hostGroup = path.join(tmp, 'host-group');
  fs.writeFileSync(hostPasswd, 'root:x:0:0:root:/root:/bin/sh\nintruder:x:4711:4712:intruder:/intruder:/bin/sh\n');
  fs.writeFileSync(hostGroup, 'root:x:0:\nintruders:x:4712:intruder\nleak:x:4713:\n');
  const entries = [
    { refName: 'users:groups', image: busyboxImage([
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n' },
      { path: 'etc/group', content: 'root:x:0:\nwheel:x:10:root,app\napp:x:1001:\nstaff:x:50:app\n' },
    ]) },
    // passwd by an absolute link, group by one that climbs out with "..".
    { refName: 'users:hostlinks', image: busyboxImage([
      { path: 'etc/passwd', type: 'symlink', linkname: hostPasswd },
      { path: 'etc/group', type: 'symlink', linkname: '../'.repeat(16) + hostGroup.slice(1) },
    ]) },
  ];
  const layout = path.join(tmp, 'layout');
  images.writeOciLayout(layout, entries);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  for (const { refName } of entries) {
    await k3.imageCore.pullAnImage(layout, refName, { containerImageTransport: 'oci' });
    podmanImages.push(podman('pull', '-q', `oci:${layout}:${refName}`).trim());
  }
});

after(async () => {
  for (const id of podmanImages) podman('rmi', '-f', id);
  if (k3) {
    for (const c of await k3.containerCore.listContainers()) {
      await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const script = 'id; echo "HOME=$HOME"';

// Runs script in a new container of image as user ('' for the image's),
// and returns its output, or the error starting it.
async function k3Run(image, user) {
  const c = await k3.containerCore.createContainer(image, { user: user || undefined, cmd: ['/bin/sh', '-c', script] });
  try {
    await k3.containerCore.startContainer(c.Id);
  } catch (e) {
    return { error: e.details.error };
  }
  assert.equal((await k3.containerCore.waitContainer(c.Id)).ExitCode, 0);
  return { out: (await k3.containerCore.containerLogs(c.Id)).map((l) => `${l.log}\n`).join('') };
}

function podmanOutput(podmanImage, user) {
  try {
    return { out: podman(...podmanRun, ...(user ? ['--user', user] : []), podmanImage, '/bin/sh', '-c', script) };
  } catch (e) {
    return { error: String(e.stderr).trim().replace(/^Error: /, '') };
  }
}

// Runs each user in image by k3-core and by podman, asserts the two agree,
// and returns k3-core's results by user.
async function sameAsPodman(image, podmanImage, users) {
  const got = {};
  for (const user of users) {
    got[user] = await k3Run(image, user);
    assert.deepEqual(got[user], podmanOutput(podmanImage, user), `user ${user}`);
  }
  return got;
}

test('names, uids and groups resolve as podman resolves them', { skip }, async () => {
  assert.ok(!missing, missing);
  const got = await sameAsPodman('users:groups', podmanImages[0],
    ['app', '1000', '4242', 'app:staff', '4242:staff', '1000:4343', 'ghost', 'app:nogroup']);
  // The details, so that a change in podman cannot pass unnoticed: a name
  // gets its passwd groups, a bare uid with no passwd entry group 0.
  assert.deepEqual(got.app, { out: 'uid=1000(app) gid=1001(app) groups=10(wheel),50(staff),1001(app)\nHOME=/home/app\n' });
  assert.deepEqual(got['4242'], { out: 'uid=4242 gid=0(root) groups=0(root)\nHOME=/\n' });
  assert.deepEqual(got.ghost, { error: 'unable to find user ghost: no matching entries in passwd file' });
});

test('root keeps its own group among its groups, as docker gives it', { skip }, async () => {
  assert.ok(!missing, missing);
  // docker lists the primary group among the supplementary ones; podman
  // leaves root's group 0 out there: otherwise the two agree.
  const podmans = podmanOutput(podmanImages[0], '').out;
  assert.equal(podmans, 'uid=0(root) gid=0(root) groups=10(wheel)\nHOME=/root\n');
  assert.deepEqual(await k3Run('users:groups', ''), { out: podmans.replace('groups=', 'groups=0(root),') });
});

test('passwd and group linked to host files are read inside the container, never from the host', { skip }, async () => {
  assert.ok(!missing, missing);
  const got = await sameAsPodman('users:hostlinks', podmanImages[1], ['intruder', '4242:intruders', '4711', '4711:4712']);
  assert.deepEqual(got.intruder, { error: 'unable to find user intruder: no matching entries in passwd file' });
  assert.deepEqual(got['4242:intruders'], { error: 'unable to find group intruders: no matching entries in group file' });
  assert.deepEqual(got['4711'], { out: 'uid=4711 gid=0 groups=0\nHOME=/\n' }, 'the host file\'s gid 4712 is not used');
});
