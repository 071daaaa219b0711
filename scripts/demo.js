#!/usr/bin/env node
'use strict';
// Shows k3-core's main job offline on a fresh machine: it makes a small
// image from files this package has, writes it as an OCI layout, and
// inspects it the way `skopeo inspect oci:DIR:demo` would; then it shows
// the typed error a missing image gives.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('../test/helpers/images');

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-demo-'));
  try {
    const file = (p) => ({ path: `app/${p}`, content: fs.readFileSync(path.join(__dirname, '..', p)) });
    const image = images.makeImage({
      layers: [[file('package.json'), file('index.js')], [file('README.md')]],
      config: { Labels: { 'org.opencontainers.image.title': 'k3-core demo' }, Env: ['PATH=/usr/bin:/bin', 'APP=k3-core'] },
    });
    images.writeOciLayout(dir, [{ image, refName: 'demo' }]);
    console.log(`Wrote a 2-layer image to the OCI layout ${dir}`);

    const k3 = new K3Core();
    const info = await k3.imageCore.inspectAnImage(dir, { imageName: dir, imageTag: 'demo', containerImageTransport: 'oci' });
    console.log('inspectAnImage:', JSON.stringify(info, null, 2));

    try {
      await k3.imageCore.inspectAnImage(dir, { imageName: dir, imageTag: 'missing', containerImageTransport: 'oci' });
    } catch (err) {
      console.log(`\nAnd a missing image (${err instanceof K3Core.errors.ImageNotFoundInRegistry ? 'an ImageNotFoundInRegistry' : err.name}):`);
      console.log(err.createFullMessage());
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
