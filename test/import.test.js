'use strict';
// importImage (docker import) and containerChanges (docker diff): the
// restore half of a backup. Export, import, create, export gives the same
// bytes; Docker's own import and diff are the oracles; hostile archives are
// refused or contained, and a refused import leaves nothing behind.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const zlib = require('node:zlib');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');
const { startDocker, dockerUnavailable } = require('./helpers/docker');
const { need } = require('./helpers/need');

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const runSkip = need(root && whichSync('runc') && fs.existsSync('/bin/busybox') ? false : 'needs root, runc and /bin/busybox');
const dockerSkip = need(dockerUnavailable()) || runSkip;
const mountSkip = need(root ? false : 'not running as root (mounting a small tmpfs needs it)');

const APPLETS = ['sh', 'mkdir', 'rm', 'rmdir', 'chmod', 'chown', 'echo', 'sleep', 'touch', 'mv', 'cat', 'ln'];
const MTIME = 1700000000;

let tmp;
let k3;

// The base image: a tree with what a backup must keep (modes, owners,
// setuid, long names, symlinks, hardlinks, xattrs, a FIFO), busybox to run
// the same changes in Docker and here, and the runtime's mount points.
function baseEntries() {
  const d = (p, extra = {}) => ({ path: p, type: 'dir', mtime: MTIME, ...extra });
  const f = (p, content, extra = {}) => ({ path: p, content, mtime: MTIME, ...extra });
  return [
    d('bin'), f('bin/busybox', fs.existsSync('/bin/busybox') ? fs.readFileSync('/bin/busybox') : 'none', { mode: 0o755 }),
    ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox', mtime: MTIME })),
    d('dev'), d('proc'), d('sys'), d('tmp', { mode: 0o1777 }),
    d('etc'), f('etc/hostname', 'base\n'), f('etc/hosts', '127.0.0.1 localhost\n'), f('etc/resolv.conf', ''),
    d('data'), f('data/keep', 'keep'), f('data/edit', 'before'), f('data/gone', 'gone'), f('data/meta', 'same', { mode: 0o644 }),
    f('data/owned', 'owned', { uid: 1234, gid: 5678 }), f('data/suid', 'suid', { mode: 0o4755 }),
    f('data/attrs', 'attrs', { xattrs: { 'user.k3': 'restored' } }),
    { path: 'data/link', type: 'symlink', linkname: 'keep', mtime: MTIME },
    { path: 'data/hard', type: 'hardlink', linkname: 'data/keep', mtime: MTIME },
    { path: 'data/fifo', type: 'fifo', mtime: MTIME },
    f(`data/${'long-name-'.repeat(14)}end`, 'long'),
    d('data/cache'), f('data/cache/one', '1'), f('data/cache/two', '2'), d('data/cache/deep'), f('data/cache/deep/three', '3'),
    d('data/olddir'), f('data/olddir/inside', 'x'),
    f('data/becomes-dir', 'file'),
  ];
}

// The same changes, as a script for a running container, and through
// copyToContainer and removeFromContainer for a created one.
const SCRIPT = [
  'echo after > /data/edit', 'rm /data/gone', 'chmod 600 /data/meta', 'echo new > /data/added',
  'rm -r /data/cache', 'mkdir /data/cache', 'echo fresh > /data/cache/one',
  'rm -r /data/olddir', 'rm /data/becomes-dir', 'mkdir /data/becomes-dir', 'echo in > /data/becomes-dir/child',
  'mkdir -p /data/newdir/sub', 'echo deep > /data/newdir/sub/file',
].join(' && ');

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-import-'));
  const img = images.makeImage({ layers: [images.makeLayer(baseEntries())], config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] } });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'base:1' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'base:1', { containerImageTransport: 'oci' });
});

after(async () => {
  for (const c of await k3.containerCore.listContainers()) await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

let containers = 0;
async function changedContainer() {
  const name = `changed-${++containers}`;
  await k3.containerCore.createContainer('base:1', { name });
  const src = path.join(tmp, name);
  fs.mkdirSync(path.join(src, 'cache'), { recursive: true });
  fs.writeFileSync(path.join(src, 'edit'), 'after\n');
  fs.writeFileSync(path.join(src, 'added'), 'new\n');
  fs.writeFileSync(path.join(src, 'cache', 'one'), 'fresh\n');
  await k3.containerCore.copyToContainer(name, path.join(src, 'edit'), '/data/edit');
  await k3.containerCore.removeFromContainer(name, '/data/gone');
  await k3.containerCore.copyToContainer(name, path.join(src, 'added'), '/data/added');
  await k3.containerCore.removeFromContainer(name, '/data/cache');
  await k3.containerCore.copyToContainer(name, path.join(src, 'cache'), '/data/cache');
  await k3.containerCore.removeFromContainer(name, '/data/olddir');
  return name;
}

function configOf(id) {
  return JSON.parse(fs.readFileSync(path.join(k3.root, 'blobs', 'sha256', id.slice(7)), 'utf8'));
}

async function imported(source, options) {
  const out = await k3.imageCore.importImage(source, options);
  return { ...out, config: configOf(out.Id) };
}

function assertNothingLeft(what) {
  assert.deepEqual(fs.readdirSync(path.join(k3.root, 'tmp')), [], `${what}: staging left behind`);
}

test('export, import, create, export: the second tar is the first, byte for byte; compressed copies import the same', async () => {
  const name = await changedContainer();
  const first = path.join(tmp, 'first.tar');
  await k3.containerCore.exportContainer(name, first);
  const events = [];
  const out = await imported(first, { repository: 'k3test/restored', tag: 'v1', onProgress: (e) => events.push(e) });
  assert.deepEqual(out.RepoTags, ['docker.io/k3test/restored:v1']);
  const tarBytes = fs.readFileSync(first);
  assert.deepEqual(out.config.rootfs.diff_ids, [`sha256:${crypto.createHash('sha256').update(tarBytes).digest('hex')}`]);
  assert.equal(out.config.history[0].comment, `Imported from ${first}`);
  assert.equal(out.config.os, 'linux');
  assert.equal(out.config.architecture, { x64: 'amd64', arm64: 'arm64' }[process.arch] || process.arch);
  assert.deepEqual(events.at(-1), { phase: 'done', current: tarBytes.length, total: tarBytes.length });

  await k3.containerCore.createContainer('k3test/restored:v1', { name: 'restored' });
  const second = path.join(tmp, 'second.tar');
  await k3.containerCore.exportContainer('restored', second);
  assert.ok(fs.readFileSync(second).equals(tarBytes), 'the second export is the first, byte for byte');

  const compressed = [['gzip', '.gz'], ['zstd', '.zst'], ['xz', '.xz'], ['bzip2', '.bz2']];
  for (const [tool, ext] of compressed) {
    if (!whichSync(tool)) continue;
    execFileSync(tool, ['-k', '-f', first]);
    const again = await imported(first + ext, { message: `from ${tool}` });
    assert.deepEqual(again.config.rootfs.diff_ids, out.config.rootfs.diff_ids, tool);
    assert.equal(again.config.history[0].comment, `from ${tool}`);
  }
  assertNothingLeft('round trip');
});

test('a .tar.gz streamed from a local HTTP server imports as the file does, with changes and a platform', async () => {
  const name = await changedContainer();
  const file = path.join(tmp, 'served.tar');
  await k3.containerCore.exportContainer(name, file);
  const gz = zlib.gzipSync(fs.readFileSync(file));
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/gzip' });
    // Served in small pieces, so the import reads while it is still sent.
    Readable.from((function* pieces() { for (let i = 0; i < gz.length; i += 16384) yield gz.subarray(i, i + 16384); })()).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await new Promise((resolve, reject) => http.get(`http://127.0.0.1:${server.address().port}/backup.tar.gz`, resolve).on('error', reject));
    const out = await imported(res, { repository: 'k3test/streamed', platform: 'linux/arm64', changes: ['ENV MODE=restored', 'CMD ["/bin/sh", "-c", "echo hi"]', 'WORKDIR /data'] });
    const fromFile = await imported(file);
    assert.deepEqual(out.config.rootfs.diff_ids, fromFile.config.rootfs.diff_ids);
    assert.equal(out.config.history[0].comment, 'Imported from -');
    assert.equal(out.config.architecture, 'arm64');
    assert.deepEqual(out.config.config.Env, ['MODE=restored']);
    assert.deepEqual(out.config.config.Cmd, ['/bin/sh', '-c', 'echo hi']);
    assert.equal(out.config.config.WorkingDir, '/data');
  } finally {
    server.close();
  }
  assertNothingLeft('stream');
});

test('bad sources and options are refused with their class, and nothing is recorded or left behind', async () => {
  const before = (await k3.imageCore.listImages()).length;
  const junk = path.join(tmp, 'junk.tar');
  fs.writeFileSync(junk, crypto.randomBytes(4096));
  const empty = path.join(tmp, 'empty.tar');
  fs.writeFileSync(empty, '');
  const whole = images.makeTar([{ path: 'a', content: 'x'.repeat(100000) }]);
  const truncated = path.join(tmp, 'truncated.tar');
  fs.writeFileSync(truncated, whole.subarray(0, 50000));
  const cases = [
    [path.join(tmp, 'missing.tar'), undefined, 'ImportSourceNotFound', 404],
    [tmp, undefined, 'ImportSourceNotFound', 404],
    [junk, undefined, 'InvalidImportArchive', 422],
    [empty, undefined, 'InvalidImportArchive', 422],
    [truncated, undefined, 'InvalidImportArchive', 422],
    ['', undefined, 'InvalidImportImageParameters', 422],
    [42, undefined, 'InvalidImportImageParameters', 422],
    [junk, { changes: ['RUN rm -rf /'] }, 'InvalidImportImageParameters', 422],
    [junk, { repository: 'Upper/Case' }, 'InvalidImportImageParameters', 422],
    [junk, { tag: 'v1' }, 'InvalidImportImageParameters', 422],
    [junk, { platform: 'amd64' }, 'InvalidImportImageParameters', 422],
  ];
  for (const [source, options, name, code] of cases) {
    const err = await k3.imageCore.importImage(source, options).then(() => null, (e) => e);
    assert.ok(err instanceof K3Core.errors[name], `${source} ${JSON.stringify(options)}: ${err && err.name}: ${err && err.details.error}`);
    assert.equal(err.statusCode, code);
    assert.equal(err.message, { 404: 'Import source not found.', 422: err.message }[code]);
    assert.ok(err.details.error, 'details.error says why');
  }
  // A stream that fails half way: the engine sees a broken source, and the
  // stream's own error is the cause.
  // It fails once the engine has read the first part and asks for more.
  let given = false;
  const failing = new Readable({
    read() {
      if (given) return void setImmediate(() => failing.destroy(new Error('upstream went away')));
      given = true;
      this.push(whole.subarray(0, 20000));
    },
  });
  const err = await k3.imageCore.importImage(failing).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.InvalidImportArchive, err && `${err.name}: ${err.details.error}`);
  assert.equal(err.cause && err.cause.message, 'upstream went away');
  assert.equal(err.details.source, '-');
  // An abort stops a stream that never ends.
  const endless = Readable.from((function* zeros() { for (;;) yield Buffer.alloc(65536); })());
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  const aborted = await k3.imageCore.importImage(endless, { signal: ac.signal }).then(() => null, (e) => e);
  assert.ok(aborted instanceof K3Core.errors.AbortError, aborted && aborted.name);
  // An aborted call settles once its work has ended (README, Cancellation).
  assert.equal((await k3.imageCore.listImages()).length, before);
  assertNothingLeft('refusals');
});

test('hostile archives are refused (UnsafeImageContent) or kept inside the store; nothing lands outside', async () => {
  const tag = crypto.randomBytes(4).toString('hex');
  const passwd = fs.readFileSync('/etc/passwd');
  const passwdStat = fs.statSync('/etc/passwd');
  const hostDir = path.join(os.tmpdir(), `k3-import-sym-${tag}`);
  fs.mkdirSync(hostDir);
  const deep = '../'.repeat(24);
  const root = k3.root;
  // A decompression bomb: a header claiming 100 GiB, then zeros; it is
  // refused at the header, before a byte of it is written.
  const bombHeader = images.makeTar([{ path: 'bomb', content: '' }]).subarray(0, 512);
  bombHeader.fill(0, 124, 136);
  bombHeader[124] = 0x80; // base-256 size, as tar writes sizes past 8 GiB
  bombHeader.writeBigUInt64BE(100n << 30n, 128);
  bombHeader.fill(' ', 148, 156);
  let sum = 0;
  for (const b of bombHeader) sum += b;
  bombHeader.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const bomb = zlib.gzipSync(Buffer.concat([bombHeader, Buffer.alloc(64 << 20)]));
  const cases = [
    { name: 'slip', tar: images.makeTar([{ path: `../../escape-${tag}`, content: 'slipped' }]),
      outside: [path.join(root, `escape-${tag}`), path.join(path.dirname(root), `escape-${tag}`), path.join(root, 'tmp', `escape-${tag}`)], refuse: true },
    { name: 'slip-deep', tar: images.makeTar([{ path: `${deep}tmp/k3-import-slip-${tag}`, content: 'slipped' }]),
      outside: [`/tmp/k3-import-slip-${tag}`], refuse: true },
    { name: 'whiteout-slip', tar: images.makeTar([{ path: '../.wh.sentinel', content: '' }]), outside: [], refuse: true },
    { name: 'absolute', tar: images.makeTar([{ path: `/tmp/k3-import-abs-${tag}`, content: 'absolute' }]),
      outside: [`/tmp/k3-import-abs-${tag}`], inside: `tmp/k3-import-abs-${tag}` },
    { name: 'symlink', tar: images.makeTar([{ path: 'evil', type: 'symlink', linkname: hostDir }, { path: 'evil/file', content: 'pwned' }]),
      outside: [path.join(hostDir, 'file')], refuse: true },
    { name: 'symlink-chain', tar: images.makeTar([{ path: 'c1', type: 'symlink', linkname: 'c2' }, { path: 'c2', type: 'symlink', linkname: '../..' },
      { path: 'c1/escape', content: 'x' }]), outside: [path.join(path.dirname(root), 'escape')], inside: 'escape' },
    { name: 'hardlink', tar: images.makeTar([{ path: 'passwd', type: 'hardlink', linkname: '/etc/passwd' }]), outside: [], refuse: true },
    { name: 'hardlink-up', tar: images.makeTar([{ path: 'passwd', type: 'hardlink', linkname: `${deep}etc/passwd` }]), outside: [], refuse: true },
    { name: 'hardlink-via-symlink', tar: images.makeTar([{ path: 's', type: 'symlink', linkname: '/etc' }, { path: 'passwd', type: 'hardlink', linkname: 's/passwd' }]),
      outside: [], refuse: true },
    { name: 'bomb', tar: bomb, outside: [], refuse: true },
  ];
  const problems = [];
  try {
    for (const c of cases) {
      const file = path.join(tmp, `hostile-${c.name}.tar`);
      fs.writeFileSync(file, c.tar);
      for (const source of [file, fs.createReadStream(file)]) {
        const how = `${c.name} (${typeof source === 'string' ? 'file' : 'stream'})`;
        const outcome = await k3.imageCore.importImage(source, { repository: `hostile/${c.name}` }).then((r) => r, (e) => e);
        for (const p of c.outside) assert.equal(fs.existsSync(p), false, `${how}: ${p} was written outside the store`);
        assert.ok(fs.readFileSync('/etc/passwd').equals(passwd), `${how}: /etc/passwd changed`);
        assert.equal(fs.statSync('/etc/passwd').nlink, passwdStat.nlink, `${how}: /etc/passwd gained a link`);
        assert.deepEqual(fs.readdirSync(hostDir), [], `${how}: wrote through the symlink`);
        assertNothingLeft(how);
        if (outcome instanceof Error) {
          if (!c.refuse || outcome.name !== 'UnsafeImageContent') problems.push(`${how}: ${outcome.name}: ${outcome.details.error}`);
          continue;
        }
        if (c.refuse) {
          problems.push(`${how}: imported; expected UnsafeImageContent`);
          continue;
        }
        const cname = `hostile-${c.name}-${typeof source === 'string' ? 'f' : 's'}`;
        await k3.containerCore.createContainer(outcome.Id, { name: cname });
        const out = path.join(tmp, `${cname}.tar`);
        await k3.containerCore.exportContainer(cname, out);
        const names = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n');
        if (!names.includes(c.inside)) problems.push(`${how}: ${c.inside} is not in the container (${names.join(' ')})`);
      }
    }
  } finally {
    fs.rmSync(hostDir, { recursive: true, force: true });
  }
  assert.deepEqual(problems, []);
});

test('a full disk is InsufficientDiskSpaceForImport, checked first for a file and on ENOSPC for a stream; nothing is left', { skip: mountSkip }, async () => {
  const small = path.join(tmp, 'small');
  fs.mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
  try {
    const k = new K3Core({ root: path.join(small, 'store') });
    const big = path.join(tmp, 'big.tar');
    fs.writeFileSync(big, images.makeTar([{ path: 'big', content: crypto.randomBytes(6 << 20) }]));
    const first = await k.imageCore.importImage(big).then(() => null, (e) => e);
    assert.ok(first instanceof K3Core.errors.InsufficientDiskSpaceForImport, first && `${first.name}: ${first.details.error}`);
    assert.equal(first.statusCode, 507);
    assert.match(first.details.requiredSpace, /MB/);
    const streamed = await k.imageCore.importImage(fs.createReadStream(big)).then(() => null, (e) => e);
    assert.ok(streamed instanceof K3Core.errors.InsufficientDiskSpaceForImport, streamed && `${streamed.name}: ${streamed.details.error}`);
    assert.deepEqual(fs.readdirSync(path.join(small, 'store', 'tmp')), []);
    assert.deepEqual(fs.readdirSync(path.join(small, 'store', 'layers')), []);
    assert.deepEqual(await k.imageCore.listImages(), []);
  } finally {
    execFileSync('umount', ['-l', small]); // the engine keeps the store's database open
  }
});

// Every file of the store but the database, with what a write would change.
function storeSnapshot() {
  const lines = [];
  const walk = (dir) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      if (dir === k3.root && name.startsWith('k3.db')) continue;
      lines.push(`${path.relative(k3.root, p)} ${st.mode} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(k3.root);
  return lines.join('\n');
}

test('containerChanges lists a created container\'s changes in docker\'s order, and only reads', async () => {
  await k3.containerCore.createContainer('base:1', { name: 'untouched' });
  assert.deepEqual(await k3.containerCore.containerChanges('untouched'), []);
  const name = await changedContainer();
  const before = storeSnapshot();
  const got = await k3.containerCore.containerChanges(name);
  assert.equal(storeSnapshot(), before, 'the store is unchanged');
  assert.deepEqual(got, [
    { Path: '/data', Kind: 0 },
    { Path: '/data/added', Kind: 1 },
    { Path: '/data/cache', Kind: 0 },
    { Path: '/data/cache/deep', Kind: 2 },
    { Path: '/data/cache/one', Kind: 0 },
    { Path: '/data/cache/two', Kind: 2 },
    { Path: '/data/edit', Kind: 0 },
    { Path: '/data/gone', Kind: 2 },
    { Path: '/data/olddir', Kind: 2 },
  ]);
  const err = await k3.containerCore.containerChanges('no-such-container').then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.ContainerNotFound, err && err.name);
  const bad = await k3.containerCore.containerChanges('bad/name').then(() => null, (e) => e);
  assert.ok(bad instanceof K3Core.errors.InvalidContainerChangesParameters, bad && bad.name);
});

// Docker's vfs driver compares whole trees and lists in map order; the
// changes must be the same, and ours in walk order.
function parseDockerDiff(out) {
  const kinds = { C: 0, A: 1, D: 2 };
  return out.trim().split('\n').filter(Boolean).map((line) => ({ Path: line.slice(2), Kind: kinds[line[0]] }));
}
const byPath = (list) => [...list].sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));

function assertWalkOrder(list) {
  const key = (p) => p.split('/');
  for (let i = 1; i < list.length; i++) {
    const a = key(list[i - 1].Path);
    const b = key(list[i].Path);
    let j = 0;
    while (j < a.length && j < b.length && a[j] === b[j]) j++;
    assert.ok(j === a.length || (j < b.length && a[j] < b[j]), `${list[i - 1].Path} before ${list[i].Path}`);
  }
}

test('against Docker: docker import of our export gives our diff ID and config; docker diff lists what containerChanges lists (running, exited)', { skip: dockerSkip }, async () => {
  const docker = await startDocker();
  try {
    await k3.containerCore.createContainer('base:1', { name: 'for-docker' });
    const file = path.join(tmp, 'for-docker.tar');
    await k3.containerCore.exportContainer('for-docker', file);
    const changes = ['ENV PATH=/bin', 'ENV MODE=restored', 'CMD ["/bin/sh"]', 'ENTRYPOINT ["/bin/busybox"]', 'WORKDIR /data',
      'USER 0:0', 'LABEL backup=nightly', 'EXPOSE 8080'];
    const ours = await imported(file, { repository: 'k3test/oracle', changes });
    const id = (await docker.docker('import', ...changes.flatMap((c) => ['--change', c]), file, 'k3test/oracle:latest')).trim();
    const theirs = JSON.parse(await docker.docker('image', 'inspect', id))[0];
    assert.deepEqual(ours.config.rootfs.diff_ids, theirs.RootFS.Layers, 'the same diff ID');
    for (const key of ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'Labels', 'ExposedPorts']) {
      assert.deepEqual(ours.config.config[key], theirs.Config[key], key);
    }
    assert.equal(ours.config.architecture, theirs.Architecture);
    assert.equal(ours.config.os, theirs.Os);

    // The same script in both containers, from the same image.
    const plain = (await imported(file, { repository: 'k3test/plain', changes: ['ENV PATH=/bin'] })).Id;
    await docker.docker('run', '--name', 'changed', '--network', 'none', '--entrypoint', '/bin/sh', 'k3test/oracle', '-c', SCRIPT);
    const want = parseDockerDiff(await docker.docker('diff', 'changed'));
    assert.ok(want.length > 10, `docker diff: ${JSON.stringify(want)}`);
    await k3.containerCore.createContainer(plain, { name: 'scripted', cmd: ['/bin/sh', '-c', `${SCRIPT} && touch /tmp/.done && sleep 1000`] });
    assert.deepEqual(await k3.containerCore.containerChanges('scripted'), [], 'created: no changes');
    await k3.containerCore.startContainer('scripted');
    const bundle = (await k3.containerCore.inspectContainer('scripted')).BundleDir;
    const done = path.join(bundle, 'diff', 'tmp', '.done');
    for (const end = Date.now() + 60000; !fs.existsSync(done); await new Promise((r) => setTimeout(r, 10))) {
      assert.ok(Date.now() < end, 'the script ran within a minute');
    }
    const running = (await k3.containerCore.containerChanges('scripted')).filter((c) => !c.Path.startsWith('/tmp'));
    assert.equal((await k3.containerCore.inspectContainer('scripted')).State, 'running');
    assert.deepEqual(byPath(running), byPath(want));
    assertWalkOrder(running);
    await k3.containerCore.killContainer('scripted');
    await k3.containerCore.waitContainer('scripted');
    const exited = (await k3.containerCore.containerChanges('scripted')).filter((c) => !c.Path.startsWith('/tmp'));
    assert.deepEqual(exited, running, 'exited: the same');
  } finally {
    await docker.stop();
  }
});
