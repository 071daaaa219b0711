'use strict';
// Reads an exported tar into a tree (path -> type, mode, owners, xattrs,
// mtime, content digest, link target, device numbers, hardlink group) and
// lists the differences between two such trees: how the export tests
// compare k3-core's export with podman's.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// A small tar reader: 512-byte headers, PAX ('x', 'g') records, GNU long
// names ('L', 'K'), base-256 numbers.

function parsePax(body) {
  const out = {};
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(body.toString('latin1', i, space));
    if (!len) break;
    const record = body.subarray(space + 1, i + len - 1); // drop the "\n"
    const eq = record.indexOf(0x3d);
    out[record.toString('utf8', 0, eq)] = record.toString('latin1', eq + 1);
    i += len;
  }
  return out;
}

function readTar(buf) {
  const entries = [];
  let off = 0;
  let pax = {};
  let longName = null;
  let longLink = null;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    const str = (o, n) => {
      const s = h.subarray(o, o + n);
      const z = s.indexOf(0);
      return s.subarray(0, z < 0 ? n : z).toString('utf8');
    };
    const num = (o, n) => {
      if (h[o] & 0x80) {
        let v = h[o] & 0x3f;
        for (let i = 1; i < n; i++) v = v * 256 + h[o + i];
        return v;
      }
      return parseInt(str(o, n).trim() || '0', 8);
    };
    assert.equal(num(148, 8), sum, `tar header checksum at offset ${off}`);
    const flag = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
    const size = pax.size !== undefined && !'xgLK'.includes(flag) ? Number(pax.size) : num(124, 12);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (flag === 'x') { Object.assign(pax, parsePax(body)); continue; }
    if (flag === 'g') continue;
    if (flag === 'L') { longName = body.toString('utf8').replace(/\0+$/, ''); continue; }
    if (flag === 'K') { longLink = body.toString('utf8').replace(/\0+$/, ''); continue; }
    let name = str(0, 100);
    if (h.toString('latin1', 257, 263) === 'ustar\0' && str(345, 155)) name = `${str(345, 155)}/${name}`;
    if (longName !== null) name = longName;
    if (pax.path !== undefined) name = pax.path;
    let linkname = str(157, 100);
    if (longLink !== null) linkname = longLink;
    if (pax.linkpath !== undefined) linkname = pax.linkpath;
    const xattrs = {};
    for (const [k, v] of Object.entries(pax)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
    entries.push({
      name, flag, linkname, size, xattrs,
      mode: num(100, 8),
      uid: pax.uid !== undefined ? Number(pax.uid) : num(108, 8),
      gid: pax.gid !== undefined ? Number(pax.gid) : num(116, 8),
      mtime: Math.floor(pax.mtime !== undefined ? Number(pax.mtime) : num(136, 12)),
      devmajor: num(329, 8),
      devminor: num(337, 8),
      sha256: '0x7'.includes(flag) ? sha(body) : undefined,
    });
    pax = {};
    longName = null;
    longLink = null;
  }
  return entries;
}

const TYPES = { 0: 'file', 7: 'file', 1: 'hardlink', 2: 'symlink', 3: 'char', 4: 'block', 5: 'dir', 6: 'fifo' };
const clean = (p) => p.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');

// path -> what the file is, independent of which name of a hardlinked inode
// a writer happened to store first: every name of such an inode reads as a
// file with the inode's content and the sorted list of its names.
function tree(file) {
  const entries = readTar(fs.readFileSync(file));
  const byName = new Map();
  const groups = new Map(); // first name -> [names]
  for (const e of entries) {
    const name = clean(e.name);
    if (name === '' || name === '.') continue;
    assert.ok(!byName.has(name), `${file}: ${name} appears twice`);
    const type = TYPES[e.flag];
    assert.ok(type, `${file}: ${name} has tar type ${e.flag}`);
    const t = { type, mode: (e.mode & 0o7777).toString(8), uid: e.uid, gid: e.gid, xattrs: e.xattrs };
    if (type !== 'dir') t.mtime = e.mtime; // podman stamps implicit dirs with the unpack time
    if (type === 'file') Object.assign(t, { size: e.size, sha256: e.sha256 });
    if (type === 'symlink') t.linkname = e.linkname;
    if (type === 'char' || type === 'block') Object.assign(t, { devmajor: e.devmajor, devminor: e.devminor });
    if (type === 'hardlink') t.target = clean(e.linkname);
    byName.set(name, t);
  }
  for (const [name, t] of byName) {
    if (t.type !== 'hardlink') continue;
    let first = t.target;
    while (byName.get(first) && byName.get(first).type === 'hardlink') first = byName.get(first).target;
    const target = byName.get(first);
    assert.ok(target && target.type === 'file', `${file}: hardlink ${name} -> ${t.target} has no file to link to`);
    if (!groups.has(first)) groups.set(first, [first]);
    groups.get(first).push(name);
    Object.assign(t, { type: 'file', size: target.size, sha256: target.sha256, xattrs: target.xattrs });
    delete t.target;
  }
  for (const names of groups.values()) {
    const sorted = [...names].sort();
    for (const n of names) byName.get(n).links = sorted;
  }
  return byName;
}

// Differences between two trees, as readable lines.
function differences(oracle, ours) {
  const out = [];
  for (const name of oracle.keys()) if (!ours.has(name)) out.push(`missing from k3: ${name} ${JSON.stringify(oracle.get(name))}`);
  for (const name of ours.keys()) if (!oracle.has(name)) out.push(`only in k3: ${name} ${JSON.stringify(ours.get(name))}`);
  for (const [name, want] of oracle) {
    const got = ours.get(name);
    if (!got) continue;
    for (const key of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (JSON.stringify(want[key]) !== JSON.stringify(got[key])) {
        out.push(`${name}: ${key} podman=${JSON.stringify(want[key])} k3=${JSON.stringify(got[key])}`);
      }
    }
  }
  return out;
}

module.exports = { sha, readTar, tree, differences };
