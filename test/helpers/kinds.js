'use strict';
// An image's layers holding every kind of entry an ordinary user's store
// cannot hold as it is; the user-namespace tests build their image from it.

// security.capability as setcap cap_net_raw+ep writes it (v2, effective).
const CAP_NET_RAW = String.fromCharCode(1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
const T = 1700000000;

// Every kind of entry a user's store cannot hold as it is: owners inside
// and outside the subordinate range, setuid, devices, a FIFO, trusted and
// capability xattrs, hardlinks within and across layers, whiteouts and an
// opaque directory.
function layers() {
  const many = [];
  for (const uid of [1, 2, 3, 7, 33, 100, 999, 1000, 4242, 65534, 65536, 100000, 2000000]) {
    many.push({ path: `owners/u${uid}`, content: `uid ${uid}`, uid, gid: uid + 1, mtime: T });
  }
  return [
    [
      { path: 'etc', type: 'dir', mtime: T },
      { path: 'etc/shadow', content: 'root:*:1::::::\n', mode: 0o640, uid: 0, gid: 42, mtime: T },
      { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mtime: T },
      { path: 'bin', type: 'dir', mtime: T },
      { path: 'bin/su', content: 'su', mode: 0o4755, mtime: T },
      { path: 'bin/wall', content: 'wall', mode: 0o2755, gid: 5, mtime: T },
      { path: 'bin/ping', content: 'ping', mode: 0o755, mtime: T, xattrs: { 'security.capability': CAP_NET_RAW } },
      { path: 'bin/marked', content: 'm', mtime: T, xattrs: { 'trusted.k3test': 'kept', 'user.k3test': 'also' } },
      { path: 'bin/su-again', type: 'hardlink', linkname: 'bin/su', mode: 0o4755, mtime: T },
      { path: 'tmp', type: 'dir', mode: 0o1777, mtime: T },
      { path: 'dev', type: 'dir', mtime: T },
      { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666, mtime: T },
      { path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660, gid: 6, mtime: T },
      { path: 'dev/far', type: 'char', devmajor: 4, devminor: 64, uid: 100000, gid: 100000, mode: 0o620, mtime: T },
      { path: 'run', type: 'dir', mtime: T },
      { path: 'run/fifo', type: 'fifo', mode: 0o600, uid: 33, gid: 33, mtime: T },
      { path: 'owners', type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: T },
      ...many,
      { path: 'data', type: 'dir', mtime: T },
      { path: 'data/gone', content: 'deleted in layer 2', mtime: T },
      { path: 'data/old', content: 'removed by the container', mtime: T },
      { path: 'cache', type: 'dir', mtime: T },
      { path: 'cache/a', content: 'hidden by layer 2', mtime: T },
      { path: 'cache2', type: 'dir', uid: 100000, gid: 7, mtime: T },
      { path: 'cache2/b', content: 'hidden by the container', mtime: T },
      { path: 'link', type: 'symlink', linkname: 'etc/passwd', mtime: T },
    ],
    [
      { path: 'data', type: 'dir', mtime: T },
      { path: 'data/.wh.gone', content: '' },
      { path: 'cache', type: 'dir', mtime: T },
      { path: 'cache/.wh..wh..opq', content: '' },
      { path: 'cache/fresh', content: 'fresh', uid: 100000, gid: 100000, mtime: T },
      { path: 'bin', type: 'dir', mtime: T },
      { path: 'bin/su-across', type: 'hardlink', linkname: 'bin/su', mode: 0o4755, mtime: T },
      { path: 'owners', type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: T },
      { path: 'owners/far-link', type: 'hardlink', linkname: 'owners/u100000', uid: 100000, gid: 100001, mode: 0o644, mtime: T },
    ],
  ];
}

module.exports = { T, layers };
