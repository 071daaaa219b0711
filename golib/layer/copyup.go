package layer

import (
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// copyUp copies the file target, whose parent directory is srcDir and whose
// status is src, into this layer at the same path: contents, owner, mode,
// times and xattrs. A name target already has in this layer (a link to a
// lower inode) is replaced. It returns this layer's descriptor for the
// copy's directory, to be closed, and the copy's status.
func (u *unpacker) copyUp(target string, srcDir int, srcBase string, src *unix.Stat_t) (int, *unix.Stat_t, error) {
	dir, err := u.copyUpDirs(path.Dir(target))
	if err != nil {
		return -1, nil, err
	}
	base := path.Base(target)
	err = u.copyFile(srcDir, srcBase, src, dir, base)
	if err == nil {
		err = u.copyMeta(srcDir, srcBase, src, dir, base)
	}
	var st *unix.Stat_t
	if err == nil {
		st, err = fsat.Lstat(dir, base)
	}
	if err != nil {
		unix.Close(dir)
		return -1, nil, err
	}
	return dir, st, nil
}

// copyFile makes base in dir a copy of srcBase in srcDir, whose status is
// src, with a private mode until copyMeta sets the real one.
func (u *unpacker) copyFile(srcDir int, srcBase string, src *unix.Stat_t, dir int, base string) error {
	kind := src.Mode & unix.S_IFMT
	switch kind {
	case unix.S_IFREG:
		in, err := unix.Openat(srcDir, srcBase, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		from := os.NewFile(uintptr(in), srcBase)
		defer from.Close()
		// The source is open: this layer's name for it may go.
		if err := u.clearAt(dir, base); err != nil {
			return err
		}
		out, err := unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		to := os.NewFile(uintptr(out), base)
		n, err := io.Copy(to, from) // copy_file_range: shared extents where the filesystem can
		u.stats.Bytes += n
		if cerr := to.Close(); err == nil {
			err = cerr
		}
		return err
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(srcDir, srcBase, buf)
		if err != nil {
			return err
		}
		if err := u.clearAt(dir, base); err != nil {
			return err
		}
		return unix.Symlinkat(string(buf[:n]), dir, base)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := u.clearAt(dir, base); err != nil {
			return err
		}
		return unix.Mknodat(dir, base, kind|0o600, int(src.Rdev))
	}
	return fmt.Errorf("cannot copy a file of type %o", kind)
}

// clearAt removes the non-directory base of dir, if there is one.
func (u *unpacker) clearAt(dir int, base string) error {
	err := unix.Unlinkat(dir, base, 0)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// copyMeta gives base in dir the owner, mode, xattrs and times of srcBase in
// srcDir, whose status is src.
func (u *unpacker) copyMeta(srcDir int, srcBase string, src *unix.Stat_t, dir int, base string) error {
	if err := u.chownErr(unix.Fchownat(dir, base, int(src.Uid), int(src.Gid), unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return err
	}
	symlink := src.Mode&unix.S_IFMT == unix.S_IFLNK
	if !symlink {
		if err := fsat.Chmod(dir, base, src.Mode&0o7777); err != nil {
			return err
		}
	}
	if err := u.copyXattrs(srcDir, srcBase, dir, base, src.Mode&unix.S_IFMT == unix.S_IFREG); err != nil {
		return err
	}
	return unix.UtimesNanoAt(dir, base, []unix.Timespec{src.Atim, src.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies the xattrs of srcBase in srcDir to base in dir, by the
// rules of an archive's xattrs: overlayfs's own are never copied.
func (u *unpacker) copyXattrs(srcDir int, srcBase string, dir int, base string, regularOrDir bool) error {
	from := procPath(srcDir, srcBase)
	size, err := unix.Llistxattr(from, nil)
	if err == unix.ENOTSUP || err == nil && size == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	list := make([]byte, size)
	if size, err = unix.Llistxattr(from, list); err != nil {
		return err
	}
	records := map[string]string{}
	for _, name := range splitNames(list[:size]) {
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue // overlayfs's own; the store's records go up with the file
		}
		n, err := unix.Lgetxattr(from, name, nil)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return err
		}
		value := make([]byte, n)
		if n, err = unix.Lgetxattr(from, name, value); err != nil {
			return err
		}
		records[name] = string(value[:n])
	}
	return u.applyXattrs(records, regularOrDir, pathAttrs(procPath(dir, base)).set)
}

// procPath names base in the open directory dir without resolving the
// path again; the l*xattr calls do not follow its last component.
func procPath(dir int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + base
}

// splitNames splits a listxattr result, names each ended by a NUL.
func splitNames(list []byte) []string {
	var names []string
	start := 0
	for i, b := range list {
		if b == 0 {
			if i > start {
				names = append(names, string(list[start:i]))
			}
			start = i + 1
		}
	}
	return names
}

// copyUpDirs opens directory rel of this layer, first making it and any
// missing ancestors as the nearest lower layer's directories they stand
// over, so the merged tree shows those unchanged.
func (u *unpacker) copyUpDirs(rel string) (int, error) {
	return u.openMaking(rel, u.copiedDir)
}

func (u *unpacker) copiedDir(up int, base, rel string) error {
	srcDir, srcBase, src, err := u.lowerDir(rel)
	if err != nil {
		return err
	}
	defer unix.Close(srcDir)
	if err := unix.Mkdirat(up, base, 0o700); err != nil {
		return err
	}
	if err := u.chownErr(unix.Fchownat(up, base, int(src.Uid), int(src.Gid), unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return err
	}
	if err := u.copyXattrs(srcDir, srcBase, up, base, true); err != nil {
		return err
	}
	// Its final mode and times come with the layer's other directories.
	u.dirs[rel] = dirMeta{mode: src.Mode & 0o7777, times: []unix.Timespec{src.Atim, src.Mtim}}
	return nil
}

// lowerDir finds directory rel in the nearest lower layer that shows it,
// returning its parent directory, to be closed, its last component and
// status.
func (u *unpacker) lowerDir(rel string) (int, string, *unix.Stat_t, error) {
	dir, base, st, _, err := visible(u.lower, rel)
	if err == nil && !fsat.IsDir(st) {
		unix.Close(dir)
		err = fmt.Errorf("%q is not a directory in the lower layers", rel)
	}
	if err != nil {
		return -1, "", nil, err
	}
	return dir, base, st, nil
}
