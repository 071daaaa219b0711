'use strict';
// A real Docker daemon as an oracle: Debian's dockerd (docker.io), started
// by the tests as root with a data root, exec root, socket and config of its
// own (vfs storage, no iptables, no bridge), so it touches nothing of the
// host's and needs no network. `docker save` of its images is what our
// archives are compared with byte for byte.
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { whichSync } = require('./registry');

const READY_TIMEOUT_MS = 60000;

// The Docker CLI of the same package as the daemon, where installed.
function dockerClient() {
  return fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : whichSync('docker');
}

// Why the oracle cannot run here, or false.
function dockerUnavailable() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root (dockerd needs it)';
  if (!whichSync('dockerd')) return 'dockerd is not installed (Debian package docker.io)';
  if (!dockerClient()) return 'the docker client is not installed';
  return false;
}

function run(bin, args, { timeout = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
      resolve(stdout);
    });
  });
}

async function startDocker() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-dockerd-'));
  const sock = path.join(dir, 'docker.sock');
  const configFile = path.join(dir, 'daemon.json');
  fs.writeFileSync(configFile, '{}\n');
  const log = fs.openSync(path.join(dir, 'dockerd.log'), 'w');
  const child = spawn('dockerd', [
    '--config-file', configFile, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'),
    '--pidfile', path.join(dir, 'dockerd.pid'), '-H', `unix://${sock}`, '--storage-driver', 'vfs',
    '--iptables=false', '--ip6tables=false', '--bridge', 'none',
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = false;
  const exitPromise = new Promise((resolve) => child.on('exit', () => { exited = true; resolve(); }));
  child.unref();
  const client = dockerClient();
  const docker = (...args) => run(client, ['-H', `unix://${sock}`, ...args]);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      await docker('version', '--format', '{{.Server.Version}}');
      break;
    } catch (e) {
      if (exited || Date.now() > deadline) {
        const tail = fs.readFileSync(path.join(dir, 'dockerd.log'), 'utf8').split('\n').slice(-5).join('\n');
        await stop();
        throw new Error(`dockerd did not start: ${tail}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  async function stop() {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exitPromise;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { docker, stop, version: (await docker('version', '--format', '{{.Server.Version}}')).trim() };
}

module.exports = { startDocker, dockerUnavailable };
