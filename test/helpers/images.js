'use strict';
// Builds real container images in memory (tar layers, config, manifests,
// indexes) and pushes them to a registry with the plain Registry HTTP API v2,
// or writes them as OCI layouts / OCI archives / `docker save` archives.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const DEFAULT_MTIME = 1700000000;
const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const MEDIA = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    layerTar: 'application/vnd.oci.image.layer.v1.tar',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    layerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  },
};

function sha256(buf) {
  return 'sha256:' + crypto.createHash('sha256').update(buf).digest('hex');
}

function hexOf(digest) {
  return digest.slice(digest.indexOf(':') + 1);
}

function mediaSet(kind) {
  const set = MEDIA[kind];
  if (!set) throw new Error(`mediaType must be 'oci' or 'docker', got ${JSON.stringify(kind)}`);
  return set;
}

// ---------------------------------------------------------------------------
// POSIX ustar writer

const BLOCK = 512;
const TYPE_FLAGS = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x' };
const DEFAULT_MODES = { file: 0o644, hardlink: 0o644, symlink: 0o777, dir: 0o755, char: 0o666, block: 0o660, fifo: 0o644, pax: 0o644 };

// Writes `value` into a fixed-width header field, failing loudly rather than
// silently truncating (a truncated name would make a confusing fixture).
function putString(header, offset, width, value, what) {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > width) {
    throw new Error(`tar: ${what} longer than ${width} bytes: ${value}`);
  }
  bytes.copy(header, offset);
}

// Numeric fields are zero-padded octal followed by a NUL.
function putOctal(header, offset, width, value) {
  const text = Math.floor(value).toString(8).padStart(width - 1, '0');
  if (text.length > width - 1) throw new Error(`tar: value ${value} does not fit in ${width} bytes`);
  header.write(text + '\0', offset, 'ascii');
}

function tarHeader(entry, size) {
  const type = entry.type || 'file';
  const flag = TYPE_FLAGS[type];
  if (!flag) throw new Error(`tar: unknown entry type ${type} for ${entry.path}`);
  let name = entry.path;
  if (type === 'dir' && !name.endsWith('/')) name += '/';
  if (Buffer.byteLength(name) > 100 && entry.longName) name = name.slice(0, 99); // the PAX path record carries it

  const header = Buffer.alloc(BLOCK);
  putString(header, 0, 100, name, 'name');
  putOctal(header, 100, 8, entry.mode ?? DEFAULT_MODES[type]);
  putOctal(header, 108, 8, entry.uid ?? 0);
  putOctal(header, 116, 8, entry.gid ?? 0);
  putOctal(header, 124, 12, size);
  putOctal(header, 136, 12, entry.mtime ?? DEFAULT_MTIME);
  header.fill(' ', 148, 156); // checksum is computed with this field as spaces
  header.write(flag, 156, 'ascii');
  if (entry.linkname !== undefined) putString(header, 157, 100, entry.linkname, 'linkname');
  if (type === 'char' || type === 'block') {
    putOctal(header, 329, 8, entry.devmajor ?? 0);
    putOctal(header, 337, 8, entry.devminor ?? 0);
  }
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  putString(header, 265, 32, entry.uname ?? 'root', 'uname');
  putString(header, 297, 32, entry.gname ?? 'root', 'gname');

  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return header;
}

// A PAX extended header carries what ustar cannot: long names and xattrs.
// Each record is "<length> <key>=<value>\n", the length counting itself.
function paxRecords(record) {
  let out = '';
  for (const [key, value] of Object.entries(record)) {
    const body = ` ${key}=${value}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len += 1;
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

function paxFor(entry) {
  const record = {};
  const name = entry.type === 'dir' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
  if (Buffer.byteLength(name) > 100) record.path = name;
  for (const [k, v] of Object.entries(entry.xattrs || {})) record[`SCHILY.xattr.${k}`] = v;
  return Object.keys(record).length ? paxRecords(record) : null;
}

// entries: [{ path, type: 'file'|'dir'|'symlink'|'hardlink'|'char'|'block'|'fifo',
// content?, mode?, linkname?, mtime?, uid?, gid?, devmajor?, devminor?,
// xattrs?: {name: value} }] -> Buffer holding the whole tar. Names over 100
// bytes and xattrs go in PAX extended headers.
function makeTar(entries) {
  const parts = [];
  for (const original of entries) {
    const pax = paxFor(original);
    const entry = pax ? { ...original, longName: true } : original;
    if (pax) {
      parts.push(tarHeader({ path: 'PaxHeaders/' + path.basename(original.path).slice(0, 80), type: 'pax' }, pax.length), pax);
      const padPax = (BLOCK - (pax.length % BLOCK)) % BLOCK;
      if (padPax) parts.push(Buffer.alloc(padPax));
    }
    const type = entry.type || 'file';
    if ((type === 'symlink' || type === 'hardlink') && entry.linkname === undefined) {
      throw new Error(`tar: ${type} ${entry.path} needs a linkname`);
    }
    const body = type === 'file' ? toBuffer(entry.content ?? '') : Buffer.alloc(0);
    parts.push(tarHeader(entry, body.length), body);
    const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2)); // end-of-archive marker
  return Buffer.concat(parts);
}

function toBuffer(content) {
  return Buffer.isBuffer(content) ? content : Buffer.from(String(content), 'utf8');
}

// ---------------------------------------------------------------------------
// Images

function makeLayer(files, { gzip = true } = {}) {
  const tar = makeTar(files);
  const blob = gzip ? zlib.gzipSync(tar, { level: 6 }) : tar;
  return { tar, blob, digest: sha256(blob), diffId: sha256(tar), size: blob.length, gzip };
}

// A layer spec may be a file list or something makeLayer already returned
// (useful to share a layer between images or use an uncompressed one).
function asLayer(spec) {
  if (Array.isArray(spec)) return makeLayer(spec);
  if (spec && Buffer.isBuffer(spec.blob)) return spec;
  throw new Error('layers must be file lists or makeLayer() results');
}

function makeImage({
  layers = [[{ path: 'hello.txt', content: 'hi' }]],
  config = {},
  os = 'linux',
  architecture = 'amd64',
  variant,
  created = '2024-01-02T03:04:05Z',
  mediaType = 'oci',
  author,
  history,
  layerAnnotations = [],
  annotations,
} = {}) {
  const media = mediaSet(mediaType);
  const builtLayers = layers.map(asLayer);

  const configObject = { architecture, os };
  if (variant) configObject.variant = variant;
  configObject.created = created;
  if (author) configObject.author = author;
  configObject.config = { Env: [DEFAULT_PATH_ENV], Cmd: ['/bin/sh'], Labels: {}, ...config };
  configObject.rootfs = { type: 'layers', diff_ids: builtLayers.map((l) => l.diffId) };
  configObject.history = history ??
    builtLayers.map((_, i) => ({ created, created_by: `k3-core test layer ${i}` }));

  const configBytes = Buffer.from(JSON.stringify(configObject));
  const configDigest = sha256(configBytes);

  const manifest = {
    schemaVersion: 2,
    mediaType: media.manifest,
    config: { mediaType: media.config, digest: configDigest, size: configBytes.length },
    layers: builtLayers.map((layer, i) => {
      const descriptor = {
        mediaType: layer.gzip === false ? media.layerTar : media.layerGzip,
        digest: layer.digest,
        size: layer.size,
      };
      if (layerAnnotations[i]) descriptor.annotations = layerAnnotations[i];
      return descriptor;
    }),
  };
  if (annotations) manifest.annotations = annotations;

  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    manifest,
    manifestBytes,
    manifestDigest: sha256(manifestBytes),
    mediaType: media.manifest,
    config: configObject,
    configBytes,
    configDigest,
    layers: builtLayers,
  };
}

function platformOf(image) {
  const platform = { os: image.config.os, architecture: image.config.architecture };
  if (image.config.variant) platform.variant = image.config.variant;
  return platform;
}

function makeIndex(images, { mediaType = 'oci', annotations } = {}) {
  const media = mediaSet(mediaType);
  const index = {
    schemaVersion: 2,
    mediaType: media.index,
    manifests: images.map((image) => ({
      mediaType: image.mediaType,
      digest: image.manifestDigest,
      size: image.manifestBytes.length,
      platform: platformOf(image),
    })),
  };
  if (annotations) index.annotations = annotations;
  const indexBytes = Buffer.from(JSON.stringify(index));
  return { index, indexBytes, indexDigest: sha256(indexBytes), mediaType: media.index };
}

// ---------------------------------------------------------------------------
// Registry HTTP API v2

// `registry` is what startRegistry() returned, or a bare 'host:port' string.
function registryUrl(registry) {
  return typeof registry === 'string' ? `http://${registry}` : registry.url;
}

function authHeaders(registry) {
  const auth = typeof registry === 'object' && registry.auth;
  if (!auth) return {};
  const token = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
  return { Authorization: `Basic ${token}` };
}

async function request(registry, method, urlOrPath, { headers = {}, body, expect }) {
  const url = new URL(urlOrPath, registryUrl(registry));
  const res = await fetch(url, {
    method,
    headers: { ...authHeaders(registry), ...headers },
    body,
    redirect: 'manual',
  });
  const text = method === 'HEAD' ? '' : await res.text();
  if (!expect.includes(res.status)) {
    throw new Error(`${method} ${url.pathname}${url.search} -> ${res.status} ` +
      `(expected ${expect.join(' or ')}): ${text.trim()}`);
  }
  return { status: res.status, headers: res.headers, text };
}

async function blobExists(registry, repo, digest) {
  const res = await request(registry, 'HEAD', `/v2/${repo}/blobs/${digest}`, { expect: [200, 404] });
  return res.status === 200;
}

// Monolithic upload: POST to open a session, then one PUT with the body.
async function uploadBlob(registry, repo, buffer, digest) {
  const started = await request(registry, 'POST', `/v2/${repo}/blobs/uploads/`, { expect: [202] });
  const location = started.headers.get('location');
  if (!location) throw new Error(`POST /v2/${repo}/blobs/uploads/ gave no Location header`);
  const target = new URL(location, registryUrl(registry));
  target.searchParams.set('digest', digest);
  await request(registry, 'PUT', target.href, {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: buffer,
    expect: [201],
  });
}

// Uploads `buffer` unless the repository already has it; returns its digest.
async function putBlob(registry, repo, buffer) {
  const digest = sha256(buffer);
  if (!(await blobExists(registry, repo, digest))) await uploadBlob(registry, repo, buffer, digest);
  return digest;
}

// PUTs arbitrary manifest bytes; returns the digest the registry computed.
async function putRawManifest(registry, repo, ref, bytes, contentType) {
  const res = await request(registry, 'PUT', `/v2/${repo}/manifests/${ref}`, {
    headers: { 'Content-Type': contentType },
    body: toBuffer(bytes),
    expect: [201],
  });
  return res.headers.get('docker-content-digest');
}

// Pushes manifest bytes and checks the registry agrees on the digest, which
// catches fixtures whose bytes were changed after the digest was computed.
async function putManifest(registry, repo, ref, bytes, contentType, digest) {
  const got = await putRawManifest(registry, repo, ref, bytes, contentType);
  if (got && got !== digest) {
    throw new Error(`registry stored ${repo}:${ref} as ${got}, expected ${digest}`);
  }
}

// `tag` may be a tag or a digest ('sha256:...') to push by digest only.
async function pushImage(registry, repo, tag, image) {
  await putBlob(registry, repo, image.configBytes);
  for (const layer of image.layers) await putBlob(registry, repo, layer.blob);
  await putManifest(registry, repo, tag, image.manifestBytes, image.mediaType, image.manifestDigest);
  return image;
}

async function pushIndex(registry, repo, tag, indexResult, images) {
  for (const image of images) await pushImage(registry, repo, image.manifestDigest, image);
  await putManifest(registry, repo, tag, indexResult.indexBytes, indexResult.mediaType,
    indexResult.indexDigest);
  return indexResult;
}

// ---------------------------------------------------------------------------
// On-disk formats

// Entries are { image, refName? } or { index, images, refName? }; a bare
// makeImage()/makeIndex() result with refName/images mixed in works too.
function normaliseEntry(entry) {
  if (entry.image) return { kind: 'image', image: entry.image, refName: entry.refName };
  if (entry.index) {
    return { kind: 'index', index: entry.index, images: entry.images || [], refName: entry.refName };
  }
  if (entry.manifestDigest) return { kind: 'image', image: entry, refName: entry.refName };
  if (entry.indexDigest) {
    return { kind: 'index', index: entry, images: entry.images || [], refName: entry.refName };
  }
  throw new Error('OCI layout entries need an image or an index');
}

function imageBlobs(image) {
  return [
    image.configBytes,
    ...image.layers.map((layer) => layer.blob),
    image.manifestBytes,
  ];
}

// Every file of an OCI image layout, as [{ path, content }] (directories
// have no content). Blobs shared between entries appear once.
// Note: skopeo 1.9.3 ignores index.json entries whose mediaType is not an
// OCI manifest/index, so docker-media-type images in a layout are invisible
// to it ("no descriptor found for reference").
function ociLayoutFiles(entries) {
  const blobs = new Map();
  const addBlob = (buffer) => blobs.set(hexOf(sha256(buffer)), buffer);
  const descriptors = [];

  for (const raw of entries) {
    const entry = normaliseEntry(raw);
    let descriptor;
    if (entry.kind === 'image') {
      imageBlobs(entry.image).forEach(addBlob);
      const { image } = entry;
      descriptor = { mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifestBytes.length };
    } else {
      for (const image of entry.images) imageBlobs(image).forEach(addBlob);
      addBlob(entry.index.indexBytes);
      const { index } = entry;
      descriptor = { mediaType: index.mediaType, digest: index.indexDigest, size: index.indexBytes.length };
    }
    if (entry.refName) descriptor.annotations = { 'org.opencontainers.image.ref.name': entry.refName };
    descriptors.push(descriptor);
  }

  const indexJson = { schemaVersion: 2, mediaType: MEDIA.oci.index, manifests: descriptors };
  const files = [
    { path: 'oci-layout', content: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { path: 'index.json', content: Buffer.from(JSON.stringify(indexJson)) },
    { path: 'blobs', dir: true },
    { path: 'blobs/sha256', dir: true },
  ];
  for (const [hex, content] of blobs) files.push({ path: `blobs/sha256/${hex}`, content });
  return files;
}

function writeOciLayout(dir, entries) {
  fs.mkdirSync(dir, { recursive: true });
  for (const file of ociLayoutFiles(entries)) {
    const target = path.join(dir, file.path);
    if (file.dir) fs.mkdirSync(target, { recursive: true });
    else fs.writeFileSync(target, file.content);
  }
  return dir;
}

function toTarEntries(files) {
  return files.map((file) => (file.dir
    ? { path: file.path, type: 'dir' }
    : { path: file.path, type: 'file', content: file.content }));
}

function writeOciArchive(tarPath, entries) {
  fs.writeFileSync(tarPath, makeTar(toTarEntries(ociLayoutFiles(entries))));
  return tarPath;
}

// `docker save` layout. Layer directories are named after the diff ID
// (sha256 of the uncompressed layer.tar), as recent Docker versions do.
function writeDockerArchive(tarPath, entries) {
  const files = new Map(); // path -> file, so shared layers are written once
  const manifest = [];
  for (const { image, repoTags = [], parent } of entries) {
    const configName = `${hexOf(image.configDigest)}.json`;
    files.set(configName, { path: configName, content: image.configBytes });
    const layerNames = image.layers.map((layer) => {
      const dir = hexOf(layer.diffId);
      files.set(dir, { path: dir, dir: true });
      files.set(`${dir}/layer.tar`, { path: `${dir}/layer.tar`, content: layer.tar });
      return `${dir}/layer.tar`;
    });
    manifest.push({ Config: configName, RepoTags: repoTags, Layers: layerNames, ...(parent ? { Parent: parent } : {}) });
  }
  files.set('manifest.json', { path: 'manifest.json', content: Buffer.from(JSON.stringify(manifest)) });
  fs.writeFileSync(tarPath, makeTar(toTarEntries([...files.values()])));
  return tarPath;
}

// The image as an interrupted copy leaves it in an archive: each layer's
// member cut in half, its plain tar or (compressed: true) its gzipped blob,
// under the same name.
function truncateLayers(image, { compressed = false } = {}) {
  const cut = (buf) => buf.subarray(0, Math.floor(buf.length / 2));
  return { ...image, layers: image.layers.map((l) => ({ ...l, tar: cut(compressed ? l.blob : l.tar) })) };
}

module.exports = {
  MEDIA,
  sha256,
  makeTar,
  makeLayer,
  makeImage,
  makeIndex,
  pushImage,
  pushIndex,
  putRawManifest,
  putBlob,
  blobExists,
  writeOciLayout,
  writeOciArchive,
  writeDockerArchive,
  truncateLayers,
};
