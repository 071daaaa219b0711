#!/usr/bin/env node
// Builds the package: the Go engine as a C shared library, the container
// monitor, then the N-API addon linked against the library, all into
// build/Release (the addon finds the library beside itself through its
// rpath, so no LD_LIBRARY_PATH is needed).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const release = path.join(root, 'build', 'Release');

function run(cmd, args, env = {}) {
  console.log(`> ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
}

function nodeGyp() {
  return require.resolve('node-gyp/bin/node-gyp.js');
}

// node-gyp downloads Node's headers unless told where they are; machines
// with no internet have them installed beside node itself.
function nodedirArgs() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

run(process.execPath, [nodeGyp(), 'configure', ...nodedirArgs()]);
fs.mkdirSync(release, { recursive: true });
run('go', ['build', '-buildmode=c-shared', '-trimpath', '-ldflags=-s -w -extldflags=-Wl,-z,nodelete',
  '-o', path.join(release, 'libk3core.so'), './golib'], { CGO_ENABLED: '1' });
// The container monitor: a small program of its own, since it must outlive
// the Node process that starts a container.
run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(release, 'k3-monitor'), './golib/cmd/k3-monitor'], { CGO_ENABLED: '0' });
run(process.execPath, [nodeGyp(), 'build', ...nodedirArgs()]);
