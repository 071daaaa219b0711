'use strict';
// The packages as published: scripts/pack.js builds the prebuilt platform
// packages (linux-x64 here, linux-arm64 with the cross compilers) and the
// main package. Then:
//  - the binaries need no newer glibc than the one the README states;
//  - the arm64 library and monitor run under qemu-user;
//  - a user's `npm install k3-core`, from a real local registry (verdaccio)
//    with a PATH that has no go, gcc or python, installs the prebuilt
//    package and inspects, pulls and exports;
//  - without the platform package and without a toolchain, install and
//    require each say what to install.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const binaries = require('../js/binaries');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const root = path.resolve(__dirname, '..');
const verdaccioBin = path.join(root, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
const QEMU_SYSROOT = '/usr/aarch64-linux-gnu';
// Debian's host objdump reads only x86 machine code; the cross binutils read arm64's.
const OBJDUMP = { x64: 'objdump', arm64: 'aarch64-linux-gnu-objdump' };

function problem() {
  const noRegistry = registryAvailable();
  if (noRegistry) return noRegistry;
  if (!fs.existsSync(verdaccioBin)) return 'verdaccio is not installed (npm install)';
  for (const tool of [...Object.values(OBJDUMP), 'aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-g++', 'qemu-aarch64']) {
    if (!whichSync(tool)) return `${tool} is not installed`;
  }
  if (!fs.existsSync(path.join(QEMU_SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) return `there is no aarch64 C library at ${QEMU_SYSROOT}`;
  return false;
}
const skip = need(problem());
if (skip) console.log(`# skipping prebuilt package tests: ${skip}`);

let tmp;
let packs;
let verdaccio;
let reg;
const distOf = (arch) => path.join(tmp, 'dist', `linux-${arch}`);

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-prebuilt-'));
  fs.chmodSync(tmp, 0o755);
  const pack = spawnSync(process.execPath, [path.join(root, 'scripts', 'pack.js'), `--out=${path.join(tmp, 'dist')}`], { encoding: 'utf8' });
  assert.equal(pack.status, 0, `scripts/pack.js failed:\n${pack.stdout}\n${pack.stderr}`);
  packs = JSON.parse(fs.readFileSync(path.join(tmp, 'dist', 'packs.json'), 'utf8'));
  verdaccio = await startVerdaccio(path.join(tmp, 'verdaccio'));
  // k3-core's runtime dependencies (the headers a build from source needs,
  // the command's argument parser and progress bars, and theirs), packed
  // from the copies npm installed here, as the registry holds nothing else.
  const installed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { encoding: 'utf8', cwd: root }).trim().split('\n').slice(1);
  const deps = installed.map((dir) => {
    const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', path.join(tmp, 'dist'), dir], { encoding: 'utf8', cwd: tmp });
    return path.join(tmp, 'dist', JSON.parse(packed)[0].filename);
  });
  for (const tarball of [...packs, ...deps]) {
    execFileSync('npm', ['publish', tarball, '--registry', verdaccio.url, '--userconfig', verdaccio.npmrc, '--cache', path.join(tmp, 'publish-cache')], { stdio: 'pipe' });
  }
  reg = await startRegistry();
});

after(async () => {
  if (reg) await reg.stop();
  if (verdaccio) verdaccio.child.kill('SIGKILL');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// The local npm registry

async function startVerdaccio(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = path.join(dir, 'config.yaml');
  // No uplinks: a package it does not hold is a 404, never a trip to npmjs.
  fs.writeFileSync(config, [
    `storage: ${path.join(dir, 'storage')}`,
    'auth:',
    '  htpasswd:',
    `    file: ${path.join(dir, 'htpasswd')}`,
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    'log: { type: stdout, format: pretty, level: warn }',
    // A platform package (addon, library, monitor, user-namespace helper) is
    // over verdaccio's default 10 MB once base64-encoded for publishing.
    'max_body_size: 100mb',
    '',
  ].join('\n'));
  const child = spawn(process.execPath, [verdaccioBin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const deadline = Date.now() + 120000;
  for (;;) {
    try {
      if ((await fetch(`${url}/-/ping`)).ok) break;
    } catch { /* not listening yet */ }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`verdaccio did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // Verdaccio makes a user, and gives its token, on the first adduser.
  const res = await fetch(`${url}/-/user/org.couchdb.user:k3`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'k3', password: 'k3-test-password' }),
  });
  const { token } = await res.json();
  assert.ok(token, `verdaccio gave no token (${res.status})`);
  const npmrc = path.join(dir, 'npmrc');
  fs.writeFileSync(npmrc, `//127.0.0.1:${port}/:_authToken=${token}\n`);
  return { url, npmrc, child };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = require('node:net').createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// A user's machine: a PATH of just node, npm, sh and what npm itself runs.

function userPath(dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const tool of ['node', 'npm', 'sh', 'env']) {
    fs.symlinkSync(whichSync(tool), path.join(dir, tool));
  }
  return dir;
}

function userEnv(home, bin) {
  const env = { HOME: home, PATH: bin, npm_config_cache: path.join(home, '.npm'), npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' };
  for (const key of ['LANG', 'TMPDIR']) if (process.env[key]) env[key] = process.env[key];
  return env;
}

function npmInstall(project, bin, extra = []) {
  fs.mkdirSync(project, { recursive: true });
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-app', version: '1.0.0', private: true }));
  const npmrc = path.join(project, '.npmrc');
  fs.writeFileSync(npmrc, `registry=${verdaccio.url}/\n`);
  const started = process.hrtime.bigint();
  const result = spawnSync('npm', ['install', 'k3-core', '--userconfig', npmrc, ...extra], {
    cwd: project, env: userEnv(project, bin), encoding: 'utf8', timeout: 300000,
  });
  return { ...result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

function duBytes(dir) {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

// ---------------------------------------------------------------------------
// glibc

// The newest GLIBC_x.y among a binary's versioned dynamic symbols.
function newestGlibc(file, objdump) {
  const table = execFileSync(objdump, ['-T', file], { encoding: 'utf8' });
  const versions = [...table.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.ok(versions.length > 0, `${file} has no GLIBC_ symbols`);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return versions.at(-1).join('.');
}

test('the prebuilt binaries need no newer glibc than the one stated', { skip }, () => {
  const [major, minor] = binaries.GLIBC_MIN.split('.').map(Number);
  for (const arch of binaries.PREBUILT_ARCHES) {
    for (const file of [binaries.ADDON, binaries.LIBRARY]) {
      const newest = newestGlibc(path.join(distOf(arch), file), OBJDUMP[arch]);
      const [x, y] = newest.split('.').map(Number);
      assert.ok(x < major || (x === major && y <= minor), `linux-${arch}/${file} needs glibc ${newest}, newer than the stated ${binaries.GLIBC_MIN}`);
    }
    // The monitor and the helper are linked statically: they need no C library at all.
    for (const file of [binaries.MONITOR, binaries.USERNS_HELPER]) {
      const headers = execFileSync(OBJDUMP[arch], ['-p', path.join(distOf(arch), file)], { encoding: 'utf8' });
      assert.doesNotMatch(headers, /NEEDED/, `linux-${arch}/${file} is dynamically linked`);
    }
  }
});

test('each platform package holds its own architecture', { skip }, () => {
  const machine = { x64: 'i386:x86-64', arm64: 'aarch64' };
  for (const arch of binaries.PREBUILT_ARCHES) {
    for (const file of [binaries.ADDON, binaries.LIBRARY, binaries.MONITOR, binaries.USERNS_HELPER]) {
      const header = execFileSync(OBJDUMP[arch], ['-f', path.join(distOf(arch), file)], { encoding: 'utf8' });
      assert.match(header, new RegExp(`architecture: ${machine[arch]}`), `linux-${arch}/${file}`);
    }
  }
});

test('linux-arm64: the monitor runs and the library answers a call under qemu-user', { skip }, () => {
  const dir = distOf('arm64');
  const monitor = spawnSync('qemu-aarch64', [path.join(dir, binaries.MONITOR)], { encoding: 'utf8' });
  assert.equal(monitor.status, 2, monitor.stderr);
  assert.match(monitor.stderr, /^usage: k3-monitor RUNTIME BUNDLE ID/);

  const k3call = path.join(tmp, 'k3call-arm64');
  execFileSync('aarch64-linux-gnu-gcc', ['-O2', '-o', k3call, path.join(__dirname, 'helpers', 'k3call.c'), '-ldl']);
  const store = path.join(tmp, 'arm64-store');
  const run = (method) => spawnSync('qemu-aarch64', ['-L', QEMU_SYSROOT, k3call, path.join(dir, binaries.LIBRARY), method, store], { encoding: 'utf8', timeout: 120000 });
  const list = run('listImages');
  assert.equal(list.status, 0, list.stderr);
  assert.equal(list.stdout, '0 []\n');
  const wrong = run('noSuchMethod');
  assert.equal(wrong.status, 0, wrong.stderr);
  const [kind, json] = [wrong.stdout.slice(0, 2), JSON.parse(wrong.stdout.slice(2))];
  assert.equal(kind, '1 ');
  assert.equal(json.class, 'GenericFailure');
});

test('npm install k3-core from a registry, with no go, gcc or python, then inspect, pull and export', { skip, timeout: 600000 }, async () => {
  const bin = userPath(path.join(tmp, 'user-bin'));
  for (const tool of ['go', 'gcc', 'g++', 'cc', 'make', 'python3', 'python']) {
    assert.notEqual(spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: bin } }).status, 0, `${tool} is on the user's PATH`);
  }
  const project = path.join(tmp, 'user-app');
  const install = npmInstall(project, bin);
  assert.equal(install.status, 0, install.stderr);
  const installed = path.join(project, 'node_modules', 'k3-core');
  assert.ok(fs.existsSync(path.join(project, 'node_modules', '@k3-core', 'linux-x64', binaries.ADDON)));
  assert.ok(!fs.existsSync(path.join(project, 'node_modules', '@k3-core', 'linux-arm64')), 'npm installed the arm64 package on x64');
  assert.ok(!fs.existsSync(path.join(installed, 'build')), 'k3-core was built from source');
  console.log(`# fresh install from the local registry: ${install.seconds.toFixed(1)} s, node_modules ${(duBytes(path.join(project, 'node_modules')) / 1e6).toFixed(1)} MB ` +
    `(k3-core ${(duBytes(installed) / 1e6).toFixed(1)} MB, @k3-core/linux-x64 ${(duBytes(path.join(project, 'node_modules', '@k3-core')) / 1e6).toFixed(1)} MB)`);

  const image = images.makeImage({ layers: [[{ path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'prebuilt\n' }]] });
  await images.pushImage(reg, 'prebuilt/app', 'v1', image);
  const ref = `${reg.host}/prebuilt/app:v1`;
  const tarPath = path.join(tmp, 'app.tar');
  const script = `
    const K3Core = require('k3-core');
    (async () => {
      const k3 = new K3Core({ root: ${JSON.stringify(path.join(tmp, 'user-store'))} });
      const info = await k3.imageCore.inspectAnImage(${JSON.stringify(ref)}, { imageName: ${JSON.stringify(ref)} });
      await k3.imageCore.pullAnImage(${JSON.stringify(ref)});
      await k3.containerCore.createContainer(${JSON.stringify(ref)}, { name: 'app-1' });
      await k3.containerCore.exportContainer('app-1', ${JSON.stringify(tarPath)});
      console.log(JSON.stringify({ digest: info.Digest, images: (await k3.imageCore.listImages()).length }));
    })().catch((e) => { console.error(e.createFullMessage ? e.createFullMessage() : e.stack); process.exit(1); });`;
  const ran = spawnSync('node', ['-e', script], { cwd: project, env: userEnv(project, bin), encoding: 'utf8', timeout: 120000 });
  assert.equal(ran.status, 0, ran.stderr);
  const out = JSON.parse(ran.stdout.trim().split('\n').at(-1));
  assert.equal(out.digest, image.manifestDigest);
  assert.equal(out.images, 1);
  const listing = execFileSync('tar', ['-tf', tarPath], { encoding: 'utf8' });
  assert.match(listing, /^(\.\/)?etc\/hostname$/m);

  // The packed package is an ES module too (its files include index.mjs).
  const esm = `import K3Core, { errors } from 'k3-core';
    const k3 = new K3Core({ root: ${JSON.stringify(path.join(tmp, 'user-store'))} });
    const missing = await k3.containerCore.inspectContainer('no-such-container').catch((e) => e);
    console.log((await k3.imageCore.listImages()).length, missing instanceof errors.ContainerNotFound);`;
  const imported = spawnSync('node', ['--input-type=module', '-e', esm], { cwd: project, env: userEnv(project, bin), encoding: 'utf8', timeout: 120000 });
  assert.equal(imported.status, 0, imported.stderr);
  assert.equal(imported.stdout.trim(), '1 true');
});

test('without the platform package and without a toolchain, install and require say what to install', { skip, timeout: 600000 }, () => {
  const bin = path.join(tmp, 'user-bin');
  const failed = npmInstall(path.join(tmp, 'no-optional'), bin, ['--omit=optional']);
  assert.notEqual(failed.status, 0);
  assert.match(failed.stderr, /not found on PATH: go, gcc, g\+\+, make, python3/);
  assert.match(failed.stderr, /apt-get install golang-go gcc g\+\+ make python3/);
  assert.doesNotMatch(failed.stderr, /ENOENT|at [a-zA-Z.]+ \(/, 'a stack trace instead of a message');

  const project = path.join(tmp, 'no-scripts');
  const installed = npmInstall(project, bin, ['--omit=optional', '--ignore-scripts']);
  assert.equal(installed.status, 0, installed.stderr);
  const loaded = spawnSync('node', ['-e', "require('k3-core')"], { cwd: project, env: userEnv(project, bin), encoding: 'utf8' });
  assert.notEqual(loaded.status, 0);
  assert.match(loaded.stderr, /k3-core has no native binaries for linux-x64: it looked for a build from source at \S+k3core\.node and for the prebuilt package @k3-core\/linux-x64, and found neither/);
  assert.match(loaded.stderr, /npm install @k3-core\/linux-x64/);
});
