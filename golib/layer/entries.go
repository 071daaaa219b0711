package layer

import (
	"archive/tar"
	"cmp"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/truemeta"
)

// Each maker below receives the already-resolved parent descriptor dir and
// the entry's last component base. A later entry replaces an earlier one of
// the same name; only a directory over a directory keeps what is there.
// Ownership comes before the mode because chown clears setuid and setgid,
// and before xattrs because it clears security.capability.

func (u *unpacker) file(dir int, base, rel string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size > u.opts.MaxBytes-u.stats.Bytes {
		return fmt.Errorf("%w: file contents exceed %d bytes", ErrLimit, u.opts.MaxBytes)
	}
	if err := u.clear(dir, base, rel); err != nil {
		return err
	}
	fd, err := unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	err = u.copy(f, r)
	unmapped := false
	if err == nil {
		unmapped, err = u.chown(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr)
	}
	if err == nil {
		err = unix.Fchmod(fd, fileMode(hdr))
	}
	if err == nil {
		err = u.setXattrs(hdr, true, fdAttrs(fd).set)
	}
	if err == nil {
		err = u.recordTruth(fdAttrs(fd), hdr, unmapped, 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(dir, base, hdr)
}

// copy writes the entry's contents to w through the shared buffer, filling
// it before each write.
func (u *unpacker) copy(w io.Writer, r io.Reader) error {
	for {
		if err := u.ctx.Err(); err != nil {
			return err
		}
		n, rerr := fill(r, u.buf)
		if n > 0 {
			if _, err := w.Write(u.buf[:n]); err != nil {
				return err
			}
			u.stats.Bytes += int64(n)
			u.progress(false)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading contents: %w", rerr)
		}
	}
}

// fill reads until buf is full or r fails; unlike io.ReadFull it keeps a
// clean io.EOF apart from the io.ErrUnexpectedEOF of a truncated archive.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (u *unpacker) dir(dir int, base, rel string, hdr *tar.Header) error {
	st, err := fsat.Lstat(dir, base)
	if err != nil {
		return err
	}
	opaque := false
	if st == nil || !fsat.IsDir(st) {
		if st != nil {
			// A whiteout and then a directory of that name in one layer:
			// the lower directory is gone but this one is not, which
			// overlayfs spells as an opaque directory.
			opaque = u.opts.Whiteouts.overlay() && IsWhiteoutStat(st)
			if err := u.remove(dir, base, rel, st); err != nil {
				return err
			}
		}
		if err := unix.Mkdirat(dir, base, 0o700); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if opaque {
		if err := u.opts.Whiteouts.setOpaque(fd); err != nil {
			return err
		}
	}
	return u.dirMeta(fd, rel, hdr)
}

// dirMeta applies a directory entry's metadata to the open directory fd,
// keeping its final mode and times for finishDirs.
func (u *unpacker) dirMeta(fd int, rel string, hdr *tar.Header) error {
	unmapped, err := u.chown(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr)
	if err != nil {
		return err
	}
	mode := fileMode(hdr)
	// Until the end the owner keeps full access, so that an unprivileged
	// unpack can still fill a directory the archive makes read-only.
	if err := unix.Fchmod(fd, mode|0o700); err != nil {
		return err
	}
	if err := u.setXattrs(hdr, true, fdAttrs(fd).set); err != nil {
		return err
	}
	if err := u.recordTruth(fdAttrs(fd), hdr, unmapped, 0); err != nil {
		return err
	}
	ts, err := timespecs(hdr)
	if err != nil {
		return err
	}
	u.dirs[rel] = dirMeta{mode: mode, times: ts}
	return nil
}

// finishDirs gives directories their final mode and times, deepest first,
// once nothing more will be written into them.
func (u *unpacker) finishDirs() error {
	rels := make([]string, 0, len(u.dirs))
	for rel := range u.dirs {
		rels = append(rels, rel)
	}
	slices.SortFunc(rels, func(a, b string) int { return cmp.Compare(depth(b), depth(a)) })
	for _, rel := range rels {
		if err := u.finishDir(rel, u.dirs[rel]); err != nil {
			return fmt.Errorf("layer directory %q: %w", rel, err)
		}
	}
	return nil
}

func depth(rel string) int {
	if rel == "." {
		return -1
	}
	return strings.Count(rel, "/")
}

func (u *unpacker) finishDir(rel string, m dirMeta) error {
	dir, base := u.root, "."
	if rel != "." {
		fd, err := openIn(u.root, path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil // a later entry replaced a parent
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dir, base = fd, path.Base(rel)
	}
	st, err := fsat.Lstat(dir, base)
	if err != nil || st == nil || !fsat.IsDir(st) {
		return err // nil when a later entry replaced it
	}
	if err := fsat.Chmod(dir, base, m.mode); err != nil {
		return err
	}
	return unix.UtimesNanoAt(dir, base, m.times, unix.AT_SYMLINK_NOFOLLOW)
}

// symlink keeps the target verbatim: it is data, never followed here.
func (u *unpacker) symlink(dir int, base, rel string, hdr *tar.Header) error {
	if err := u.clear(dir, base, rel); err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, dir, base); err != nil {
		return err
	}
	return u.nodeMeta(dir, base, hdr, false, true)
}

// node makes a device or a FIFO.
func (u *unpacker) node(dir int, base, rel string, hdr *tar.Header) error {
	kind := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	}
	if err := u.clear(dir, base, rel); err != nil {
		return err
	}
	if kind == unix.S_IFIFO && u.confined && u.unmappedOwner(hdr) {
		// The kernel allows no user.* attribute on a FIFO, where the
		// record of its owner would go.
		return u.emptyStandIn(dir, base, hdr)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(dir, base, kind|fileMode(hdr), int(dev)); err != nil {
		if err == unix.EPERM && u.confined {
			return u.emptyStandIn(dir, base, hdr)
		}
		if err == unix.EPERM {
			// Only a privileged process, outside a user namespace, may
			// make devices; the rest of the layer is still worth having.
			u.stats.Skipped++
			return nil
		}
		return err
	}
	return u.nodeMeta(dir, base, hdr, true, true)
}

// nodeMeta applies metadata to an entry that cannot be opened for it: a
// symlink, a device, which opening would open, or a hardlink.
func (u *unpacker) nodeMeta(dir int, base string, hdr *tar.Header, chmod, times bool) error {
	unmapped, err := u.chown(func(uid, gid int) error { return unix.Fchownat(dir, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW) }, hdr)
	if err != nil {
		return err
	}
	if chmod {
		if err := fsat.Chmod(dir, base, fileMode(hdr)); err != nil { // mknod obeyed the umask
			return err
		}
	}
	// The parent is named through its already-resolved descriptor; lsetxattr
	// does not follow the final component.
	p := procPath(dir, base)
	if err := u.setXattrs(hdr, false, pathAttrs(p).set); err != nil {
		return err
	}
	if err := u.recordTruth(pathAttrs(p), hdr, unmapped, 0); err != nil {
		return err
	}
	if !times {
		return nil
	}
	return setTimes(dir, base, hdr)
}

const paxXattr = "SCHILY.xattr."

// setXattrs applies the archive's SCHILY.xattr records with set. Attributes
// of overlayfs and of this store (see truemeta) are dropped: from a layer
// they would forge whiteouts, opacity, redirects or recorded metadata that
// only Unpack may write.
func (u *unpacker) setXattrs(hdr *tar.Header, regularOrDir bool, set func(name string, v []byte) error) error {
	records := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattr); ok && !truemeta.Internal(name) {
			records[name] = v
		}
	}
	return u.applyXattrs(records, regularOrDir, set)
}

// applyXattrs sets the attributes; a trusted.* one that a confined unpack
// may not set is kept in its stand-in.
func (u *unpacker) applyXattrs(records map[string]string, regularOrDir bool, set func(name string, v []byte) error) error {
	for name, v := range records {
		err := set(name, []byte(v))
		if standIn, trusted := truemeta.StandIn(name); err == unix.EPERM && trusted && u.confined {
			err = set(standIn, []byte(v))
		}
		switch {
		case err == nil, err == unix.ENOTSUP:
		// trusted.* and security.* need privilege; user.* is refused on
		// symlinks and devices by the kernel.
		case err == unix.EPERM && (!u.privileged || !regularOrDir && strings.HasPrefix(name, "user.")):
		default:
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
}

// fileMode is the permission part of a header's mode, with setuid, setgid
// and sticky, which tar encodes as Unix does.
func fileMode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func timespecs(hdr *tar.Header) ([]unix.Timespec, error) {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	a, err := unix.TimeToTimespec(atime)
	if err != nil {
		return nil, err
	}
	m, err := unix.TimeToTimespec(hdr.ModTime)
	if err != nil {
		return nil, err
	}
	return []unix.Timespec{a, m}, nil
}

func setTimes(dir int, base string, hdr *tar.Header) error {
	ts, err := timespecs(hdr)
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(dir, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}
