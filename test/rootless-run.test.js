'use strict';
// Running containers as an ordinary user (helpers/ordinary-user.js): the
// monitor in a user namespace over the user's subordinate range, the rootfs
// mounted there with the kernel's overlay, runc in rootless mode with its
// state under the store, and the typed errors of what the host forbids.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { need } = require('./helpers/need');
const { ordinaryUserReasons, ordinaryUser, giveTo, runAs } = require('./helpers/ordinary-user');
const { containerRunReasons, busyboxFiles, writeBusyboxLayout } = require('./helpers/runc');
const { whichSync } = require('./helpers/registry');

const skip = need([ordinaryUserReasons(), containerRunReasons()].filter(Boolean).join(', '));
const APPLETS = ['sh', 'id', 'cat', 'wc', 'sleep', 'chown', 'stat', 'touch', 'echo', 'mkdir'];

let tmp;
let layout;
before(() => {
  if (skip) return;
  // Lowercase, so podman can name an image pulled from it after its path.
  tmp = path.join(os.tmpdir(), `k3-rootless-${process.pid}`);
  fs.mkdirSync(tmp, { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  layout = path.join(tmp, 'layout');
  writeBusyboxLayout(layout, 'busybox:rootless', APPLETS);
  execFileSync('chmod', ['-R', 'a+rX', layout]);
});

after(() => {
  if (!tmp) return;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const name of ['store', 'orphan', 'nouidmap', 'aborted', 'nouserns', 'overlaid', 'kinds', 'limit']) {
    for (const subordinate of [true, false]) fs.rmSync(path.join(ordinaryUser({ subordinate }).home, `k3-rootless-${name}-${process.pid}`), { recursive: true, force: true });
  }
});

// The child's side: a store under the user's home with the busybox image,
// and helpers for a container's whole run. Passed to each child as source.
async function withStore(K3Core, input, body) {
  const os = require('node:os');
  const path = require('node:path');
  const root = path.join(os.homedir(), `k3-rootless-${input.store || 'store'}-${input.run}`);
  const k3 = new K3Core({ root });
  if (!(await k3.imageCore.listImages()).length) {
    await k3.imageCore.pullAnImage(input.layout, 'busybox:rootless', { containerImageTransport: 'oci' });
  }
  const cc = k3.containerCore;
  const logs = async (id) => (await cc.containerLogs(id)).map((e) => e.log).join('\n');
  const run = async (cmd, opts = {}) => {
    const c = await cc.createContainer('busybox:rootless', { cmd, ...opts });
    await cc.startContainer(c.Id);
    const { ExitCode } = await cc.waitContainer(c.Id);
    const out = await logs(c.Id);
    await cc.removeContainer(c.Id);
    return { ExitCode, out };
  };
  const state = async (id) => {
    const { State, ExitCode, Pid } = await cc.inspectContainer(id);
    return { State, ExitCode, Pid };
  };
  // The error a start or pause of a new sleeping container fails with.
  const failure = async (act) => {
    const c = await cc.createContainer('busybox:rootless', { cmd: ['sleep', '600'] });
    try {
      await act(c.Id);
      return { succeeded: true };
    } catch (e) {
      return { name: e.name, details: e.details, full: e.createFullMessage() };
    } finally {
      await cc.removeContainer(c.Id, { force: true });
    }
  };
  return body({ k3, cc, run, logs, state, failure, root });
}

// Runs fn(ctx, input) in a child as user, where ctx is withStore's.
async function asUser(user, fn, input = {}, options) {
  const body = `async (K3Core, input) => (${withStore.toString()})(K3Core, input, (ctx) => (${fn.toString()})(ctx, input))`;
  // Stores of this run's own, as other test runs may use the same user.
  const r = await runAs(user, { toString: () => body }, { layout, run: process.pid, ...input }, options);
  assert.equal(r.code, 0, `${r.error && (r.error.full || r.error.message)}\n${r.stderr}`);
  return r.result;
}

test('as a user with a subordinate range: root inside, the range mapped, create/start/wait/logs/remove', { skip }, async () => {
  const user = ordinaryUser();
  const range = fs.readFileSync('/etc/subuid', 'utf8').split('\n').find((l) => l.startsWith(`${user.name}:`)).split(':');
  const result = await asUser(user, async ({ run, root }) => {
    const fs = require('node:fs');
    const inside = await run(['sh', '-c', 'id -u; id -g; cat /proc/self/uid_map; touch /tmp/f; chown 1000:1000 /tmp/f && stat -c %u:%g /tmp/f']);
    return { inside, runtimeState: fs.existsSync(`${root}/runtime`), xdg: process.env.XDG_RUNTIME_DIR || null };
  });
  const lines = result.inside.out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  assert.equal(result.inside.ExitCode, 0, result.inside.out);
  assert.deepEqual(lines, ['0', '0', `0 ${user.uid} 1`, `1 ${range[1]} ${range[2]}`, '1000:1000']);
  assert.equal(result.runtimeState, true, "runc's state is under the store");
  assert.equal(result.xdg, null);
});

test('as a user: network none is a namespace of its own with loopback only, host is the host\'s', { skip }, async () => {
  const hostInterfaces = fs.readFileSync('/proc/net/dev', 'utf8').trim().split('\n').length - 2;
  const result = await asUser(ordinaryUser(), async ({ run }) => {
    const count = ['sh', '-c', 'cat /proc/net/dev | wc -l'];
    return { none: await run(count, { network: 'none' }), host: await run(count, { network: 'host' }) };
  });
  assert.equal(Number(result.none.out.trim()) - 2, 1, `none: ${result.none.out}`);
  assert.equal(Number(result.host.out.trim()) - 2, hostInterfaces, `host: ${result.host.out}`);
});

test('as a user: stop, kill, restart and exec act on the container inside its namespace', { skip }, async () => {
  const result = await asUser(ordinaryUser(), async ({ cc, state }) => {
    const c = await cc.createContainer('busybox:rootless', { cmd: ['sleep', '600'] });
    await cc.startContainer(c.Id);
    const exec = await cc.execContainer(c.Id, ['id', '-u']);
    // A user by name, from the container's own passwd, in its mounted rootfs.
    await cc.execContainer(c.Id, ['sh', '-c', 'mkdir -p /etc; echo app:x:1000:1000::/:/bin/sh > /etc/passwd']);
    const execAs = await cc.execContainer(c.Id, ['sh', '-c', 'id -u; id -g'], { user: 'app' });
    const first = await state(c.Id);
    await cc.restartContainer(c.Id, { timeout: 0 });
    const restarted = await state(c.Id);
    await cc.stopContainer(c.Id, { timeout: 1 });
    const stopped = await state(c.Id);
    await cc.startContainer(c.Id);
    await cc.killContainer(c.Id, 'SIGKILL');
    const killed = await cc.waitContainer(c.Id);
    await cc.removeContainer(c.Id);
    return { exec, execAs, first, restarted, stopped, killed };
  });
  assert.equal(result.exec.ExitCode, 0);
  assert.equal(result.exec.stdout.trim(), '0');
  assert.equal(result.execAs.stdout.trim(), '1000\n1000', JSON.stringify(result.execAs));
  assert.equal(result.first.State, 'running');
  assert.equal(result.restarted.State, 'running');
  assert.notEqual(result.restarted.Pid, result.first.Pid);
  assert.equal(result.stopped.State, 'exited');
  assert.equal(result.stopped.ExitCode, 137, 'sleep as pid 1 ignores SIGTERM: killed after the timeout');
  assert.equal(result.killed.ExitCode, 137);
});

test('as a user: a container whose monitor died is ended and exited (137), and starts again, as for root', { skip }, async () => {
  const user = ordinaryUser();
  const started = await asUser(user, async ({ cc, state }) => {
    const c = await cc.createContainer('busybox:rootless', { name: 'orphaned', cmd: ['sleep', '600'] });
    await cc.startContainer(c.Id);
    return { id: c.Id, pid: (await state(c.Id)).Pid };
  }, { store: 'orphan' });
  const monitor = Number(execFileSync('pgrep', ['-f', `k3-monitor .* ${started.id}`], { encoding: 'utf8' }).trim());
  assert.ok(monitor > 0);
  assert.equal(fs.statSync(`/proc/${monitor}`).uid, user.uid, 'the monitor runs as the user');
  process.kill(monitor, 'SIGKILL');
  try {
    const after = await asUser(user, async ({ cc, state }, input) => {
      // Reading it ends what the dead monitor left, as containerd ends a
      // task whose shim died.
      const seen = await state(input.id);
      const again = await cc.startContainer(input.id).then((c) => c.State, (e) => `${e.name}: ${e.details && e.details.error}`);
      await cc.removeContainer(input.id, { force: true });
      return { ...seen, again };
    }, { store: 'orphan', id: started.id });
    assert.equal(after.State, 'exited');
    assert.equal(after.ExitCode, 137);
    assert.equal(after.again, 'running');
    // Ended: gone, or a zombie its new parent has yet to reap.
    const ended = () => {
      try {
        return fs.readFileSync(`/proc/${started.pid}/stat`, 'utf8').split(') ').at(-1).startsWith('Z');
      } catch {
        return true;
      }
    };
    for (const end = Date.now() + 60000; !ended() && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
    assert.ok(ended(), 'the orphaned run ended');
  } finally {
    try {
      process.kill(started.pid, 'SIGKILL'); // the container outlives its monitor, as for root
    } catch {}
  }
});

test('as a user: pause is FreezerNotDelegated, with the reason and the fix; a running container exports, and commits with pause: false', { skip }, async () => {
  const result = await asUser(ordinaryUser(), async ({ cc, failure }) => {
    const pause = await failure(async (id) => {
      await cc.startContainer(id);
      await cc.pauseContainer(id);
    });
    const commit = await failure(async (id) => {
      await cc.startContainer(id);
      await cc.commitContainer(id, { repository: 'committed', tag: 'running' });
    });
    const stats = await failure(async (id) => {
      await cc.startContainer(id);
      await cc.containerStats(id);
    });
    const c = await cc.createContainer('busybox:rootless', { cmd: ['sh', '-c', 'echo written > /written; sleep 600'] });
    await cc.startContainer(c.Id);
    while (!(await cc.containerChanges(c.Id)).some((ch) => ch.Path === '/written')) await new Promise((r) => setTimeout(r, 20));
    const committed = await cc.commitContainer(c.Id, { repository: 'committed', tag: 'running', pause: false });
    const tar = require('node:path').join(require('node:os').homedir(), 'running.tar');
    await cc.exportContainer(c.Id, tar);
    const exported = require('node:child_process').execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    require('node:fs').rmSync(tar);
    const still = (await cc.inspectContainer(c.Id)).State;
    await cc.removeContainer(c.Id, { force: true });
    return { pause, commit, stats, committed: committed.RepoTags, still, exported: exported.filter((e) => /^(\.\/)?(written|bin\/busybox)$/.test(e)) };
  });
  assert.equal(result.pause.name, 'FreezerNotDelegated');
  assert.equal(result.pause.details.statusCode, 403);
  assert.match(result.pause.details.error, /no cgroup/);
  assert.match(result.pause.full, /fix: .*pause: false/);
  assert.equal(result.commit.name, 'CommitContainerFailure', JSON.stringify(result.commit));
  assert.match(result.commit.details.error, /pause: false.*no cgroup/);
  assert.equal(result.stats.name, 'StatsUnavailable', JSON.stringify(result.stats));
  assert.deepEqual(result.committed, ['docker.io/library/committed:running']);
  assert.equal(result.still, 'running');
  assert.equal(result.exported.length, 2, 'the running container\'s export holds its own file and the image\'s');
});

test('as a user: an aborted start settles with nothing of it left, as for root', { skip }, async () => {
  const user = ordinaryUser();
  const result = await asUser(user, async ({ cc }) => {
    const fs = require('node:fs');
    const monitorsOf = (id) => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        const args = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return args[0].endsWith('k3-monitor') && args[3] === id;
      } catch {
        return false;
      }
    }).length;
    const outcomes = [];
    for (const delay of [0, 5, 10, 20, 40, 80, 160, 320]) {
      const c = await cc.createContainer('busybox:rootless', { cmd: ['sleep', '600'] });
      const abort = new AbortController();
      const started = cc.startContainer(c.Id, { signal: abort.signal }).then((x) => x.State, (e) => e.name);
      setTimeout(() => abort.abort(), delay);
      const result = await Promise.race([started, new Promise((r) => setTimeout(() => r('hung'), 60000))]);
      if (result === 'hung') {
        // The start holds the container's lock: nothing more can be done here.
        setTimeout(() => process.exit(0), 200);
        return { outcomes: [...outcomes, { delay, result, id: c.Id }] };
      }
      const { State } = await cc.inspectContainer(c.Id);
      outcomes.push({ delay, result, state: State, monitors: monitorsOf(c.Id) });
      await cc.removeContainer(c.Id, { force: true });
    }
    return { outcomes };
  }, { store: 'aborted' });
  const hung = result.outcomes.find((o) => o.result === 'hung');
  if (hung) {
    for (const pid of execFileSync('sh', ['-c', `pgrep -f 'k3-monitor .* ${hung.id}' || true`], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) {
      // The monitor's session holds the runtime and the container too.
      execFileSync('sh', ['-c', `pkill -KILL -s ${Number(pid)} || true`]);
    }
  }
  for (const o of result.outcomes) {
    if (o.result === 'AbortError') assert.deepEqual(o, { delay: o.delay, result: 'AbortError', state: 'created', monitors: 0 });
    else assert.deepEqual(o, { delay: o.delay, result: 'running', state: 'running', monitors: 1 });
  }
  assert.ok(result.outcomes.some((o) => o.result === 'AbortError'), `starts were aborted on the way: ${JSON.stringify(result.outcomes)}`);
});

test('as a user: a file copied into a running container, or removed from it, changes its mounted root, as for root', { skip }, async () => {
  const result = await asUser(ordinaryUser(), async ({ cc }) => {
    const fs = require('node:fs');
    const path = require('node:path');
    const src = path.join(require('node:os').homedir(), `copied-${process.pid}.txt`);
    fs.writeFileSync(src, 'copied in\n');
    const c = await cc.createContainer('busybox:rootless', { cmd: ['sleep', '600'] });
    await cc.startContainer(c.Id);
    const attempt = (p) => p.then(() => 'ok', (e) => `${e.name}: ${e.details && e.details.error}`);
    try {
      const copied = await attempt(cc.copyToContainer(c.Id, src, '/copied.txt'));
      const seen = (await cc.execContainer(c.Id, ['cat', '/copied.txt'])).stdout;
      const removed = await attempt(cc.removeFromContainer(c.Id, '/copied.txt'));
      const after = (await cc.execContainer(c.Id, ['sh', '-c', '[ -e /copied.txt ] && echo there || echo gone'])).stdout.trim();
      return { copied, seen, removed, after };
    } finally {
      fs.rmSync(src);
      await cc.removeContainer(c.Id, { force: true });
    }
  });
  assert.deepEqual(result, { copied: 'ok', seen: 'copied in\n', removed: 'ok', after: 'gone' });
});

test('as a user with no subordinate IDs: root inside over the one ID, other owners refused', { skip }, async () => {
  const user = ordinaryUser({ subordinate: false });
  const result = await asUser(user, async ({ run }) => run(['sh', '-c', 'id -u; cat /proc/self/uid_map; touch /tmp/f; chown 1000 /tmp/f || echo refused']));
  const lines = result.out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  assert.deepEqual(lines.filter((l) => !/Invalid argument/.test(l)), ['0', `0 ${user.uid} 1`, 'refused']);
});

// A PATH of its own under tmp with what a run needs (node, runc, nsenter)
// and tools, and nothing else.
function pathWith(name, tools) {
  const bin = path.join(tmp, name);
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of [process.execPath, 'runc', 'nsenter', ...tools]) {
    const at = path.isAbsolute(tool) ? tool : execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    fs.symlinkSync(at, path.join(bin, path.basename(at)));
  }
  return bin;
}

// What a user with no range loses, beside what a user with one keeps: no
// operation refuses (NoSubordinateIds is what CheckMultipleIDs names, not
// an error any call returns); the store keeps the true metadata (exports
// are root's: userns-store.test.js), the running container does not.
test('as a user with no subordinate IDs: nothing is refused; the running container sees every file as root\'s, where a user with a range sees the true owners', { skip }, async () => {
  const images = require('./helpers/images');
  const kinds = path.join(tmp, 'kinds');
  images.writeOciLayout(kinds, [{ image: images.makeImage({ layers: [...require('./helpers/kinds').layers(), busyboxFiles(['sh', 'stat'])], config: { Env: ['PATH=/bin'] } }), refName: 'kinds:1' }]);
  execFileSync('chmod', ['-R', 'a+rX', kinds]);
  const view = ['stat', '-c', '%n %u:%g %a %F', '/etc/shadow', '/bin/su', '/bin/wall', '/owners/u1000', '/run/fifo'];
  const seen = async ({ k3, cc, logs }, input) => {
    await k3.imageCore.pullAnImage(input.kinds, 'kinds:1', { containerImageTransport: 'oci' });
    const c = await cc.createContainer('kinds:1', { cmd: input.view, network: 'none' });
    await cc.startContainer(c.Id);
    const { ExitCode } = await cc.waitContainer(c.Id);
    const tar = require('node:path').join(require('node:os').homedir(), `kinds-${process.pid}.tar`);
    await cc.exportContainer(c.Id, tar);
    const exported = require('node:child_process').execFileSync('tar', ['--numeric-owner', '-tvf', tar], { encoding: 'utf8' });
    require('node:fs').rmSync(tar);
    const out = await logs(c.Id);
    await cc.removeContainer(c.Id);
    const shadow = exported.split('\n').find((l) => l.endsWith(' etc/shadow')).split(/\s+/).slice(0, 2).join(' ');
    return { ExitCode, out: out.trim().split('\n').map((l) => l.trim()), shadow };
  };
  const none = await asUser(ordinaryUser({ subordinate: false }), seen, { store: 'kinds', kinds, view });
  const range = await asUser(ordinaryUser(), seen, { store: 'kinds', kinds, view });
  assert.deepEqual(none, { ExitCode: 0, shadow: '-rw-r----- 0/42', out: [
    '/etc/shadow 0:0 640 regular file', '/bin/su 0:0 4755 regular file', '/bin/wall 0:0 2755 regular file',
    '/owners/u1000 0:0 644 regular file', '/run/fifo 0:0 600 regular empty file'] });
  assert.deepEqual(range, { ExitCode: 0, shadow: '-rw-r----- 0/42', out: [
    '/etc/shadow 0:42 640 regular file', '/bin/su 0:0 4755 regular file', '/bin/wall 0:5 2755 regular file',
    '/owners/u1000 1000:1001 644 regular file', '/run/fifo 33:33 600 fifo'] });
});

test('as a user with a range but no newuidmap: NewuidmapMissing, with the reason and the fix', { skip }, async () => {
  const user = ordinaryUser();
  const bin = pathWith('bin-without-uidmap', []);
  const result = await asUser(user, async ({ cc, failure }) => failure((id) => cc.startContainer(id)),
    { store: 'nouidmap' }, { env: { PATH: bin } });
  assert.equal(result.name, 'NewuidmapMissing', JSON.stringify(result));
  assert.match(result.details.error, /newuidmap and newgidmap are not installed/);
  assert.match(result.full, /fix: install them as root: apt-get install uidmap/);
});

test('as a user: the container sees what podman\'s sees as the same user (IDs, maps, network none)', { skip: skip || need(whichSync('podman') ? '' : 'podman is not installed') }, async () => {
  const view = ['sh', '-c', 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; cat /proc/net/dev | wc -l'];
  const result = await asUser(ordinaryUser(), async ({ run }, input) => {
    const { execFileSync } = require('node:child_process');
    const podman = (args) => execFileSync(input.podman, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    podman(['system', 'migrate']);
    const image = podman(['pull', '-q', `oci:${input.layout}`]).trim().split('\n').pop();
    const peer = podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', image, ...input.view]);
    podman(['rmi', '-f', image]);
    return { ours: (await run(input.view, { network: 'none' })).out, peer };
  }, { podman: whichSync('podman'), view });
  const norm = (s) => s.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  assert.deepEqual(norm(result.ours), norm(result.peer));
});

test('as a user: the container\'s process sees the image\'s true owners, as podman\'s does', { skip: skip || need(whichSync('podman') ? '' : 'podman is not installed') }, async () => {
  const images = require('./helpers/images');
  const owners = path.join(tmp, 'owners');
  const busybox = [
    { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...['sh', 'stat'].map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' },
  ];
  const owned = [
    { path: 'etc', type: 'dir' }, { path: 'etc/shadow', content: 'root:*:1::::::\n', mode: 0o640, uid: 0, gid: 42 },
    { path: 'home', type: 'dir' }, { path: 'home/app', type: 'dir', uid: 1000, gid: 1000 },
    { path: 'home/app/file', content: 'x', uid: 1000, gid: 1000 }, { path: 'home/app/setuid', content: 'y', mode: 0o4755, uid: 33, gid: 7 },
  ];
  images.writeOciLayout(owners, [{ image: images.makeImage({ layers: [busybox, owned], config: { Env: ['PATH=/bin'] } }), refName: 'owners:1' }]);
  execFileSync('chmod', ['-R', 'a+rX', owners]);
  const view = ['stat', '-c', '%n %u:%g %a', '/etc/shadow', '/home/app', '/home/app/file', '/home/app/setuid'];
  const result = await asUser(ordinaryUser(), async ({ k3, run }, input) => {
    const { execFileSync } = require('node:child_process');
    await k3.imageCore.pullAnImage(input.owners, 'owners:1', { containerImageTransport: 'oci' });
    const c = await k3.containerCore.createContainer('owners:1', { cmd: input.view, network: 'none' });
    await k3.containerCore.startContainer(c.Id);
    const { ExitCode } = await k3.containerCore.waitContainer(c.Id);
    const ours = (await k3.containerCore.containerLogs(c.Id)).map((e) => e.log).join('\n');
    await k3.containerCore.removeContainer(c.Id);
    const podman = (args) => execFileSync(input.podman, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    podman(['system', 'migrate']);
    const image = podman(['pull', '-q', `oci:${input.owners}`]).trim().split('\n').pop();
    const peer = podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', image, ...input.view]);
    podman(['rmi', '-f', image]);
    return { ExitCode, ours, peer };
  }, { podman: whichSync('podman'), owners, view });
  const norm = (s) => s.trim().split('\n').map((l) => l.trim());
  assert.equal(result.ExitCode, 0, result.ours);
  assert.deepEqual(norm(result.ours), ['/etc/shadow 0:42 640', '/home/app 1000:1000 755', '/home/app/file 1000:1000 644', '/home/app/setuid 33:7 4755']);
  assert.deepEqual(norm(result.ours), norm(result.peer));
});

test('as a user: copyToContainer and removeFromContainer reach into a running container\'s directories of other owners; what is copied belongs to 0:0', { skip }, async () => {
  const result = await asUser(ordinaryUser(), async ({ cc }) => {
    const fs = require('node:fs');
    const path = require('node:path');
    const src = path.join(require('node:os').homedir(), `copied-${process.pid}`);
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'note'), 'copied in\n');
    // A home of the container's user 1000 that only that user (and root) may enter.
    const setup = 'mkdir -p /home/app && echo mine > /home/app/own && chown -R 1000:1000 /home/app && chmod 700 /home/app && chmod 600 /home/app/own && echo ready > /tmp/ready; sleep 600';
    const c = await cc.createContainer('busybox:rootless', { cmd: ['sh', '-c', setup] });
    await cc.startContainer(c.Id);
    const inside = async (script) => (await cc.execContainer(c.Id, ['sh', '-c', script])).stdout.trim();
    while ((await inside('cat /tmp/ready 2>/dev/null')) !== 'ready') await new Promise((r) => setTimeout(r, 20));
    const attempt = (p) => p.then((r) => r.Path, (e) => `${e.name}: ${e.details && e.details.error}`);
    try {
      const copied = await attempt(cc.copyToContainer(c.Id, src, '/home/app/in'));
      const afterCopy = await inside('stat -c "%n %u:%g" /home/app/in /home/app/in/note; cat /home/app/in/note');
      const removed = await attempt(cc.removeFromContainer(c.Id, '/home/app/own'));
      const afterRemove = await inside('[ -e /home/app/own ] && echo there || echo gone');
      return { copied, afterCopy, removed, afterRemove };
    } finally {
      fs.rmSync(src, { recursive: true });
      await cc.removeContainer(c.Id, { force: true });
    }
  });
  assert.deepEqual(result, { copied: '/home/app/in', afterCopy: '/home/app/in 0:0\n/home/app/in/note 0:0\ncopied in', removed: '/home/app/own', afterRemove: 'gone' });
});

// user.max_user_namespaces is 0 in the child's own user namespace (root may
// not change the host's here: the tests hold no CAP_SYS_RESOURCE; a limit
// of 0 in a namespace refuses new namespaces in it as one on the host does).
test('as a user with user namespaces disabled (user.max_user_namespaces=0): what needs one is UserNamespacesDisabled, with the sysctl and the fix; the rest works', { skip }, async () => {
  const user = ordinaryUser();
  const hostLimit = fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8');
  const other = path.join(tmp, 'other');
  const images = require('./helpers/images');
  images.writeOciLayout(other, ['other:1', 'other:2'].map((refName, i) => ({ image: images.makeImage({ layers: [[{ path: 'other.txt', content: refName }]] }), refName })));
  execFileSync('chmod', ['-R', 'a+rX', other]);
  // Made while the host allows user namespaces: a container never started,
  // and a second image.
  const made = await asUser(user, async ({ k3, cc }, input) => {
    await k3.imageCore.pullAnImage(input.other, 'other:1', { containerImageTransport: 'oci' });
    return (await cc.createContainer('busybox:rootless', { cmd: ['echo', 'ran'] })).Id;
  }, { store: 'nouserns', other });
  const result = await asUser(user, async ({ k3, cc, root }, input) => {
    const limit = require('node:fs').readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim();
    const tar = require('node:path').join(require('node:os').homedir(), `nouserns-${process.pid}.tar`);
    const attempt = (p) => p.then((r) => ({ ok: r }), (e) => ({ name: e.name, error: e.details.error, fix: e.details.fix, full: e.createFullMessage() }));
    return {
      limit,
      // The store's records need no namespace.
      list: await attempt(k3.imageCore.listImages().then((l) => l.map((i) => i.RepoTags[0]).sort())),
      inspect: await attempt(cc.inspectContainer(input.made).then((c) => c.State)),
      create: await attempt(cc.createContainer('busybox:rootless', { cmd: ['true'] }).then((c) => c.Id.length)),
      // The unpacked trees and running do.
      start: await attempt(cc.startContainer(input.made)),
      export: await attempt(cc.exportContainer(input.made, tar)),
      changes: await attempt(cc.containerChanges(input.made)),
      copy: await attempt(cc.copyToContainer(input.made, input.layout, '/copied')),
      commit: await attempt(cc.commitContainer(input.made, { repository: 'committed', tag: '1' })),
      pull: await attempt(k3.imageCore.pullAnImage(input.other, 'other:2', { containerImageTransport: 'oci' })),
      removeImage: await attempt(k3.imageCore.removeImage('other:1')),
      images: await attempt(k3.imageCore.listImages().then((l) => l.map((i) => i.RepoTags[0]).sort())),
      layers: require('node:fs').readdirSync(require('node:path').join(root, 'layers')).length,
      remove: await attempt(cc.removeContainer(input.made)),
      removed: await attempt(cc.inspectContainer(input.made).then((c) => c.State)),
      exported: require('node:fs').existsSync(tar),
    };
  }, { store: 'nouserns', made, other }, { sysctls: { 'user.max_user_namespaces': 0 } });
  assert.equal(fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'), hostLimit, "the host's limit is left alone");
  assert.equal(result.limit, '0');
  assert.deepEqual(result.list, { ok: ['docker.io/library/busybox:rootless', 'docker.io/library/other:1'] });
  assert.deepEqual(result.inspect, { ok: 'created' });
  assert.deepEqual(result.create, { ok: 64 });
  for (const op of ['start', 'export', 'changes', 'copy', 'commit', 'pull', 'remove']) {
    const e = result[op];
    assert.equal(e.name, 'UserNamespacesDisabled', `${op}: ${JSON.stringify(e)}`);
    assert.equal(e.error, 'user namespaces are disabled for ordinary users: user.max_user_namespaces is 0', op);
    assert.match(e.full, /\n  fix: as root: sysctl -w user\.max_user_namespaces=15000/, op);
    assert.doesNotMatch(e.fix, /apparmor/, `${op}: the fix is this host's`);
  }
  assert.equal(result.exported, false, 'a refused export writes no file');
  // removeImage drops the record; the layer's directory waits for a
  // collection that may delete it.
  assert.deepEqual(result.removeImage.ok.Untagged, ['docker.io/library/other:1']);
  assert.deepEqual(result.images, { ok: ['docker.io/library/busybox:rootless'] });
  assert.equal(result.layers, 2);
  assert.deepEqual(result.removed, { ok: 'created' }, 'a refused remove leaves the container');
  // With the host's limit, the same container starts and is removed, and
  // the store's collection deletes the removed image's layer.
  const again = await asUser(user, async ({ cc, logs, root }, input) => {
    await cc.startContainer(input.made);
    const { ExitCode } = await cc.waitContainer(input.made);
    const out = await logs(input.made);
    await cc.removeContainer(input.made);
    return { ExitCode, out, layers: require('node:fs').readdirSync(require('node:path').join(root, 'layers')).length };
  }, { store: 'nouserns', made });
  assert.deepEqual(again, { ExitCode: 0, out: 'ran', layers: 1 });
});

// The limit of user namespaces used up: 1 in the child's own namespace,
// which a running container's monitor holds. The limit file reads 1, not
// 0: the kernel's refusal itself is the error.
test('as a user whose user namespaces are used up (user.max_user_namespaces reached): another start is UserNamespacesDisabled, with the reason and the fix; removals are done', { skip }, async () => {
  // The pull first, with the host's limit: the kernel frees an ended
  // helper's namespace a moment after it ends.
  await asUser(ordinaryUser(), async () => null, { store: 'limit' });
  const result = await asUser(ordinaryUser(), async ({ cc, failure, root }) => {
    const running = await cc.createContainer('busybox:rootless', { cmd: ['sleep', '600'] });
    // The one namespace allowed may still be counted to a helper the create
    // ran, for a moment after that helper ended: the first start waits it
    // out, for up to a minute on a loaded machine.
    for (let tries = 0; ; tries++) {
      try {
        await cc.startContainer(running.Id);
        break;
      } catch (err) {
        if (err.name !== 'UserNamespacesDisabled' || tries >= 600) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const second = await failure((id) => cc.startContainer(id));
    // Its bundle is deleted in a namespace, or left to a later collection.
    await cc.removeContainer(running.Id, { force: true });
    return { second, left: await cc.listContainers({ all: true }), bundles: require('node:fs').readdirSync(require('node:path').join(root, 'containers')).length };
  }, { store: 'limit' }, { sysctls: { 'user.max_user_namespaces': 1 } });
  assert.equal(result.second.name, 'UserNamespacesDisabled', JSON.stringify(result.second));
  assert.match(result.second.details.error, /^the kernel refuses this user another user namespace \(no space left on device\): user\.max_user_namespaces is reached/);
  assert.match(result.second.full, /\n  fix: as root where the limit is set .*sysctl -w user\.max_user_namespaces=15000/);
  assert.deepEqual(result.left, []);
  // With the host's limit, the store's collection deletes what was left.
  const after = await asUser(ordinaryUser(), async ({ root }) => require('node:fs').readdirSync(require('node:path').join(root, 'containers')).length, { store: 'limit' });
  assert.equal(after, 0, `bundles left then: ${result.bundles}`);
});

// The store on an overlay file system, as where k3-core runs in a container
// whose root is one: the kernel's overlay takes no upper layer there ("not
// supported as upperdir"), in a user namespace or not. fuse-overlayfs is
// then the only way, and it is either not installed (a PATH without it) or
// unusable (/dev/fuse is root's only on this kind of host).
test('as a user whose store is on an overlay file system, with no usable fuse-overlayfs: startContainer is OverlayUnavailable, with the reason and the fix; the store works', { skip }, async () => {
  const user = ordinaryUser();
  const backing = path.join(tmp, 'overlaid');
  for (const d of ['lower', 'upper', 'work']) fs.mkdirSync(path.join(backing, d), { recursive: true });
  fs.chownSync(path.join(backing, 'upper'), user.uid, user.gid);
  const store = path.join(user.home, `k3-rootless-overlaid-${process.pid}`);
  fs.mkdirSync(store);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', ['lower', 'upper', 'work'].map((d) => `${d}dir=${path.join(backing, d)}`).join(','), store]);
  try {
    assert.equal(execFileSync('stat', ['-f', '-c', '%T', store], { encoding: 'utf8' }).trim(), 'overlayfs');
    const attempt = async ({ k3, cc, failure }) => ({
      images: (await k3.imageCore.listImages()).map((i) => i.RepoTags[0]),
      start: await failure((id) => cc.startContainer(id)),
    });
    const notInstalled = await asUser(user, attempt, { store: 'overlaid' }, { env: { PATH: pathWith('bin-without-fuse-overlayfs', ['newuidmap', 'newgidmap']) } });
    const installed = await asUser(user, attempt, { store: 'overlaid' });
    for (const r of [notInstalled, installed]) assert.deepEqual(r.images, ['docker.io/library/busybox:rootless'], 'the store is pulled into and read');
    assert.equal(notInstalled.start.name, 'OverlayUnavailable', JSON.stringify(notInstalled.start));
    assert.match(notInstalled.start.details.error, /^the store is on a file system of type overlay, which the kernel's overlay cannot take as its upper layer \(invalid argument\), and fuse-overlayfs cannot stand in: it is not installed$/);
    assert.match(notInstalled.start.full, /\n  fix: put the store on a local file system such as ext4, xfs or btrfs \(the root option\), or install fuse-overlayfs/);
    if ((fs.statSync('/dev/fuse').mode & 0o006) === 0o006) {
      assert.deepEqual(installed.start, { succeeded: true }, 'with /dev/fuse open to users, fuse-overlayfs mounts the rootfs');
    } else {
      assert.equal(installed.start.name, 'OverlayUnavailable', JSON.stringify(installed.start));
      assert.match(installed.start.details.error, /fuse-overlayfs cannot stand in: it is installed, but this user cannot open \/dev\/fuse/);
    }
  } finally {
    execFileSync('umount', [store]);
  }
});
