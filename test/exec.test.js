'use strict';
// Running a command in a running container (execContainer, `k3 exec`) with
// the host's runc, in an image built here with a static busybox.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { need } = require('./helpers/need');
const { containerRunReasons } = require('./helpers/runc');
const exitCodes = require('../js/cli/exit-codes.json');
const { whichSync } = require('./helpers/registry');

const skip = need(containerRunReasons());
const skipTmux = skip || need(whichSync('tmux') ? null : 'tmux is not installed');

const K3 = path.join(__dirname, '..', 'bin', 'k3.js');
const APPLETS = ['sh', 'echo', 'sleep', 'cat', 'true', 'id', 'pwd', 'env', 'ps', 'wc', 'stty', 'tty'];

let tmp;
let root;
let k3;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-exec-'));
  root = path.join(tmp, 'store');
  const img = images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'bin/not-a-program', content: 'just text\n', mode: 0o644 },
      { path: 'tmp', type: 'dir', mode: 0o1777 }, { path: 'work', type: 'dir' },
      { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' },
      { path: 'etc', type: 'dir' },
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/work:/bin/sh\n' },
      { path: 'etc/group', content: 'root:x:0:\napp:x:1001:\nstaff:x:50:app\n' },
    ]],
    config: { Cmd: ['sleep', '600'], Env: ['PATH=/bin', 'FROM_IMAGE=yes', 'MODE=image'], WorkingDir: '/work' },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'busybox:exec' }]);
  k3 = new K3Core({ root });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'busybox:exec', { containerImageTransport: 'oci' });
  await k3.containerCore.createContainer('busybox:exec', { name: 'box' });
  await k3.containerCore.startContainer('box');
});

after(async () => {
  if (!k3) return;
  for (const c of await k3.containerCore.listContainers()) {
    await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const sh = (script) => ['sh', '-c', script];
const exec = (cmd, options) => k3.containerCore.execContainer('box', cmd, options);
async function failure(promise) {
  return promise.then((v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`), (e) => e);
}
// The processes running in the container, by their command lines.
async function processes() {
  const { stdout } = await exec(['ps', '-o', 'args']);
  return stdout.split('\n').slice(1).filter(Boolean);
}
// An aborted call rejects at once; the engine kills the process just after.
async function assertGone(command) {
  const end = Date.now() + 60000;
  let left = await processes();
  while (left.some((p) => p.includes(command)) && Date.now() < end) left = await processes();
  assert.ok(!left.some((p) => p.includes(command)), `the aborted command is gone: ${left}`);
}

test('the exit code, and stdout and stderr apart', { skip }, async () => {
  assert.deepEqual(await exec(sh('echo out; echo err >&2; echo more; exit 7')), { ExitCode: 7, stdout: 'out\nmore\n', stderr: 'err\n' });
  assert.deepEqual(await exec(['true']), { ExitCode: 0, stdout: '', stderr: '' });
  // A command killed by a signal: 128 + its number, as a shell reports it.
  assert.equal((await exec(sh('kill -9 $$'))).ExitCode, 137);
});

test('the process is the container\'s own: its env, working directory and user, changed by the options', { skip }, async () => {
  const own = await exec(sh('echo "$FROM_IMAGE $MODE"; pwd; id'));
  assert.equal(own.stdout, 'yes image\n/work\nuid=0(root) gid=0(root) groups=0(root)\n');
  const changed = await exec(sh('echo "$FROM_IMAGE $MODE $EXTRA"; pwd'), { env: ['MODE=exec', 'EXTRA=a=b'], workingDir: '/tmp' });
  assert.equal(changed.stdout, 'yes exec a=b\n/tmp\n');
  // The env is replaced by name, not appended as a second MODE.
  assert.equal((await exec(['env'], { env: ['MODE=exec'] })).stdout.split('\n').filter((l) => l.startsWith('MODE=')).length, 1);
  // An exec's changes are its own: the next exec sees the container's.
  assert.equal((await exec(sh('echo $MODE'))).stdout, 'image\n');
});

test('the user: a name from the container\'s passwd and group files, a uid, uid:gid', { skip }, async () => {
  assert.equal((await exec(['id'], { user: 'app' })).stdout, 'uid=1000(app) gid=1001(app) groups=50(staff),1001(app)\n');
  assert.equal((await exec(['id'], { user: '1000' })).stdout, 'uid=1000(app) gid=1001(app) groups=50(staff),1001(app)\n');
  assert.equal((await exec(['id'], { user: '4242:50' })).stdout, 'uid=4242 gid=50(staff) groups=50(staff)\n');
  // HOME comes from the user's passwd entry, as the runtime sets it.
  assert.equal((await exec(sh('echo $HOME'), { user: 'app' })).stdout, '/work\n');
  // A container created with a user: its execs run as that user, also with user ''.
  await k3.containerCore.createContainer('busybox:exec', { name: 'as-app', user: 'app' });
  await k3.containerCore.startContainer('as-app');
  for (const options of [undefined, { user: '' }]) {
    assert.equal((await k3.containerCore.execContainer('as-app', ['id', '-un'], options)).stdout, 'app\n');
  }
  assert.equal((await k3.containerCore.execContainer('as-app', ['id', '-un'], { user: 'root' })).stdout, 'root\n');
  await k3.containerCore.removeContainer('as-app', { force: true });
  const unknown = await failure(exec(['id'], { user: 'nobody' }));
  assert.equal(unknown.name, 'UserNotFound');
  assert.equal(unknown.statusCode, 404);
  assert.match(unknown.details.error, /unable to find user nobody/);
  assert.equal(unknown.details.user, 'nobody');
  assert.equal((await failure(exec(['id'], { user: 'app:nogroup' }))).name, 'UserNotFound');
});

test('the capabilities and no-new-privileges are the container\'s: an exec has no more power than its init', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:exec', { name: 'strict', capDrop: ['CHOWN'], securityOpt: ['no-new-privileges'] });
  await k3.containerCore.startContainer('strict');
  const powers = (status) => status.split('\n').filter((l) => /^(Cap(Bnd|Eff|Prm)|NoNewPrivs)/.test(l)).join('\n');
  const status = async (file) => powers((await k3.containerCore.execContainer('strict', ['cat', file])).stdout);
  const init = await status('/proc/1/status');
  const self = await status('/proc/self/status');
  assert.equal(self, init);
  assert.match(self, /NoNewPrivs:\s+1/);
  assert.match(self, /CapEff:\s+0*[0-9a-f]*[02468ace]\n/, 'CAP_CHOWN (bit 0) is dropped');
  await k3.containerCore.removeContainer('strict', { force: true });
});

test('stdin, a string or a Buffer, is fed to the command and closed', { skip }, async () => {
  assert.deepEqual(await exec(['cat'], { stdin: 'hello\nworld\n' }), { ExitCode: 0, stdout: 'hello\nworld\n', stderr: '' });
  const big = Buffer.alloc(1 << 20, 'x');
  const counted = await exec(sh('wc -c'), { stdin: big });
  assert.equal(counted.stdout.trim(), String(big.length));
  // Without stdin the input is empty: cat ends at once.
  assert.deepEqual(await exec(['cat']), { ExitCode: 0, stdout: '', stderr: '' });
});

test('a command that is not found, or cannot be executed, is a typed error', { skip }, async () => {
  const missing = await failure(exec(['no-such-command', 'arg']));
  assert.equal(missing.name, 'CommandNotFound');
  assert.equal(missing.statusCode, 404);
  assert.match(missing.details.error, /executable file not found in \$PATH/);
  assert.deepEqual(missing.details.cmd, ['no-such-command', 'arg']);
  assert.equal((await failure(exec(['/bin/nothing-here']))).name, 'CommandNotFound');
  const text = await failure(exec(['/bin/not-a-program']));
  assert.equal(text.name, 'CommandNotExecutable');
  assert.match(text.details.error, /permission denied/);
});

test('wrong parameters are a 422 with the reason', { skip }, async () => {
  const cases = [
    [[], /cmd must be a non-empty array/],
    ['ls', /cmd must be a non-empty array/],
    [undefined, /cmd is required/],
  ];
  for (const [cmd, reason] of cases) {
    const err = await failure(k3.containerCore.execContainer('box', cmd));
    assert.equal(err.name, 'InvalidExecContainerParameters');
    assert.match(err.details.error, reason);
  }
  const options = [
    [{ env: ['NOEQUALS'] }, /is not NAME=value/],
    [{ env: 'A=1' }, /options.env must be an array/],
    [{ workingDir: 'relative' }, /must be an absolute path/],
    [{ stdin: 42 }, /options.stdin must be a string or a Buffer/],
    [{ user: 7 }, /options.user must be a string/],
  ];
  for (const [opts, reason] of options) {
    const err = await failure(exec(['true'], opts));
    assert.equal(err.name, 'InvalidExecContainerParameters', JSON.stringify(opts));
    assert.match(err.details.error, reason);
  }
  assert.equal((await failure(k3.containerCore.execContainer('no-such-box', ['true']))).name, 'ContainerNotFound');
});

test('a container that is not running: a typed 409', { skip }, async () => {
  await k3.containerCore.createContainer('busybox:exec', { name: 'idle' });
  const created = await failure(k3.containerCore.execContainer('idle', ['true']));
  assert.equal(created.name, 'ContainerNotRunning');
  assert.equal(created.statusCode, 409);
  assert.match(created.details.error, /is created/);

  await k3.containerCore.pauseContainer('box');
  try {
    const paused = await failure(exec(['true']));
    assert.equal(paused.name, 'ContainerNotRunning');
    assert.match(paused.details.error, /paused; unpause it first/);
  } finally {
    await k3.containerCore.unpauseContainer('box');
  }

  await k3.containerCore.createContainer('busybox:exec', { name: 'brief', cmd: ['true'] });
  await k3.containerCore.startContainer('brief');
  await k3.containerCore.waitContainer('brief');
  assert.equal((await failure(k3.containerCore.execContainer('brief', ['true']))).name, 'ContainerNotRunning');
});

test('a container that ends as the exec starts: ContainerNotRunning, not a runtime failure', { skip }, async () => {
  for (let i = 0; i < 5; i++) {
    const c = await k3.containerCore.createContainer('busybox:exec', { cmd: ['true'] });
    await k3.containerCore.startContainer(c.Id);
    const outcome = await k3.containerCore.execContainer(c.Id, ['true'])
      .then((r) => `exit ${r.ExitCode}`, (e) => `${e.name}${e.name === 'ContainerNotRunning' ? '' : `: ${e.details && e.details.error}`}`);
    // It ran; or it began as the container ended, which killed it (as
    // docker exec shows it, 137); or the container had ended.
    assert.ok(['exit 0', 'exit 137', 'ContainerNotRunning'].includes(outcome), outcome);
    await k3.containerCore.removeContainer(c.Id, { force: true });
  }
});

test('an abort kills the command, and leaves the container running', { skip }, async () => {
  const started = Date.now();
  const err = await failure(exec(['sleep', '123'], { signal: AbortSignal.timeout(300) }));
  assert.equal(err.name, 'AbortError');
  // Well short of the command's own 123 s, however loaded the machine.
  assert.ok(Date.now() - started < 30000, `the abort took ${Date.now() - started} ms`);
  await assertGone('sleep 123');
  assert.equal((await k3.containerCore.inspectContainer('box')).State, 'running');
});

// Drives an exec on a terminal as a terminal emulator does: what it shows is
// collected, and until(re) waits for it to show re.
function terminalSession(cmd, options = {}) {
  const session = { shown: '' };
  session.done = exec(cmd, {
    ...options,
    tty: true,
    onTerminal: (terminal) => {
      session.terminal = terminal;
      terminal.on('data', (d) => { session.shown += d; });
    },
  });
  session.until = async (re) => {
    const end = Date.now() + 60000;
    while (!re.test(session.shown) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.match(session.shown, re);
  };
  return session;
}

test('tty: a shell on a terminal is typed into, resized (stty size sees it), and exits with its code', { skip }, async () => {
  const s = terminalSession(['sh']);
  await s.until(/# /);
  s.terminal.write('tty; echo "$TERM $(stty size)"\n');
  await s.until(/\/dev\/pts\/\d+\r\nxterm 24 80\r\n/);
  s.terminal.resize(100, 40);
  s.terminal.write('echo "size $(stty size)"\n');
  await s.until(/size 40 100\r\n/);
  s.terminal.resize(132, 50);
  s.terminal.write('echo "size $(stty size)"\n');
  await s.until(/size 50 132\r\n/);
  s.terminal.write('exit 3\n');
  assert.deepEqual(await s.done, { ExitCode: 3, stdout: '', stderr: '' });
  // The engine's side is closed: the terminal stream ends.
  await new Promise((resolve) => (s.terminal.destroyed ? resolve() : s.terminal.on('close', resolve)));
});

test('tty: the env and user options apply; a command not found is typed; an abort kills it', { skip }, async () => {
  const s = terminalSession(['sh', '-c', 'id -un; echo $MODE'], { user: 'app', env: ['MODE=tty'] });
  assert.equal((await s.done).ExitCode, 0);
  assert.match(s.shown, /^app\r\ntty\r\n$/);

  const missing = await failure(terminalSession(['no-such-command']).done);
  assert.equal(missing.name, 'CommandNotFound');

  const started = Date.now();
  const aborted = terminalSession(['sleep', '321'], { signal: AbortSignal.timeout(300) });
  assert.equal((await failure(aborted.done)).name, 'AbortError');
  assert.ok(Date.now() - started < 30000, `the abort took ${Date.now() - started} ms`);
  await assertGone('sleep 321');

  const both = await failure(exec(['cat'], { tty: true, stdin: 'x', onTerminal: () => {} }));
  assert.match(both.details.error, /stdin cannot be given with options.tty/);
  const noHandler = await failure(exec(['cat'], { tty: true }));
  assert.equal(noHandler.name, 'InvalidExecContainerParameters');
  assert.match(noHandler.details.error, /onTerminal/);
});

// Runs `node bin/k3.js` with no terminal; resolves { code, stdout, stderr }.
function k3cli(args, input) {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [K3, ...args], { env: { ...process.env, K3_ROOT: root } }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

test('k3 exec prints the output and exits with the command\'s exit code', { skip }, async () => {
  const ran = await k3cli(['exec', '-e', 'X=1', '-w', '/tmp', '-u', 'app', 'box', 'sh', '-c', 'echo "$X $(pwd) $(id -un)"; echo oops >&2; exit 5']);
  assert.deepEqual(ran, { code: 5, stdout: '1 /tmp app\n', stderr: 'oops\n' });
  // -i feeds stdin; without it the command reads nothing.
  assert.deepEqual(await k3cli(['exec', '-i', 'box', 'cat'], 'piped in\n'), { code: 0, stdout: 'piped in\n', stderr: '' });
  assert.deepEqual(await k3cli(['exec', 'box', 'cat'], 'not read\n'), { code: 0, stdout: '', stderr: '' });
  // As docker exec: 127 for a command not found, 126 for one that cannot run.
  const missing = await k3cli(['exec', 'box', 'no-such-command']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /^CommandNotFound \[404 NOT_FOUND\]/);
  assert.equal((await k3cli(['exec', 'box', '/bin/not-a-program'])).code, 126);
  await k3.containerCore.createContainer('busybox:exec', { name: 'cli-idle' });
  const idle = await k3cli(['exec', 'cli-idle', 'true']);
  assert.equal(idle.code, exitCodes.ContainerNotRunning, idle.stderr);
  const json = await k3cli(['exec', '--json', 'box', 'sh', '-c', 'echo hi; exit 3']);
  assert.equal(json.code, 3);
  assert.deepEqual(JSON.parse(json.stdout), { ExitCode: 3, stdout: 'hi\n', stderr: '' });
});

test('k3 exec -t: the command on a terminal; with -i, stdin typed into it', { skip }, async () => {
  const shown = await k3cli(['exec', '-t', 'box', 'sh', '-c', 'tty; stty size; exit 4']);
  assert.equal(shown.code, 4, shown.stderr);
  assert.match(shown.stdout, /^\/dev\/pts\/\d+\r\n24 80\r\n$/);
  const typed = await k3cli(['exec', '-it', 'box', 'sh'], 'echo "sum $((1+2))"\nexit 2\n');
  assert.equal(typed.code, 2, typed.stderr);
  assert.match(typed.stdout, /sum 3\r+\n/);
});

test('k3 exec -it in a terminal (tmux): typed into, sized and resized as the window is', { skip: skipTmux }, async () => {
  const socket = `k3-exec-test-${process.pid}`;
  const tmux = (...args) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const done = path.join(tmp, 'tmux-done');
  tmux('new-session', '-d', '-x', '100', '-y', '30', `K3_ROOT=${root} ${process.execPath} ${K3} exec -it box sh; echo "exit $?" > ${done}; sleep 60`);
  const screenShows = async (re) => {
    const end = Date.now() + 60000;
    let screen = '';
    while (!re.test(screen) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      screen = tmux('capture-pane', '-p', '-t', '0');
    }
    assert.match(screen, re);
  };
  try {
    await screenShows(/^\/work #/m);
    tmux('send-keys', '-t', '0', 'echo "size $(stty size)"', 'Enter');
    await screenShows(/^size 30 100$/m);
    tmux('resize-window', '-t', '0', '-x', '120', '-y', '40');
    tmux('send-keys', '-t', '0', 'echo "size $(stty size)"', 'Enter');
    await screenShows(/^size 40 120$/m);
    tmux('send-keys', '-t', '0', 'exit 6', 'Enter');
    // The shell makes the file before it writes the line: wait for the line.
    const written = () => fs.existsSync(done) && fs.readFileSync(done, 'utf8').endsWith('\n');
    const end = Date.now() + 60000;
    while (!written() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal(fs.readFileSync(done, 'utf8').trim(), 'exit 6');
  } finally {
    tmux('kill-server');
  }
});
