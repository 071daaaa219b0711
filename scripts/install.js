#!/usr/bin/env node
// npm's install step. Installed from the registry, k3-core uses the prebuilt
// package for this platform (an optional dependency) when npm installed it,
// and has nothing to do; otherwise it builds from source (scripts/build.js),
// which names any missing tool. A git checkout is a developer's, and is
// always built from source.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const binaries = require('../js/binaries');

const checkout = fs.existsSync(path.join(__dirname, '..', '.git'));
if (!checkout && binaries.prebuiltDir()) process.exit(0);
if (!checkout) {
  const why = binaries.prebuiltUnsupported() || `the prebuilt package ${binaries.platformPackage()} is not installed`;
  console.log(`k3-core: building from source, since ${why}.`);
}
require('./build');
