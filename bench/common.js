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

module.exports = { median, timed, buildRootfs, pushRootfs };
