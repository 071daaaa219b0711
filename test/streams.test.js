'use strict';
// Streams in and out: exportContainer and saveImage write into a Node
// Writable, loadImage reads a Readable. Real pipelines are the oracles:
// zlib and GNU tar, skopeo, an HTTP server, a consumer slower than the
// engine with the producer's memory measured, and consumers that fail.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { Writable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const zlib = require('node:zlib');

const K3Core = require('..');
const images = require('./helpers/images');
const { whichSync } = require('./helpers/registry');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const MTIME = 1700000000;
const BIG = 120 << 20;

let tmp;
let k3;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-streams-'));
  const f = (p, content, extra = {}) => ({ path: p, content, mtime: MTIME, ...extra });
  const small = images.makeImage({
    layers: [images.makeLayer([{ path: 'data', type: 'dir', mtime: MTIME }, f('data/a', 'a'.repeat(100000)), f('data/b', 'b\n', { mode: 0o600 }),
      { path: 'data/link', type: 'symlink', linkname: 'a', mtime: MTIME }])],
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
  });
  const big = images.makeImage({ layers: [images.makeLayer([f('big', Buffer.alloc(BIG, 7))], { gzip: false })] });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: small, refName: 'small:1' }, { image: big, refName: 'big:1' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  const layout = { containerImageTransport: 'oci' };
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'small:1', layout);
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'big:1', layout);
  await k3.containerCore.createContainer('small:1', { name: 'small' });
  await k3.containerCore.createContainer('big:1', { name: 'big' });
});

after(async () => {
  for (const c of await k3.containerCore.listContainers()) await k3.containerCore.removeContainer(c.Id, { force: true }).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

const out = (name) => path.join(tmp, name);

// A Writable that keeps everything it is given.
function collector() {
  const chunks = [];
  const sink = new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } });
  sink.bytes = () => Buffer.concat(chunks);
  return sink;
}

test('an export piped through zlib.createGzip() into a file lists in GNU tar as the file export does', async () => {
  await k3.containerCore.exportContainer('small', out('small.tar'));
  const gzip = zlib.createGzip();
  const written = pipeline(gzip, fs.createWriteStream(out('piped.tar.gz')));
  const result = await k3.containerCore.exportContainer('small', gzip);
  await written;
  assert.equal(result, 'small has exported successfully to -');
  const listing = execFileSync('tar', ['-tvf', out('small.tar')], { encoding: 'utf8' });
  assert.match(listing, /data\/link -> a/);
  assert.equal(execFileSync('tar', ['-tzvf', out('piped.tar.gz')], { encoding: 'utf8' }), listing);

  // compression: 'gzip' compresses in the engine instead; the tar inside is the same.
  const sink = collector();
  await k3.containerCore.exportContainer('small', sink, { compression: 'gzip' });
  assert.deepEqual(zlib.gunzipSync(sink.bytes()), fs.readFileSync(out('small.tar')));
  await assert.rejects(k3.containerCore.exportContainer('small', collector(), { compression: 'bzip2' }),
    (e) => e instanceof K3Core.errors.InvalidExportContainerParameters && /bzip2/.test(e.details.error));
});

test('an export into a Writable is the file export, byte for byte, and reports the same progress', async () => {
  const fileEvents = [];
  await k3.containerCore.exportContainer('big', out('big.tar'), { onProgress: (e) => fileEvents.push(e) });
  const streamEvents = [];
  const sink = collector();
  await k3.containerCore.exportContainer('big', sink, { onProgress: (e) => streamEvents.push(e) });
  assert.ok(sink.writableFinished);
  assert.ok(sink.bytes().equals(fs.readFileSync(out('big.tar'))));
  assert.deepEqual(streamEvents.at(-1), fileEvents.at(-1));
});

test('saveImage into a Writable: skopeo inspect reads it, and it is the file form byte for byte', { skip: need(!whichSync('skopeo') && 'skopeo is not installed') }, async () => {
  const file = await k3.imageCore.saveImage('small:1', out('small-save.tar'));
  const written = fs.createWriteStream(out('small-streamed.tar'));
  const streamed = await k3.imageCore.saveImage('small:1', written);
  assert.equal(streamed.Path, '-');
  assert.deepEqual({ ...streamed, Path: file.Path }, file);
  assert.ok(fs.readFileSync(out('small-streamed.tar')).equals(fs.readFileSync(out('small-save.tar'))));
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${out('small-streamed.tar')}`], { encoding: 'utf8' }));
  assert.equal(inspected.Layers.length, 1);
  assert.deepEqual(inspected.Env, ['PATH=/bin']);
  const config = execFileSync('skopeo', ['inspect', '--raw', '--config', `docker-archive:${out('small-streamed.tar')}`]);
  assert.equal(`sha256:${crypto.createHash('sha256').update(config).digest('hex')}`, streamed.Images[0].Id);

  const zst = collector();
  await k3.imageCore.saveImage('small:1', zst, { compression: 'zstd' });
  assert.equal(zst.bytes().readUInt32LE(0), 0xfd2fb528); // a zstd frame
});

test('loadImage reads an HTTP response, plain or gzip, and loads the image the file loads', async () => {
  await k3.imageCore.saveImage('small:1', out('for-http.tar'));
  const byFile = await new K3Core({ root: out('store-file') }).imageCore.loadImage(out('for-http.tar'));
  const server = http.createServer((req, res) => {
    const body = fs.createReadStream(out('for-http.tar'));
    if (req.url === '/gz') body.pipe(zlib.createGzip()).pipe(res);
    else body.pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const get = (p) => new Promise((resolve, reject) => http.get(`http://127.0.0.1:${server.address().port}${p}`, resolve).on('error', reject));
  try {
    for (const p of ['/plain', '/gz']) {
      const other = new K3Core({ root: out(`store-http${p.slice(1)}`) });
      const byHttp = await other.imageCore.loadImage(await get(p));
      assert.deepEqual(byHttp, byFile);
      assert.deepEqual((await other.imageCore.listImages()).map((i) => i.Id), [byFile.Loaded[0].Id]);
      assert.deepEqual(fs.readdirSync(path.join(other.root, 'tmp')), [], 'staging left behind');
    }
    // A response that is not an archive is refused as a file would be.
    const bad = new K3Core({ root: out('store-bad') });
    await assert.rejects(bad.imageCore.loadImage(fs.createReadStream(__filename)), K3Core.errors.InvalidArchive);
  } finally {
    server.close();
  }
});

// A Writable whose writes take a while, as an fs.WriteStream's do on the
// thread pool: what arrives during one write goes out in the next, not one
// write per 64 KiB the socket gives.
test('a Writable busy with a write gets what arrived meanwhile in its next write, a batch of up to 1 MiB', async () => {
  const writes = [];
  const sink = new Writable({
    writev(chunks, cb) {
      writes.push(chunks.reduce((n, c) => n + c.chunk.length, 0));
      setTimeout(cb, 1);
    },
  });
  await k3.containerCore.exportContainer('big', sink);
  const bytes = writes.reduce((a, b) => a + b, 0);
  assert.ok(bytes > BIG, `exported ${bytes} bytes`);
  const mean = bytes / writes.length;
  assert.ok(mean >= 256 << 10, `${writes.length} writes of ${(mean / 1024).toFixed(0)} KiB on average`);
  assert.ok(Math.max(...writes) <= (1 << 20) + (64 << 10), `a write of ${Math.max(...writes)} bytes`);
});

test('a slow consumer: the engine waits for it, and the producer\'s memory stays flat', async () => {
  const result = await runInChild(`
    const { Writable } = require('node:stream');
    const k3 = new K3Core({ root: ${JSON.stringify(k3.root)} });
    // The baseline follows one small export: the engine's own start-up is not the stream's.
    await k3.containerCore.exportContainer('small', new Writable({ write(_c, _e, cb) { cb(); } }));
    const base = process.memoryUsage().rss;
    let peak = base, bytes = 0;
    const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 10);
    const slow = new Writable({ highWaterMark: 16384, write(chunk, _e, cb) { bytes += chunk.length; setTimeout(cb, 2); } });
    const started = Date.now();
    await k3.containerCore.exportContainer('big', slow);
    clearInterval(timer);
    done({ growth: peak - base, bytes, ms: Date.now() - started });
  `);
  assert.ok(!result.thrown, JSON.stringify(result.thrown));
  console.log('slow consumer:', JSON.stringify(result));
  assert.ok(result.bytes > BIG, `exported ${result.bytes} bytes`);
  assert.ok(result.growth < 64 << 20, `RSS grew by ${(result.growth / 1048576).toFixed(1)} MiB while ${result.bytes} bytes went out in ${result.ms} ms`);
});

test('a failing Writable and an abort destroy the stream with the typed K3Error; a second call still works', async () => {
  let written = 0;
  const failing = new Writable({
    write(chunk, _e, cb) {
      written += chunk.length;
      cb(written > (4 << 20) ? new Error('disk quota of the upload exceeded') : null);
    },
  });
  let seen;
  failing.on('error', (e) => { seen = seen || e; });
  const err = await k3.containerCore.exportContainer('big', failing).catch((e) => e);
  assert.ok(err instanceof K3Core.errors.ExportContainerIOFailure, err && err.name);
  assert.match(err.details.error, /the stream failed: disk quota of the upload exceeded/);
  assert.equal(err.details.filePath, '-');
  assert.ok(failing.destroyed);

  const controller = new AbortController();
  const aborted = new Writable({ highWaterMark: 1024, write(_c, _e, cb) { controller.abort(); setTimeout(cb, 5); } });
  aborted.on('error', (e) => { seen = e; });
  const abortErr = await k3.imageCore.saveImage('big:1', aborted, { signal: controller.signal }).catch((e) => e);
  assert.ok(abortErr instanceof K3Core.errors.AbortError, abortErr && abortErr.name);
  assert.ok(aborted.destroyed);
  assert.equal(seen, abortErr, 'the Writable is destroyed with the call\'s error');
  assert.ok(seen instanceof K3Core.K3Error);

  const sink = collector();
  await k3.containerCore.exportContainer('big', sink);
  assert.ok(sink.bytes().equals(fs.readFileSync(out('big.tar'))));
});
