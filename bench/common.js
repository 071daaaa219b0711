'use strict';
// What the benchmarks share: timing, medians, and the Debian-like image
// they build from this machine's own files and push to a local registry.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const images = require('../test/helpers/images');

const SOURCES = ['/usr/share', '/usr/include', '/usr/bin', '/usr/lib'];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Each timed step starts with no dirty pages left over from the one before.
async function timed(fn) {
  execFileSync('sync');
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

// Copies real files from the host into three layer directories (the split a
// Dockerfile's base, packages and app layers give), taking every tenth file
// so the tree has Debian's mix of many small files and some large ones
// (about 11,000 entries for 380 MB, like a debootstrap of Debian).
function buildRootfs(dir, targetBytes) {
  const layers = [0, 1, 2].map((i) => path.join(dir, `layer${i}`));
  layers.forEach((l) => fs.mkdirSync(l, { recursive: true }));
  let bytes = 0;
  let files = 0;
  let seen = 0;
  const walk = (src) => {
    if (bytes >= targetBytes) return;
    let list;
    try {
      list = fs.readdirSync(src, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const d of list) {
      if (bytes >= targetBytes) return;
      const p = path.join(src, d.name);
      if (d.isDirectory()) {
        walk(p);
        continue;
      }
      if (seen++ % 10 !== 0 || !(d.isFile() || d.isSymbolicLink())) continue;
      const dest = path.join(layers[Math.min(2, Math.floor((bytes / targetBytes) * 3))], p);
      try {
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        if (d.isSymbolicLink()) {
          fs.symlinkSync(fs.readlinkSync(p), dest);
        } else {
          fs.copyFileSync(p, dest);
          bytes += fs.statSync(p).size;
        }
        files++;
      } catch {
        // unreadable host files are simply left out
      }
    }
  };
  SOURCES.forEach(walk);
  const entries = Number(execFileSync('sh', ['-c', `find ${layers.join(' ')} -mindepth 1 | wc -l`], { encoding: 'utf8' }));
  return { layers, bytes, files, entries };
}

// Tars and gzips each layer directory as a build would, and pushes the
// image (Docker schema 2, as Docker Hub's Debian) to the registry.
async function pushRootfs(reg, repo, tag, layers, config = { Cmd: ['/bin/bash'] }) {
  const built = [];
  for (const l of layers) {
    const tarFile = `${l}.tar`;
    execFileSync('tar', ['--numeric-owner', '--sort=name', '-cf', tarFile, '-C', l, '.']);
    execFileSync('gzip', ['-6', '-n', '-k', '-f', tarFile]);
    const tar = fs.readFileSync(tarFile);
    const blob = fs.readFileSync(`${tarFile}.gz`);
    built.push({ tar, blob, digest: images.sha256(blob), diffId: images.sha256(tar), size: blob.length, gzip: true });
    fs.rmSync(tarFile);
    fs.rmSync(`${tarFile}.gz`);
  }
  const img = images.makeImage({ layers: built, mediaType: 'docker', config });
  await images.pushImage(reg, repo, tag, img);
  return img;
}

// The host tree copied into the container: SMALL_FILES small files from
// /usr/share (every third one of the walk, keeping their paths), then the
// largest libraries of /usr/lib under 32 MB until the tree is targetBytes.
// The container changes the commit and diff benches use.
const SMALL_FILES = 6000;
const SMALL_MAX = 64 * 1024;
function buildChanges(dir, targetBytes) {
  const share = path.join(dir, 'share');
  const lib = path.join(dir, 'lib');
  fs.mkdirSync(lib, { recursive: true });
  let bytes = 0;
  let small = 0;
  let seen = 0;
  const walk = (src) => {
    let list;
    try {
      list = fs.readdirSync(src, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const d of list) {
      if (small >= SMALL_FILES) return;
      const p = path.join(src, d.name);
      if (d.isDirectory()) {
        walk(p);
        continue;
      }
      if (!d.isFile() || seen++ % 3 !== 0) continue;
      try {
        const size = fs.statSync(p).size;
        if (size > SMALL_MAX) continue;
        const dest = path.join(share, path.relative('/usr/share', p));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(p, dest);
        bytes += size;
        small++;
      } catch {
        // unreadable host files are simply left out
      }
    }
  };
  walk('/usr/share');
  const smallBytes = bytes;
  const libDir = '/usr/lib/x86_64-linux-gnu';
  const candidates = fs.readdirSync(libDir)
    .map((name) => ({ name, st: fs.lstatSync(path.join(libDir, name)) }))
    .filter((f) => f.st.isFile() && f.st.size >= 2e6 && f.st.size <= 32e6)
    .sort((a, b) => b.st.size - a.st.size);
  let large = 0;
  for (const f of candidates) {
    if (bytes >= targetBytes) break;
    if (bytes + f.st.size > targetBytes * 1.05) continue;
    fs.copyFileSync(path.join(libDir, f.name), path.join(lib, f.name));
    bytes += f.st.size;
    large++;
  }
  return { bytes, small, smallBytes, large, largeBytes: bytes - smallBytes };
}

module.exports = { median, timed, buildRootfs, pushRootfs, buildChanges };
