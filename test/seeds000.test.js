'use strict';
// Seed 000's examples 1-8 and error-handling patterns 1-3 (exportContainer)
// run as real user code: each file in test/seeds/000 is run by `node` in a
// process of its own, with `require('k3-core')` resolving to this package,
// `new K3Core()` using the store in $K3_ROOT, and the document's absolute
// paths moved under $K3_TEST_FS (see test/seeds/000/README.md).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const K3Core = require('..');
const { startRegistry, registryAvailable, whichSync } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
// Example 2 exports a running container: that needs root, runc and a busybox.
const canRun = process.getuid() === 0 && Boolean(whichSync('runc')) && fs.existsSync('/bin/busybox');
if (!canRun) console.log('# seed 000 example 2 runs without a running container: needs root, runc and /bin/busybox');
if (skip) console.log(`# skipping seed 000 examples: ${skip}`);

const NAMES = ['my-container', 'web-server', 'database', 'cache', 'app-server', 'old-service'];

let reg;
let tmp;
let modules;
let R;
let root;
let k3;

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const mb = (bytes) => (bytes / 1024 / 1024).toFixed(2);

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-seed000-'));
  reg = await startRegistry();
  const image = images.makeImage({
    layers: [
      [{ path: 'etc', type: 'dir' }, { path: 'etc/hostname', content: 'app\n' },
        { path: 'usr', type: 'dir' }, { path: 'usr/lib', type: 'dir' },
        { path: 'usr/lib/blob', content: crypto.randomBytes(2 * 1024 * 1024) }],
      [{ path: 'srv', type: 'dir' }, { path: 'srv/index.html', content: '<h1>hi</h1>\n' }],
      ...(canRun ? [[{ path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
        ...['sh', 'sleep', 'true'].map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' }))]] : []),
    ],
    config: { Cmd: ['/bin/true'], Env: ['PATH=/bin'] },
  });
  await images.pushImage(reg, 'seed000/app', 'v1', image);
  const ref = `${reg.host}/seed000/app:v1`;
  root = path.join(tmp, 'store');
  k3 = new K3Core({ root });
  await k3.imageCore.pullAnImage(ref);
  for (const name of NAMES) await k3.containerCore.createContainer(ref, { name });
  if (canRun) {
    // One container running (example 2 exports it), and old-service has run
    // and exited (example 8 archives and removes it).
    await k3.containerCore.createContainer(ref, { name: 'running-app', cmd: ['/bin/sh', '-c', 'echo up > /srv/state; sleep 1000'] });
    await k3.containerCore.startContainer('running-app');
    await k3.containerCore.startContainer('old-service');
    await k3.containerCore.waitContainer('old-service');
  }
  // The document's file system, under R.
  R = path.join(tmp, 'fs');
  for (const d of ['tmp', 'backup', 'transfer', 'archive']) fs.mkdirSync(path.join(R, d), { recursive: true });
  // require('k3-core') from the examples resolves through NODE_PATH to here.
  modules = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-seed000-modules-'));
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(modules, 'k3-core'));
});

after(async () => {
  if (reg) await reg.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (modules) fs.rmSync(modules, { recursive: true, force: true });
});

function runExample(file) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'seeds', '000', file)], {
      env: { ...process.env, NODE_PATH: modules, K3_ROOT: root, K3_TEST_FS: R }, timeout: 300000,
    }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${file}: ${err.message}\n${stderr}`));
      assert.doesNotMatch(stdout, /ERROR/, `${file} printed an error:\n${stdout}`);
      resolve(stdout);
    });
  });
}

function tarNames(file, extra = []) {
  return execFileSync('tar', [...extra, '-tf', file], { encoding: 'utf8' }).trim().split('\n');
}

test('example 1: simple export', { skip }, async () => {
  const file = `${R}/tmp/my-container.tar`;
  const out = await runExample('example1.js');
  assert.equal(out, `Success: my-container has exported successfully to ${file}\n`);
  assert.ok(tarNames(file).includes('usr/lib/blob'));
});

test('example 2: the first running container is exported', { skip }, async () => {
  const out = await runExample('example2.js');
  if (!canRun) {
    assert.equal(out, 'Running containers: 0\n');
    return;
  }
  const file = `${R}/backup/running-app.tar`;
  assert.equal(out, `Running containers: 1\nExport result: running-app has exported successfully to ${file}\nContainer exported: running-app\n`);
  assert.ok(tarNames(file).includes('srv/state'), 'what the running process wrote is in the export');
  await k3.containerCore.removeContainer('running-app', { force: true });
  assert.deepEqual(fs.readdirSync(`${R}/backup`).filter((n) => !['web-server.tar', 'database.tar', 'cache.tar', 'running-app.tar'].includes(n)), []);
});

test('example 3: export and verify', { skip }, async () => {
  const file = `${R}/tmp/web-server-backup.tar`;
  const out = await runExample('example3.js');
  const size = fs.statSync(file).size;
  assert.match(out, new RegExp(`^Exporting container\\.\\.\\.\\nExport result: web-server has exported successfully to ${esc(file)}\\n` +
    `Verifying file\\.\\.\\.\\nFile verified:\\n Size: ${esc(mb(size))} MB\\n Created: .+\\n$`));
  const busybox = canRun ? fs.statSync('/bin/busybox').size + 64 * 1024 : 0;
  assert.ok(size > 2 * 1024 * 1024 && size < 2.1 * 1024 * 1024 + busybox, String(size));
  const created = /Created: (.+)\n/.exec(out)[1];
  assert.ok(!Number.isNaN(Date.parse(created)), created);
});

test('example 4: several containers', { skip }, async () => {
  const out = await runExample('example4.js');
  assert.match(out, /^web-server exported\ndatabase exported\ncache exported\n\nExport Summary:\n/);
  assert.doesNotMatch(out, /✗/);
  assert.equal((out.match(/│ 'success' │/g) || []).length, 3, out);
  for (const name of ['web-server', 'database', 'cache']) {
    const file = `${R}/backup/${name}.tar`;
    assert.match(out, new RegExp(`'${name} has exported successfully to ${esc(file)}'`));
    assert.ok(tarNames(file).includes('srv/index.html'));
  }
});

test('example 5: error handling around a successful export', { skip }, async () => {
  const file = `${R}/tmp/my-container.tar`;
  const out = await runExample('example5.js');
  // fs.Stats has no bavail/bsize: the document's space check prints NaN.
  assert.match(out, /^Available space: NaN GB\n/);
  assert.match(out, new RegExp(`Result: \\{\\s+success: true,\\s+message: 'my-container has exported successfully to ${esc(file)}'\\s+\\}\\n$`));
});

test('example 6: timestamped backup', { skip }, async () => {
  const out = await runExample('example6.js');
  const m = new RegExp(`^Creating backup: (${esc(R)}/backups/containers/my-container-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d-\\d{3}Z\\.tar)\\n`).exec(out);
  assert.ok(m, out);
  const file = m[1];
  const size = fs.statSync(file).size;
  assert.ok(out.includes(`Backup created:\n File: ${file}\n Size: ${mb(size)} MB\n`), out);
  assert.match(out, new RegExp(`Backup result: \\{\\s+success: true,\\s+backupFile: '${esc(file)}',\\s+size: ${size}\\s+\\}\\n$`));
  assert.ok(tarNames(file).includes('etc/hostname'));
});

test('example 7: export for transfer with a checksum', { skip }, async () => {
  const file = `${R}/transfer/app-server-migration.tar.gz`;
  const out = await runExample('example7.js');
  const checksum = sha(fs.readFileSync(file));
  assert.equal(out, [
    'Step 1: Getting container info...',
    'Container: app-server',
    'Status: created',
    'Step 2: Exporting container...',
    '✓ Export completed',
    'Step 3: Creating checksum...',
    `✓ Checksum: ${checksum}`,
    '',
    'Ready for transfer:',
    ` File: ${file}`,
    ` Checksum: ${checksum}`,
    '',
  ].join('\n'));
  assert.equal(fs.readFileSync(file).subarray(0, 2).toString('hex'), '1f8b', 'a .tar.gz is gzip');
  assert.ok(zlib.gunzipSync(fs.readFileSync(file)).length > 2 * 1024 * 1024);
  assert.ok(tarNames(file, ['-z']).includes('usr/lib/blob'));
});

test('patterns 1, 2 and 3', { skip }, async () => {
  const file = `${R}/tmp/my-container.tar`;
  const out = await runExample('patterns.js');
  const success = `my-container has exported successfully to ${file}`;
  assert.match(out, new RegExp(`^Pattern 1 result: ${esc(success)}\\n`));
  assert.match(out, /\nContainer missing-container not found\nAvailable containers:\n/);
  for (const name of ['my-container', 'web-server', 'database', 'cache', 'app-server']) {
    assert.match(out, new RegExp(`\\n - ${name} \\(created\\)\\n`));
  }
  assert.match(out, /\nPattern 1 thrown: Container missing-container not found\. Use one from list above\.\n/);
  assert.equal(fs.existsSync(`${R}/tmp/missing-container.tar`), false);
  assert.match(out, new RegExp(`\\nAvailable space: NaN GB\\nPattern 2 result: \\{\\s+success: true,\\s+message: '${esc(success)}'\\s+\\}\\n`));
  assert.doesNotMatch(out, /Removed /, 'the clean-up branch never runs (NaN < 1 GB is false)');
  assert.match(out, new RegExp(`\\nDirectory is writable: ${esc(R)}/tmp\\nPattern 3 result: \\{\\s+success: true,\\s+message: '${esc(success)}'\\s+\\}\\n$`));
  assert.ok(tarNames(file).includes('etc/hostname'));
});

test('example 8: export, archive and remove', { skip }, async () => {
  const out = await runExample('example8.js');
  const exported = `${R}/tmp/old-service-export.tar`;
  const m = /✓ Moved to (.+)\n/.exec(out);
  assert.ok(m, out);
  const archive = m[1];
  assert.match(archive, new RegExp(`^${esc(R)}/archive/old-service-\\d+\\.tar$`));
  const size = fs.statSync(archive).size;
  assert.equal(out, [
    'Step 1: Exporting container...',
    '✓ Container exported',
    'Step 2: Verifying export...',
    `✓ Export verified (${mb(size)} MB)`,
    'Step 3: Moving to archive...',
    `✓ Moved to ${archive}`,
    'Step 4: Removing old container...',
    '✓ Old container removed',
    '',
    '✓ Successfully archived and removed old container',
    '',
  ].join('\n'));
  assert.equal(fs.existsSync(exported), false);
  assert.ok(tarNames(archive).includes('srv/index.html'));
  const left = (await k3.containerCore.listContainers()).map((c) => c.Name).sort();
  assert.deepEqual(left, NAMES.filter((n) => n !== 'old-service').sort());
});
