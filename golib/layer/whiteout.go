package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// WhiteoutFormat is how deletions are recorded in an unpacked layer
// directory.
type WhiteoutFormat int

const (
	// MarkerWhiteouts keeps the OCI markers as empty regular files:
	// ".wh.<name>" deletes <name>, ".wh..wh..opq" makes its directory
	// opaque. Works unprivileged.
	MarkerWhiteouts WhiteoutFormat = iota
	// OverlayWhiteouts writes what overlayfs reads: a 0/0 character device
	// for a deleted name and the xattr trusted.overlay.opaque="y" on an
	// opaque directory. Needs root (CAP_MKNOD, trusted xattrs); since Linux
	// 5.8 the whiteout device alone does not, but the opaque xattr does.
	OverlayWhiteouts
	// UserOverlayWhiteouts is what overlayfs mounted in a user namespace
	// with the userxattr option reads: the same 0/0 device (which the
	// namespace's root may make since Linux 5.8) and user.overlay.opaque.
	UserOverlayWhiteouts
)

const (
	whiteoutPrefix = ".wh."
	// metaPrefix starts names AUFS keeps for itself, the opaque marker
	// among them.
	metaPrefix   = ".wh..wh."
	opaqueMarker = ".wh..wh..opq"
	opaqueXattr  = "trusted.overlay.opaque"
	// userOpaqueXattr is opaqueXattr as overlayfs reads it with userxattr.
	userOpaqueXattr = "user.overlay.opaque"
)

// NativeWhiteouts returns OverlayWhiteouts when running as root,
// UserOverlayWhiteouts as root of a user namespace, else MarkerWhiteouts.
func NativeWhiteouts() WhiteoutFormat {
	switch {
	case os.Geteuid() != 0:
		return MarkerWhiteouts
	case Confined():
		return UserOverlayWhiteouts
	}
	return OverlayWhiteouts
}

// overlay reports a format overlayfs reads natively.
func (f WhiteoutFormat) overlay() bool { return f == OverlayWhiteouts || f == UserOverlayWhiteouts }

// Confined reports whether this process is in a user namespace that does
// not map every ID: there it can neither own files by unmapped IDs, nor
// make devices, nor set trusted.* attributes, and records them instead
// (see package truemeta).
func Confined() bool {
	confinedOnce.Do(func() {
		data, err := os.ReadFile("/proc/self/uid_map")
		confined = err == nil && strings.Join(strings.Fields(string(data)), " ") != "0 0 4294967295"
	})
	return confined
}

var (
	confinedOnce sync.Once
	confined     bool
)

// IsOpaqueMarker reports whether a directory entry name is the
// ".wh..wh..opq" marker (callers skip it when listing).
func IsOpaqueMarker(name string) bool { return name == opaqueMarker }

// Whiteout reports whether the directory entry name, with its Lstat info
// fi (which may be nil), in an unpacked layer directory is a whiteout of
// either format, and which name it deletes.
func Whiteout(name string, fi fs.FileInfo) (deleted string, ok bool) {
	if strings.HasPrefix(name, whiteoutPrefix) {
		if strings.HasPrefix(name, metaPrefix) {
			return "", false
		}
		deleted = strings.TrimPrefix(name, whiteoutPrefix)
		return deleted, deleted != ""
	}
	if fi == nil || fi.Mode()&fs.ModeCharDevice == 0 {
		return "", false
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if isStat && st.Rdev == 0 {
		return name, true
	}
	return "", false
}

// Opaque reports whether directory path is opaque in either format: a
// ".wh..wh..opq" entry inside it, or the trusted.overlay.opaque xattr.
func Opaque(path string) (bool, error) {
	_, err := os.Lstat(filepath.Join(path, opaqueMarker))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return false, err
	}
	opaque, err := opaqueValue(func(name string, buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
	if err != nil {
		return false, &os.PathError{Op: "getxattr " + opaqueXattr, Path: path, Err: err}
	}
	return opaque, nil
}

// OpaqueDir is Opaque for an open directory.
func OpaqueDir(fd int) (bool, error) {
	st, err := fsat.Lstat(fd, opaqueMarker)
	if err != nil || st != nil {
		return st != nil, err
	}
	return opaqueValue(func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// opaqueValue reads the opaque xattr, of either overlay format, with get.
// Only "y" means opaque: newer overlayfs writes "x" on a directory that
// merely holds whiteouts of its own kind.
func opaqueValue(get func(name string, buf []byte) (int, error)) (bool, error) {
	for _, name := range [...]string{opaqueXattr, userOpaqueXattr} {
		var buf [4]byte
		n, err := get(name, buf[:])
		switch err {
		case nil:
			if string(buf[:n]) == "y" {
				return true, nil
			}
		// Absent, unsupported by the filesystem, longer than "y", or (for
		// trusted.* unprivileged) invisible: not opaque.
		case unix.ENODATA, unix.ENOTSUP, unix.ERANGE:
		default:
			return false, err
		}
	}
	return false, nil
}

// IsWhiteoutStat reports whether st is an overlayfs whiteout: a 0/0
// character device.
func IsWhiteoutStat(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// setOpaque marks the open directory fd opaque for overlayfs, with the
// xattr format's overlay reads.
func (f WhiteoutFormat) setOpaque(fd int) error {
	name := opaqueXattr
	if f == UserOverlayWhiteouts {
		name = userOpaqueXattr
	}
	if err := unix.Fsetxattr(fd, name, []byte("y"), 0); err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	return nil
}

// whiteout records a whiteout entry of the archive, rel, in the chosen
// format. Whiteouts delete from lower layers only: an entry of the same
// name in this layer stays.
func (u *unpacker) whiteout(rel string) error {
	dir, err := u.parentDir(path.Dir(rel))
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	base := path.Base(rel)
	if base == opaqueMarker {
		if u.opts.Whiteouts == MarkerWhiteouts {
			return u.marker(dir, base, rel)
		}
		fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return u.opts.Whiteouts.setOpaque(fd)
	}
	if strings.HasPrefix(base, metaPrefix) {
		return nil // AUFS bookkeeping such as ".wh..wh.plnk": nothing to delete
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return errors.New("whiteout names no entry")
	}
	if u.opts.Whiteouts == MarkerWhiteouts {
		return u.marker(dir, base, rel)
	}
	return overlayWhiteout(dir, name, u.opts.Whiteouts)
}

// marker writes a MarkerWhiteouts marker: an empty file, mode 0.
func (u *unpacker) marker(dir int, base, rel string) error {
	if err := u.clear(dir, base, rel); err != nil {
		return err
	}
	return createMarker(dir, base)
}

func createMarker(dir int, base string) error {
	fd, err := unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// Deleted reports whether the open layer directory dir deletes its entry
// name from the layers below it, by a whiteout of either format.
func Deleted(dir int, name string) (bool, error) {
	marker, err := fsat.Lstat(dir, whiteoutPrefix+name)
	if err != nil || marker != nil {
		return marker != nil, err
	}
	st, err := fsat.Lstat(dir, name)
	return st != nil && IsWhiteoutStat(st), err
}

// WriteWhiteout records in the open layer directory dir, in format, that
// its entry name is deleted. Nothing may be named name in dir.
func WriteWhiteout(dir int, name string, format WhiteoutFormat) error {
	if format.overlay() {
		return unix.Mknodat(dir, name, unix.S_IFCHR, 0)
	}
	return createMarker(dir, whiteoutPrefix+name)
}

// DropWhiteout removes a whiteout of name from the open layer directory
// dir, reporting whether there was one.
func DropWhiteout(dir int, name string) (bool, error) {
	err := unix.Unlinkat(dir, whiteoutPrefix+name, 0)
	if err != unix.ENOENT {
		return err == nil, err
	}
	st, err := fsat.Lstat(dir, name)
	if err != nil || st == nil || !IsWhiteoutStat(st) {
		return false, err
	}
	return true, unix.Unlinkat(dir, name, 0)
}

// MarkOpaque makes the open layer directory fd hide what the layers below
// hold under its name, in format.
func MarkOpaque(fd int, format WhiteoutFormat) error {
	if format.overlay() {
		return format.setOpaque(fd)
	}
	return createMarker(fd, opaqueMarker)
}

// overlayWhiteout deletes name of dir for overlayfs.
func overlayWhiteout(dir int, name string, format WhiteoutFormat) error {
	st, err := fsat.Lstat(dir, name)
	if err != nil {
		return err
	}
	switch {
	case st == nil:
		if err := unix.Mknodat(dir, name, unix.S_IFCHR, 0); err != nil {
			return &os.PathError{Op: "make overlay whiteout", Path: name, Err: err}
		}
		return nil
	case fsat.IsDir(st):
		// This layer made the directory itself: it stays, but nothing of
		// the lower one shows through it.
		fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return format.setOpaque(fd)
	}
	return nil // a non-directory of this layer hides the lower one already
}
