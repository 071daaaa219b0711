#!/usr/bin/env node
'use strict';
// k3-core's main job, offline, on the default store (~/.local/share/k3-core,
// or $K3_ROOT): make a small image from files this package has, load it into
// the store, create a container, change a file in it, export it, and show
// what was done and the image's inspect output.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const K3Core = require('..');
const { writeDemoImage } = require('./demo-image');

(async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-demo-'));
  const k3 = new K3Core();
  const name = `k3-demo-${process.pid}`;
  try {
    const layout = path.join(work, 'layout');
    writeDemoImage(layout);
    console.log(`1. Made a 2-layer image as an OCI layout in ${layout}`);

    const info = await k3.imageCore.inspectAnImage(layout, { imageName: layout, imageTag: 'k3-demo:1.0', containerImageTransport: 'oci' });
    console.log('2. inspectAnImage:', JSON.stringify(info, null, 2));

    const pulled = await k3.imageCore.pullAnImage(layout, 'k3-demo:1.0', { containerImageTransport: 'oci' });
    console.log(`3. Loaded it into the store at ${k3.root} as ${pulled.RepoTags[0]} (${pulled.LayersPulled} layers unpacked, ${pulled.LayersReused} reused)`);

    const container = await k3.containerCore.createContainer('k3-demo:1.0', { name });
    console.log(`4. Created container ${container.Name} (${container.Id.slice(0, 12)})`);

    const changed = path.join(work, 'greeting.txt');
    fs.writeFileSync(changed, `hello from ${os.hostname()} at ${new Date().toISOString()}\n`);
    await k3.containerCore.copyToContainer(name, changed, '/app/');
    await k3.containerCore.removeFromContainer(name, '/app/README.md');
    console.log('5. Copied /app/greeting.txt in and deleted /app/README.md');

    const out = path.join(work, `${name}.tar.gz`);
    console.log(`6. ${await k3.containerCore.exportContainer(name, out)}`);
    console.log(execFileSync('tar', ['-tzvf', out], { encoding: 'utf8' }));

    const committed = await k3.containerCore.commitContainer(name, { repository: 'k3-demo', tag: '1.1', message: 'greeting added' });
    const saved = path.join(work, 'k3-demo.tar');
    await k3.imageCore.saveImage(['k3-demo:1.0', 'k3-demo:1.1'], saved);
    console.log(`7. Committed the container as k3-demo:1.1 (${committed.Id.slice(7, 19)}) and saved both images as a docker save tarball:`);
    console.log(execFileSync('tar', ['-tvf', saved], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } }));
  } finally {
    await k3.containerCore.removeContainer(name).catch(() => {});
    await k3.imageCore.removeImage('k3-demo:1.1').catch(() => {});
    await k3.imageCore.removeImage('k3-demo:1.0').catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
    console.log('8. Removed the demo container and images again.');
  }
})().catch((e) => {
  console.error(e.createFullMessage ? e.createFullMessage() : e);
  process.exit(1);
});
