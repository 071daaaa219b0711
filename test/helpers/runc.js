'use strict';
// What running containers in a test needs: root, runc and a static busybox
// to build images from. Returns why not, or '' when all is there.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const { whichSync } = require('./registry');

function containerRunReasons() {
  const reasons = [];
  if (process.getuid() !== 0) reasons.push('not root');
  if (!whichSync('runc')) reasons.push('runc is not installed');
  if (!fs.existsSync('/bin/busybox')) reasons.push('busybox-static is not installed');
  return reasons.join(', ');
}

// A layer's files: a static busybox with the given applets (symlinks to
// it), and the directories a container's mounts need.
function busyboxFiles(applets) {
  return [
    { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' },
  ];
}

// A busybox image with the given applets, written as an OCI layout at dir
// under the name ref.
function writeBusyboxLayout(dir, ref, applets) {
  const images = require('./images');
  const img = images.makeImage({
    layers: [busyboxFiles(applets)],
    config: { Cmd: ['sleep', '600'], Env: ['PATH=/bin'] },
  });
  images.writeOciLayout(dir, [{ image: img, refName: ref }]);
}

// A store of its own under a new temp dir, holding a busybox image named
// ref with the given applets, ready to create containers from. remove()
// force-removes every container and the temp dir.
async function busyboxStore(prefix, ref, applets) {
  const K3Core = require('../..');
  const os = require('node:os');
  const path = require('node:path');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  writeBusyboxLayout(path.join(tmp, 'layout'), ref, applets);
  const k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), ref, { containerImageTransport: 'oci' });
  const remove = async () => {
    for (const c of await k3.containerCore.listContainers()) {
      await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  return { tmp, k3, remove };
}
// What the host shows of container id, whatever the store says: how many
// mounts name it, the runtime's status of it ('' when the runtime has no
// such container), and the pids of its monitors.
function mountsOf(id) {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(id)).length;
}
function runcStatus(id) {
  try {
    return JSON.parse(execFileSync('runc', ['state', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).status;
  } catch {
    return '';
  }
}
function monitorPids(id) {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const args = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return args[0].endsWith('k3-monitor') && args[3] === id;
    } catch {
      return false; // it ended while we looked
    }
  }).map(Number);
}

module.exports = { containerRunReasons, busyboxFiles, writeBusyboxLayout, busyboxStore, mountsOf, runcStatus, monitorPids };
