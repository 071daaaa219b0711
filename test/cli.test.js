'use strict';
// The k3 command run as a user runs it: `node bin/k3.js …` as a child
// process (no terminal) and inside tmux (a terminal), against a real local
// registry, a store of its own, GNU tar and, for logs -f, runc.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const { need } = require('./helpers/need');
const { exitCodeOf, exitCodeTable, catalogueCodes, OWN } = require('../js/cli/exitCodes');

const K3 = path.join(__dirname, '..', 'bin', 'k3.js');
const skip = need(registryAvailable());
const skipTmux = skip || need(whichSync('tmux') ? null : 'tmux is not installed');
const runReasons = [];
if (process.getuid() !== 0) runReasons.push('not root');
if (!whichSync('runc')) runReasons.push('runc is not installed');
if (!fs.existsSync('/bin/busybox')) runReasons.push('busybox-static is not installed');
const skipRun = skip || need(runReasons.join(', '));

let tmp;
let registry;
let ref; // the test image in the registry
let root; // the store the command uses

// Runs the command with no terminal; resolves { code, stdout, stderr }.
function k3(...args) {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.K3_ROOT;
    execFile(process.execPath, [K3, ...args], { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-cli-'));
  root = path.join(tmp, 'store');
  registry = await startRegistry();
  // A static busybox makes a layer big enough to draw a bar for, and a
  // container that can run.
  const applets = ['sh', 'echo', 'sleep'];
  const image = images.makeImage({
    layers: [
      [{ path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync(fs.existsSync('/bin/busybox') ? '/bin/busybox' : process.execPath), mode: 0o755 },
        ...applets.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
        { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' }, { path: 'dev', type: 'dir' }, { path: 'tmp', type: 'dir', mode: 0o1777 }],
      [{ path: 'etc', type: 'dir' }, { path: 'etc/motd', content: 'hello from k3\n' }],
    ],
    config: { Cmd: ['/bin/sh', '-c', 'echo default'], Env: ['PATH=/bin'] },
  });
  await images.pushImage(registry, 'cli/app', '1.0', image);
  ref = `${registry.host}/cli/app:1.0`;
});

after(async () => {
  if (registry) await registry.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('inspect --json prints what inspectAnImage resolves', { skip }, async () => {
  const run = await k3('inspect', '--json', ref);
  assert.equal(run.code, 0, run.stderr);
  const lib = await new K3Core({ root }).imageCore.inspectAnImage(`${registry.host}/cli/app`, { imageName: `${registry.host}/cli/app`, imageTag: '1.0' });
  assert.deepEqual(JSON.parse(run.stdout), JSON.parse(JSON.stringify(lib)));
});

test('without a terminal, pull prints plain lines and images lists the image', { skip }, async () => {
  const run = await k3('pull', '--root', root, ref);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines[0], `pull ${ref}: 2 layers`);
  assert.equal(lines[lines.length - 1], `pull ${ref}: done`);
  // Between them, whatever steps the library reported (it throttles), one per line.
  for (const line of lines.slice(1, -1)) assert.match(line, /^[0-9a-f]{12} \([12]\/2\): (download|unpack|exists)( \d+\/\d+ bytes)?$/);
  assert.doesNotMatch(run.stderr, /[\r\u001b\u2588]/, 'no bar, no carriage returns, no escapes');
  assert.match(run.stdout, /cli\/app:1\.0: 2 layer\(s\) pulled, 0 reused/);

  const list = await k3('images', '--root', root, '--json');
  assert.equal(list.code, 0, list.stderr);
  const [image] = JSON.parse(list.stdout);
  assert.deepEqual(image.RepoTags, [ref]);
  const table = await k3('--root', root, 'images');
  assert.match(table.stdout, new RegExp(`^${registry.host}/cli/app\\s+1\\.0\\s+${image.Id.slice(7, 19)}\\s`, 'm'));
});

test('on a terminal (tmux), pull draws a progress bar', { skip: skipTmux }, async () => {
  const socket = `k3-cli-test-${process.pid}`;
  const tmux = (...args) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const done = path.join(tmp, 'tty-done');
  const cmd = `${process.execPath} ${K3} pull --root ${path.join(tmp, 'tty-store')} ${ref}; echo $? > ${done}; sleep 60`;
  tmux('new-session', '-d', '-x', '120', '-y', '30', cmd);
  try {
    // The shell makes the file before it writes the line: wait for the line.
    const written = () => fs.existsSync(done) && fs.readFileSync(done, 'utf8').endsWith('\n');
    const deadline = Date.now() + 120000;
    while (!written() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(fs.readFileSync(done, 'utf8').trim(), '0');
    const screen = tmux('capture-pane', '-p', '-t', '0');
    assert.match(screen, new RegExp(`^pull ${ref} layers \\|\u2588{30}\\| 100% 2/2 layers$`, 'm'), screen);
    // Each layer the library reported on has its own bar, completed.
    for (const line of screen.split('\n').filter((l) => /^[0-9a-f]{12} \(/.test(l))) assert.match(line, /\|\u2588{30}\| 100% \d+\/\d+ bytes$/, screen);
    assert.match(screen, /cli\/app:1\.0: 2 layer\(s\) pulled/, screen);
  } finally {
    tmux('kill-server');
  }
});

test('create, ps, export (listed by GNU tar), rm and rmi', { skip }, async () => {
  const created = await k3('create', '--root', root, '--json', '--name', 'cli-web', ref, 'sh', '-c', 'echo hi');
  assert.equal(created.code, 0, created.stderr);
  const { Id } = JSON.parse(created.stdout);

  const ps = await k3('ps', '--root', root);
  assert.doesNotMatch(ps.stdout, /cli-web/, 'ps without -a shows running containers only');
  const psAll = await k3('ps', '-a', '--root', root);
  assert.match(psAll.stdout, new RegExp(`^${Id.slice(0, 12)}\\s+.*"sh -c echo hi".*created\\s+cli-web$`, 'm'));

  const cp = await k3('cp', '--root', root, path.join(__dirname, '..', 'package.json'), 'cli-web:/etc/');
  assert.equal(cp.code, 0, cp.stderr);

  const out = path.join(tmp, 'cli-web.tar.gz');
  const exported = await k3('export', '--root', root, 'cli-web', out);
  assert.equal(exported.code, 0, exported.stderr);
  assert.equal(exported.stdout.trim(), `cli-web has exported successfully to ${out}`);
  const listed = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).split('\n');
  for (const name of ['bin/busybox', 'etc/motd', 'etc/package.json']) assert.ok(listed.includes(name), `${name} in ${listed}`);

  const rm = await k3('rm', '--root', root, 'cli-web');
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(JSON.parse((await k3('ps', '-a', '--json', '--root', root)).stdout), []);

  const rmi = await k3('rmi', '--root', root, ref);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.match(rmi.stdout, new RegExp(`^Untagged: ${ref}$`, 'm'));
  assert.deepEqual(JSON.parse((await k3('images', '--json', '--root', root)).stdout), []);
});

test('tag, push, commit, save and load', { skip }, async () => {
  const store = path.join(tmp, 'round-trip');
  assert.equal((await k3('pull', '--root', store, ref)).code, 0);
  const copy = `${registry.host}/cli/copy:2.0`;
  const tag = await k3('tag', '--root', store, ref, copy);
  assert.equal(tag.code, 0, tag.stderr);
  const push = await k3('push', '--root', store, '--json', copy);
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stderr, /^push .*: upload \d+\/\d+ bytes$/m);
  const pushed = JSON.parse(push.stdout);
  const remote = JSON.parse((await k3('inspect', '--json', copy)).stdout);
  assert.equal(remote.Digest, pushed.Digest);

  assert.equal((await k3('create', '--root', store, '--name', 'changed', ref)).code, 0);
  assert.equal((await k3('cp', '--root', store, path.join(__dirname, '..', 'package.json'), 'changed:/etc/')).code, 0);
  const commit = await k3('commit', '--root', store, '--json', '-c', 'ENV MODE=cli', 'changed', 'cli/committed:1');
  assert.equal(commit.code, 0, commit.stderr);
  assert.deepEqual(JSON.parse(commit.stdout).RepoTags, ['docker.io/cli/committed:1']);

  const archive = path.join(tmp, 'images.tar');
  const save = await k3('save', '--root', store, '-o', archive, 'cli/committed:1', copy);
  assert.equal(save.code, 0, save.stderr);
  assert.match(save.stderr, /^save .*: write \d+\/\d+ bytes$/m);
  assert.ok(execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).split('\n').includes('manifest.json'));

  const fresh = path.join(tmp, 'loaded');
  const load = await k3('load', '--root', fresh, '-i', archive);
  assert.equal(load.code, 0, load.stderr);
  const loaded = JSON.parse((await k3('images', '--json', '--root', fresh)).stdout).flatMap((i) => i.RepoTags).sort();
  assert.deepEqual(loaded, [copy, 'docker.io/cli/committed:1'].sort());
  const env = JSON.parse((await k3('inspect', '--json', '--root', fresh, 'k3:cli/committed:1')).stdout).Env;
  assert.ok(env.includes('MODE=cli'), env);
});

test('a bad name exits with its class\'s code and prints the full message', { skip }, async () => {
  const run = await k3('inspect', 'Bad Name!');
  let expected;
  await new K3Core({ root }).imageCore.inspectAnImage('Bad Name!', { imageName: 'Bad Name!' }).catch((e) => { expected = e; });
  assert.ok(expected instanceof K3Core.errors.InvalidInspectParameters);
  assert.equal(run.code, exitCodeOf(expected));
  assert.equal(run.code, 57);
  assert.equal(run.stderr, `${expected.createFullMessage()}\n`);
  assert.equal(run.stdout, '');

  const missing = await k3('rmi', '--root', root, 'no-such-image:1');
  assert.equal(missing.code, 35, missing.stderr);
  assert.match(missing.stderr, /^ImageNotFoundLocally \[404 NOT_FOUND\]/);
});

test('usage errors exit 2', async () => {
  const exec = await k3('exec', 'web-1');
  assert.equal(exec.code, OWN.usage.code);
  assert.match(exec.stderr, /k3 exec needs a command/);
  const usage = await k3('pull');
  assert.equal(usage.code, OWN.usage.code);
  assert.match(usage.stderr, /missing required argument 'ref'/);
});

test('logs -f follows a running container until it exits', { skip: skipRun }, async () => {
  const store = path.join(tmp, 'run-store');
  assert.equal((await k3('pull', '--root', store, ref)).code, 0);
  const created = await k3('create', '--root', store, '--name', 'talker', ref, 'sh', '-c', 'echo one; sleep 1; echo two >&2; sleep 1; echo three');
  assert.equal(created.code, 0, created.stderr);
  assert.equal((await k3('start', '--root', store, 'talker')).code, 0);
  const followed = await k3('logs', '-f', '--root', store, 'talker');
  assert.equal(followed.code, 0, followed.stderr);
  assert.equal(followed.stdout, 'one\nthree\n');
  assert.equal(followed.stderr, 'two\n');
  await k3('rm', '-f', '--root', store, 'talker');
});

test('every error class has its own exit code, documented in the README', () => {
  const codes = catalogueCodes();
  assert.ok(codes.length > 0);
  for (const row of codes) assert.ok(row.code >= 10 && row.code <= 125, `${row.name}: ${row.code}`);
  assert.ok(new Set(codes.map((row) => row.code)).size === codes.length);
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const m = readme.match(/<!-- exit-codes:start -->\n([\s\S]*?)\n<!-- exit-codes:end -->/);
  assert.ok(m, 'README has the exit-code markers');
  assert.equal(m[1], exitCodeTable(), 'regenerate with: node js/cli/exitCodes.js');
});
