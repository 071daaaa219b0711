'use strict';
// Running containers with the host's OCI runtime: images built here with a
// static busybox, run by runc (and crun where installed).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');
const { containerRunReasons } = require('./helpers/runc');

const skip = need(containerRunReasons());
if (skip) console.log(`# skipping container runs: ${skip}`);

let tmp;
let k3;
const APPLETS = ['sh', 'echo', 'sleep', 'cat', 'touch', 'ls', 'true', 'false', 'id', 'pwd', 'env', 'kill'];

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-run-'));
  const img = images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'tmp', type: 'dir', mode: 0o1777 }, { path: 'work', type: 'dir' },
      { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' },
      { path: 'etc', type: 'dir' },
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/work:/bin/sh\n' },
      { path: 'etc/group', content: 'root:x:0:\napp:x:1001:\nstaff:x:50:\n' },
    ]],
    config: { Cmd: ['/bin/sh', '-c', 'echo default'], Env: ['PATH=/bin', 'FROM_IMAGE=yes'], WorkingDir: '/work' },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'busybox:run' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'busybox:run', { containerImageTransport: 'oci' });
});

after(async () => {
  if (!k3) return;
  for (const c of await k3.containerCore.listContainers()) {
    await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const sh = (script) => ['/bin/sh', '-c', script];
async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}
function mountsUnder(dir) {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir)).length;
}
async function waitFor(predicate, ms = 60000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

test('a short command: exit code and output come back', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'short', cmd: sh('echo out; echo err >&2; echo "$FROM_IMAGE $EXTRA $(pwd) $(id -u)"; exit 7'), env: ['EXTRA=1'] });
  const started = await k3.containerCore.startContainer('short');
  assert.ok(['running', 'exited'].includes(started.State));
  const waited = await k3.containerCore.waitContainer('short');
  assert.equal(waited.ExitCode, 7);
  const logs = await k3.containerCore.containerLogs('short');
  // Two pipes: each stream keeps its order; their interleaving is not defined.
  assert.deepEqual(logs.filter((l) => l.stream === 'stdout').map((l) => l.log), ['out', 'yes 1 /work 0']);
  assert.deepEqual(logs.filter((l) => l.stream === 'stderr').map((l) => l.log), ['err']);
  for (const l of logs) assert.ok(!Number.isNaN(Date.parse(l.time)));
  const [c] = await k3.containerCore.listContainers({ name: 'short' });
  assert.equal(c.State, 'exited');
  assert.equal(c.ExitCode, 7);
  assert.ok(Date.parse(c.FinishedAt) >= Date.parse(c.StartedAt));
  assert.deepEqual((await k3.containerCore.containerLogs('short', { stderr: false })).map((l) => l.log), ['out', 'yes 1 /work 0']);
  assert.deepEqual((await k3.containerCore.containerLogs('short', { tail: 1 })).map((l) => l.log), ['yes 1 /work 0']);
  assert.deepEqual(await k3.containerCore.containerLogs('short', { since: new Date(Date.now() + 60000).toISOString() }), []);
  assert.equal(mountsUnder(k3.root), 0, 'the rootfs is unmounted when the container ends');
});

test('a long-running container: running, exported while it writes, stopped', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'long', cmd: sh('echo ready > /tmp/ready; while true; do date >> /tmp/ticks 2>/dev/null || echo tick >> /tmp/ticks; sleep 0.05; done') });
  await k3.containerCore.startContainer('long');
  const running = await k3.containerCore.listContainers({ state: 'running' });
  assert.deepEqual(running.map((c) => c.Name), ['long']);
  assert.ok(running[0].Pid > 0);
  assert.equal(mountsUnder(k3.root), 1, 'its rootfs is an overlay mount');
  const written = path.join((await k3.containerCore.inspectContainer('long')).BundleDir, 'diff', 'tmp');
  assert.ok(await waitFor(() => fs.existsSync(path.join(written, 'ready')) && fs.existsSync(path.join(written, 'ticks'))), 'the process wrote');
  const file = path.join(tmp, 'long.tar');
  await k3.containerCore.exportContainer('long', file);
  const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
  assert.ok(names.includes('tmp/ready') && names.includes('tmp/ticks'), 'what the process wrote is in the export');
  const t = Date.now();
  const stopped = await k3.containerCore.stopContainer('long', { timeout: 1 });
  assert.equal(stopped.State, 'exited');
  assert.equal(stopped.ExitCode, 137, 'sh as PID 1 ignores SIGTERM, so SIGKILL after the timeout');
  assert.ok(Date.now() - t >= 900);
  assert.deepEqual(await k3.containerCore.listContainers({ state: 'running' }), []);
  assert.equal(mountsUnder(k3.root), 0);
});

test('killContainer sends the signal; a trap sees it', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'trap', cmd: sh("trap 'echo got TERM; exit 42' TERM; echo waiting; while true; do sleep 0.05; done") });
  await k3.containerCore.startContainer('trap');
  assert.ok(await waitFor(async () => (await k3.containerCore.containerLogs('trap')).length > 0));
  assert.deepEqual(await k3.containerCore.killContainer('trap', 'SIGTERM'), { Id: (await k3.containerCore.inspectContainer('trap')).Id, Signal: 'SIGTERM' });
  assert.equal((await k3.containerCore.waitContainer('trap')).ExitCode, 42);
  assert.deepEqual((await k3.containerCore.containerLogs('trap')).map((l) => l.log), ['waiting', 'got TERM']);
  const notRunning = await failure(k3.containerCore.killContainer('trap'));
  assert.ok(notRunning instanceof K3Core.errors.ContainerNotRunning, notRunning.name);
  assert.equal(notRunning.statusCode, 409);
  const badSignal = await failure(k3.containerCore.killContainer('trap', 'not a signal'));
  assert.ok(badSignal instanceof K3Core.errors.InvalidKillContainerParameters);
});

test('a process killed from outside shows exited', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'victim', cmd: sh('sleep 1000') });
  const started = await k3.containerCore.startContainer('victim');
  assert.equal(started.State, 'running');
  process.kill(started.Pid, 'SIGKILL');
  assert.ok(await waitFor(async () => (await k3.containerCore.listContainers({ name: 'victim' }))[0].State === 'exited'));
  assert.equal((await k3.containerCore.inspectContainer('victim')).ExitCode, 137);
});

test('a container whose monitor died is never shown running', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'orphan', cmd: sh('sleep 1000') });
  const started = await k3.containerCore.startContainer('orphan');
  // Kill the monitor first, then the process: nobody records the exit.
  const monitors = execFileSync('pgrep', ['-f', `k3-monitor .* ${started.Id}`], { encoding: 'utf8' }).trim().split('\n');
  for (const pid of monitors) process.kill(Number(pid), 'SIGKILL');
  process.kill(started.Pid, 'SIGKILL');
  assert.ok(await waitFor(async () => (await k3.containerCore.listContainers({ name: 'orphan' }))[0].State === 'exited'));
  assert.equal((await k3.containerCore.inspectContainer('orphan')).ExitCode, 255, 'an exit nobody saw, as docker reports it');
  spawnSync('runc', ['delete', '--force', started.Id]);
});

test('a container outlives the process that started it, and its exit is still recorded', { skip }, async () => {
  const root = k3.root;
  await runInChild(`
    const k3 = new K3Core({ root: ${JSON.stringify(root)} });
    await k3.containerCore.createContainer('busybox:run', { name: 'survivor', cmd: ['/bin/sh', '-c', 'while [ ! -e /go ]; do sleep 0.05; done; exit 3'] });
    await k3.containerCore.startContainer('survivor');
    done('started');`);
  const [c] = await k3.containerCore.listContainers({ name: 'survivor' });
  assert.equal(c.State, 'running', 'still running after its starter exited');
  fs.writeFileSync(path.join(tmp, 'go'), '');
  await k3.containerCore.copyToContainer('survivor', path.join(tmp, 'go'), '/');
  assert.equal((await k3.containerCore.waitContainer('survivor')).ExitCode, 3);
});

test('restartContainer runs it again', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'again', cmd: sh('echo run; sleep 1000') });
  await k3.containerCore.startContainer('again');
  assert.ok(await waitFor(async () => (await k3.containerCore.containerLogs('again')).length === 1));
  const restarted = await k3.containerCore.restartContainer('again', { timeout: 0 });
  assert.equal(restarted.State, 'running');
  assert.ok(await waitFor(async () => (await k3.containerCore.containerLogs('again')).length === 2), 'a second run wrote again');
  await k3.containerCore.stopContainer('again', { timeout: 0 });
});

test('removeContainer of a running one needs force, then stops it first', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'busy', cmd: sh('sleep 1000') });
  const started = await k3.containerCore.startContainer('busy');
  const refused = await failure(k3.containerCore.removeContainer('busy'));
  assert.ok(refused instanceof K3Core.errors.ContainerIsRunning, refused.name);
  assert.equal(refused.statusCode, 409);
  const removed = await k3.containerCore.removeContainer('busy', { force: true });
  assert.equal(removed.Removed, true);
  assert.equal(fs.existsSync(`/proc/${started.Pid}`), false, 'its process is gone');
  assert.equal(mountsUnder(k3.root), 0);
});

test('network none has only loopback; host has the host interfaces; bind mounts work', { skip }, async () => {
  const shared = path.join(tmp, 'shared');
  fs.mkdirSync(shared);
  fs.writeFileSync(path.join(shared, 'in.txt'), 'from the host\n');
  const ifaces = sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '");
  await k3.containerCore.createContainer('busybox:run', { name: 'net-none', cmd: ifaces });
  await k3.containerCore.createContainer('busybox:run', { name: 'net-host', cmd: ifaces, network: 'host' });
  await k3.containerCore.createContainer('busybox:run', {
    name: 'mounted', cmd: sh('cat /data/in.txt; echo back > /data/out.txt; echo x > /ro/x || echo ro-refused'),
    mounts: [{ source: shared, destination: '/data' }, { source: shared, destination: '/ro', readOnly: true }],
  });
  for (const name of ['net-none', 'net-host', 'mounted']) {
    await k3.containerCore.startContainer(name);
    assert.equal((await k3.containerCore.waitContainer(name)).ExitCode, 0, name);
  }
  const none = (await k3.containerCore.containerLogs('net-none'))[0].log.trim();
  const host = (await k3.containerCore.containerLogs('net-host'))[0].log.trim().split(' ');
  assert.equal(none, 'lo');
  const hostIfaces = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim()).sort();
  assert.deepEqual(host, hostIfaces);
  assert.deepEqual((await k3.containerCore.containerLogs('mounted', { stderr: false })).map((l) => l.log), ['from the host', 'ro-refused']);
  assert.equal(fs.readFileSync(path.join(shared, 'out.txt'), 'utf8'), 'back\n');
  const badNet = await failure(k3.containerCore.createContainer('busybox:run', { network: 'bridge' }));
  assert.ok(badNet instanceof K3Core.errors.InvalidCreateContainerParameters);
});

test('crun runs the same bundle when chosen', { skip: skip || need(whichSync('crun') ? false : 'crun is not installed') }, async (t) => {
  const withCrun = new K3Core({ root: k3.root, runtime: 'crun' });
  await withCrun.containerCore.createContainer('busybox:run', { name: 'by-crun', cmd: sh('echo crun; exit 5') });
  try {
    await withCrun.containerCore.startContainer('by-crun');
  } catch (e) {
    // Some hosts' cgroup setups are refused by crun itself: that is crun's
    // verdict on the host, reported in its own words, not a k3-core failure.
    assert.ok(e instanceof K3Core.errors.RuntimeFailure, e.name);
    if (/cgroup/i.test(e.details.error)) return t.skip(`crun cannot run containers on this host: ${e.details.error}`);
    throw e;
  }
  assert.equal((await withCrun.containerCore.waitContainer('by-crun')).ExitCode, 5);
  assert.deepEqual((await withCrun.containerCore.containerLogs('by-crun')).map((l) => l.log), ['crun']);
});

test('pause freezes the processes, unpause thaws them; a paused container still stops', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'frozen', cmd: sh('while true; do echo t >> /tmp/ticks; sleep 0.02; done') });
  await k3.containerCore.startContainer('frozen');
  const ticks = path.join((await k3.containerCore.inspectContainer('frozen')).BundleDir, 'diff', 'tmp', 'ticks');
  const count = () => (fs.existsSync(ticks) ? fs.readFileSync(ticks, 'utf8').length : 0);
  assert.ok(await waitFor(() => count() > 0));
  assert.equal((await k3.containerCore.pauseContainer('frozen')).State, 'paused');
  assert.deepEqual((await k3.containerCore.listContainers({ state: 'paused' })).map((c) => c.Name), ['frozen']);
  const atPause = count();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(count(), atPause, 'nothing runs while paused');
  const again = await failure(k3.containerCore.pauseContainer('frozen'));
  assert.ok(again instanceof K3Core.errors.ContainerNotRunning, again.name);
  assert.equal((await k3.containerCore.unpauseContainer('frozen')).State, 'running');
  assert.ok(await waitFor(() => count() > atPause), 'it runs again');
  const notPaused = await failure(k3.containerCore.unpauseContainer('frozen'));
  assert.ok(notPaused instanceof K3Core.errors.ContainerNotPaused, notPaused.name);
  await k3.containerCore.pauseContainer('frozen');
  const stopped = await k3.containerCore.stopContainer('frozen', { timeout: 0 });
  assert.equal(stopped.State, 'exited');
});

test('users by name come from the container\'s own passwd and group files', { skip }, async () => {
  const cases = [['app', '1000 1001'], ['app:staff', '1000 50'], ['1000', '1000 1001'], ['4242:4343', '4242 4343']];
  for (const [user, want] of cases) {
    const name = `user-${user.replace(/:/g, '-')}`;
    await k3.containerCore.createContainer('busybox:run', { name, user, cmd: sh('echo "$(id -u) $(id -g)"') });
    await k3.containerCore.startContainer(name);
    assert.equal((await k3.containerCore.waitContainer(name)).ExitCode, 0, user);
    assert.equal((await k3.containerCore.containerLogs(name))[0].log, want, user);
  }
  await k3.containerCore.createContainer('busybox:run', { name: 'ghost', user: 'ghost' });
  const err = await failure(k3.containerCore.startContainer('ghost'));
  assert.ok(err instanceof K3Core.errors.RuntimeFailure, err.name);
  assert.equal(err.details.error, 'unable to find user ghost: no matching entries in passwd file');
  assert.equal(mountsUnder(k3.root), 0);
});

test('errors: no runtime, runtime failure with its own message, as root and as an unprivileged user', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:run', { name: 'errs', cmd: ['/no/such/binary'] });
  const noRuntime = await failure(new K3Core({ root: k3.root, runtime: 'k3-no-such-runtime' }).containerCore.startContainer('errs'));
  assert.ok(noRuntime instanceof K3Core.errors.RuntimeNotFound, noRuntime.name);
  assert.match(noRuntime.details.error, /k3-no-such-runtime/);
  const failed = await failure(k3.containerCore.startContainer('errs'));
  assert.ok(failed instanceof K3Core.errors.RuntimeFailure, `${failed.name}: ${failed.details.error}`);
  assert.match(failed.details.error, /no such file or directory/i, 'the runtime\'s own message');
  assert.equal((await k3.containerCore.inspectContainer('errs')).State, 'created', 'a failed start leaves it created');
  assert.equal(mountsUnder(k3.root), 0);
  // An unprivileged process runs it in a user namespace (rootless-run.test.js),
  // and fails as root does, with the runtime's own words. Its store is its
  // own: layers root unpacked are not its to use (UnpackedOtherwise).
  const store = path.join(tmp, 'unpriv-store');
  execFileSync('chown', ['-R', '65534:65534', tmp]);
  const script = `const K3Core = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const k3u = new K3Core({ root: ${JSON.stringify(store)} });
    k3u.imageCore.pullAnImage(${JSON.stringify(path.join(tmp, 'layout'))}, 'busybox:run', { containerImageTransport: 'oci' })
      .then(() => k3u.containerCore.createContainer('busybox:run', { name: 'errs', cmd: ['/no/such/binary'] }))
      .then(() => k3u.containerCore.startContainer('errs'))
      .then(() => console.log('started'), (e) => console.log(JSON.stringify({ name: e.name, error: e.details.error })));`;
  const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
  const result = JSON.parse(out);
  assert.equal(result.name, 'RuntimeFailure', out);
  assert.match(result.error, /no such file or directory/i);
  execFileSync('chown', ['-R', '0:0', tmp]);
});
