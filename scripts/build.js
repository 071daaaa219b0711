#!/usr/bin/env node
// Builds the package from source: the Go engine as a C shared library, the
// container monitor and the user-namespace helper, then the N-API addon linked against the library, all
// into build/Release (the addon finds the library beside itself through its
// rpath, so no LD_LIBRARY_PATH is needed).
//
// `--arch=arm64` cross-compiles for linux-arm64 with Debian's
// gcc-aarch64-linux-gnu (scripts/pack.js uses it for the prebuilt package).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { BUILD_NEEDS } = require('../js/binaries');

const root = path.resolve(__dirname, '..');
const release = path.join(root, 'build', 'Release');

// What each target needs: Go's and node-gyp's names for the architecture,
// and the C and C++ compilers that cgo and node-gyp run.
const TARGETS = {
  x64: { goarch: 'amd64', cc: 'gcc', cxx: 'g++', apt: 'gcc g++' },
  arm64: { goarch: 'arm64', cc: 'aarch64-linux-gnu-gcc', cxx: 'aarch64-linux-gnu-g++', apt: 'gcc-aarch64-linux-gnu g++-aarch64-linux-gnu' },
};

function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir || '.', cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// A missing tool is named, with what to install, instead of a spawn stack.
function checkToolchain(target, cross) {
  const tools = ['go', target.cc, target.cxx, 'make'];
  const missing = tools.filter((t) => !onPath(t));
  if (!onPath('python3') && !onPath('python')) missing.push('python3');
  if (missing.length === 0) return;
  const prebuilt = cross ? '' : 'There are no prebuilt binaries for this machine here, so k3-core must be built from source. ';
  console.error(`k3-core: ${prebuilt}The build needs ${BUILD_NEEDS}; not found on PATH: ${missing.join(', ')}.\n` +
    `Install them (on Debian or Ubuntu: apt-get install golang-go ${target.apt} make python3, or Go from https://go.dev/dl/), then run \`npm rebuild k3-core\`.`);
  process.exit(1);
}

function run(cmd, args, env = {}) {
  console.log(`> ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
}

// A developer's checkout has node-gyp as a devDependency; an install from
// the registry uses the node-gyp that npm brings, which npm names in
// npm_config_node_gyp.
function nodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
    console.error('k3-core: node-gyp was not found; run the build through npm (`npm rebuild k3-core`), which brings it.');
    process.exit(1);
  }
}

// node-gyp downloads Node's headers unless told where they are; machines
// with no internet have them installed beside node itself. The headers are
// the same for every architecture, so a cross build uses them too.
function nodedirArgs() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function build(arch) {
  const target = TARGETS[arch];
  if (!target) {
    console.error(`k3-core: cannot build for ${arch}; known architectures: ${Object.keys(TARGETS).join(', ')}`);
    process.exit(1);
  }
  const cross = arch !== process.arch;
  checkToolchain(target, cross);
  const goEnv = { GOOS: 'linux', GOARCH: target.goarch };
  const cEnv = { CC: target.cc, CXX: target.cxx };
  run(process.execPath, [nodeGyp(), 'configure', `--arch=${arch}`, ...nodedirArgs()], cEnv);
  fs.mkdirSync(release, { recursive: true });
  run('go', ['build', '-buildmode=c-shared', '-trimpath', '-ldflags=-s -w -extldflags=-Wl,-z,nodelete',
    '-o', path.join(release, 'libk3core.so'), './golib'], { ...goEnv, ...cEnv, CGO_ENABLED: '1' });
  // The container monitor: a small program of its own, since it must outlive
  // the Node process that starts a container.
  run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(release, 'k3-monitor'), './golib/cmd/k3-monitor'], { ...goEnv, CGO_ENABLED: '0' });
  // The helper k3-core starts inside a user namespace when run by an
  // ordinary user (package userns): a program of its own, since a
  // multi-threaded process cannot enter a new user namespace itself.
  run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(release, 'k3-userns'), './golib/cmd/k3-userns'], { ...goEnv, CGO_ENABLED: '0' });
  run(process.execPath, [nodeGyp(), 'build', `--arch=${arch}`, ...nodedirArgs()], cEnv);
}

const archArg = process.argv.find((a) => a.startsWith('--arch='));
build(archArg ? archArg.slice('--arch='.length) : process.arch);
