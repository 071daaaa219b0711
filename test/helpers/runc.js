'use strict';
// What running containers in a test needs: root, runc and a static busybox
// to build images from. Returns why not, or '' when all is there.
const fs = require('node:fs');
const { whichSync } = require('./registry');

function containerRunReasons() {
  const reasons = [];
  if (process.getuid() !== 0) reasons.push('not root');
  if (!whichSync('runc')) reasons.push('runc is not installed');
  if (!fs.existsSync('/bin/busybox')) reasons.push('busybox-static is not installed');
  return reasons.join(', ');
}

module.exports = { containerRunReasons };
