#!/usr/bin/env node
// Packs k3-core for publishing: one package per prebuilt platform
// (@k3-core/linux-x64, @k3-core/linux-arm64) holding the addon, the Go
// library, the monitor and the user-namespace helper, built here (arm64 with Debian's cross compilers),
// and the main package, which lists them as optional dependencies.
//
//   node scripts/pack.js [--out=DIR] [--arch=x64,arm64]
//
// Writes the tarballs to DIR (default dist/) and their paths, main package
// first, to DIR/packs.json.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const binaries = require('../js/binaries');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function option(name, fallback) {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? arg.slice(name.length + 3) : fallback;
}

const out = path.resolve(option('out', path.join(root, 'dist')));
const arches = option('arch', binaries.PREBUILT_ARCHES.join(',')).split(',');

// The main package must ask for exactly the platform packages packed here.
function checkOptionalDependencies() {
  for (const arch of binaries.PREBUILT_ARCHES) {
    const name = binaries.platformPackage(arch);
    const wanted = (pkg.optionalDependencies || {})[name];
    if (wanted !== pkg.version) {
      throw new Error(`package.json: optionalDependencies["${name}"] is ${JSON.stringify(wanted)}, and must be the version, ${pkg.version}`);
    }
  }
}

// Builds in a copy of the sources, so a cross build never overwrites the
// developer's own build/Release.
function buildIn(stage, arch) {
  for (const entry of ['binding', 'golib', 'js', 'binding.gyp', 'go.mod', 'go.sum', 'scripts/build.js']) {
    fs.cpSync(path.join(root, entry), path.join(stage, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'));
  execFileSync(process.execPath, [path.join(stage, 'scripts', 'build.js'), `--arch=${arch}`], { cwd: stage, stdio: 'inherit' });
  return path.join(stage, 'build', 'Release');
}

function npmPack(dir) {
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8' });
  return path.join(out, JSON.parse(json)[0].filename);
}

function packPlatform(arch) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `k3-pack-${arch}-`));
  try {
    const release = buildIn(stage, arch);
    const name = binaries.platformPackage(arch);
    const dir = path.join(out, `linux-${arch}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const files = [binaries.ADDON, binaries.LIBRARY, binaries.MONITOR, binaries.USERNS_HELPER];
    for (const f of files) fs.copyFileSync(path.join(release, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
      name,
      version: pkg.version,
      description: `The prebuilt native binaries of k3-core for linux-${arch} (glibc ${binaries.GLIBC_MIN} or newer).`,
      license: pkg.license,
      repository: pkg.repository,
      os: ['linux'],
      cpu: [arch],
      libc: ['glibc'],
      files,
    }, null, 2) + '\n');
    fs.writeFileSync(path.join(dir, 'README.md'),
      `# ${name}\n\nThe addon, Go library, container monitor and user-namespace helper of [k3-core](https://www.npmjs.com/package/k3-core) for linux-${arch} with glibc ${binaries.GLIBC_MIN} or newer. Install k3-core, not this package: npm picks it for you.\n`);
    return npmPack(dir);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

checkOptionalDependencies();
fs.mkdirSync(out, { recursive: true });
const tarballs = [npmPack(root), ...arches.map(packPlatform)];
fs.writeFileSync(path.join(out, 'packs.json'), JSON.stringify(tarballs, null, 2) + '\n');
console.log(tarballs.join('\n'));
