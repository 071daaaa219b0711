'use strict';
// Where this machine's native binaries are: the addon (k3core.node), the Go
// library beside it (libk3core.so, found through the addon's rpath) and the
// container monitor (k3-monitor) and the user-namespace helper (k3-userns). They come either from a build from source
// into build/Release, or from the prebuilt package for this platform
// (@k3-core/linux-x64, @k3-core/linux-arm64), which npm installs as an
// optional dependency. When neither is there, the error says what was looked
// for and what to install.
const fs = require('node:fs');
const path = require('node:path');

const ADDON = 'k3core.node';
const LIBRARY = 'libk3core.so';
const MONITOR = 'k3-monitor';
const USERNS_HELPER = 'k3-userns';

// The platforms with a prebuilt package, and the oldest glibc their binaries
// load on (test/prebuilt.test.js reads the versioned symbols to check it).
const PREBUILT_ARCHES = ['x64', 'arm64'];
const GLIBC_MIN = '2.34';

const sourceBuild = path.join(__dirname, '..', 'build', 'Release');

function platformPackage(arch = process.arch) {
  return `@k3-core/linux-${arch}`;
}

function glibcRuntime() {
  if (process.platform !== 'linux') return null;
  return process.report.getReport().header.glibcVersionRuntime || null;
}

function olderVersion(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
}

// Why this machine cannot use a prebuilt package, or null when it can.
function prebuiltUnsupported() {
  if (process.platform !== 'linux') return `there are prebuilt binaries for Linux only, and this is ${process.platform}`;
  if (!PREBUILT_ARCHES.includes(process.arch)) return `there are prebuilt binaries for ${PREBUILT_ARCHES.join(' and ')} only, and this is ${process.arch}`;
  const glibc = glibcRuntime();
  if (!glibc) return 'the prebuilt binaries need glibc, and this system has another C library (musl?)';
  if (olderVersion(glibc, GLIBC_MIN)) return `the prebuilt binaries need glibc ${GLIBC_MIN} or newer, and this system has ${glibc}`;
  return null;
}

// The installed prebuilt package's directory, or null.
function prebuiltDir() {
  if (prebuiltUnsupported()) return null;
  try {
    return path.dirname(require.resolve(`${platformPackage()}/package.json`));
  } catch {
    return null;
  }
}

const BUILD_NEEDS = 'Go 1.26 or newer, gcc, g++, make and Python 3';

function notFoundMessage() {
  const looked = [`a build from source at ${path.join(sourceBuild, ADDON)}`];
  const unsupported = prebuiltUnsupported();
  if (unsupported) {
    return `k3-core has no native binaries: it looked for ${looked[0]}, and found none; ` +
      `${unsupported}. Build from source: install ${BUILD_NEEDS}, then run \`npm rebuild k3-core\`.`;
  }
  looked.push(`the prebuilt package ${platformPackage()}`);
  return `k3-core has no native binaries for linux-${process.arch}: it looked for ${looked.join(' and for ')}, and found neither. ` +
    `Install the prebuilt package: \`npm install ${platformPackage()}\` (npm leaves it out under --omit=optional or --no-optional), ` +
    `or build from source: install ${BUILD_NEEDS}, then run \`npm rebuild k3-core\`.`;
}

// The directory holding the addon, the library, the monitor and the helper. A build from
// source wins over a prebuilt package, so a developer's own build is the one
// that runs.
function binaryDir() {
  if (fs.existsSync(path.join(sourceBuild, ADDON))) return sourceBuild;
  const dir = prebuiltDir();
  if (dir) return dir;
  throw new Error(notFoundMessage());
}

// Loads the addon from dir, saying which file failed and why.
function loadAddon(dir) {
  const file = path.join(dir, ADDON);
  try {
    return require(file);
  } catch (e) {
    const glibc = dir === sourceBuild ? '' : ` (the prebuilt binaries need glibc ${GLIBC_MIN} or newer; this system has ${glibcRuntime() || 'none'})`;
    throw new Error(`k3-core could not load its native addon ${file}: ${e.message}${glibc}`, { cause: e });
  }
}

module.exports = {
  ADDON, LIBRARY, MONITOR, USERNS_HELPER, PREBUILT_ARCHES, GLIBC_MIN, BUILD_NEEDS,
  platformPackage, prebuiltUnsupported, prebuiltDir, binaryDir, loadAddon,
};
