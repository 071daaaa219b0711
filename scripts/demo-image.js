#!/usr/bin/env node
'use strict';
// Makes the demo image offline: a 2-layer image of this package's own files
// (/app/package.json, /app/index.js, /app/README.md) as an OCI layout in the
// directory given, named k3-demo:1.0. `k3 pull oci:DIR:k3-demo:1.0` then
// loads it into a store, as the README shows.
const fs = require('node:fs');
const path = require('node:path');
const images = require('../test/helpers/images');

const REF = 'k3-demo:1.0';

function writeDemoImage(layout) {
  const file = (p) => ({ path: `app/${p}`, content: fs.readFileSync(path.join(__dirname, '..', p)) });
  const image = images.makeImage({
    layers: [[{ path: 'app', type: 'dir' }, file('package.json'), file('index.js')], [file('README.md')]],
    config: { Labels: { 'org.opencontainers.image.title': 'k3-core demo' }, Env: ['PATH=/usr/bin:/bin', 'APP=k3-core'], Cmd: ['/app/index.js'] },
  });
  images.writeOciLayout(layout, [{ image, refName: REF }]);
  return { layout, ref: REF };
}

module.exports = { writeDemoImage, REF };

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/demo-image.js DIR');
    process.exit(2);
  }
  const { layout } = writeDemoImage(path.resolve(dir));
  console.log(`Made ${REF}, a 2-layer image, as an OCI layout in ${layout}`);
}
