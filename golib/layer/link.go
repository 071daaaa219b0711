package layer

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// hardlink makes base a hardlink to the entry hdr.Linkname names, found in
// this layer or else in the nearest lower layer that shows it. Its own
// header metadata is ignored: the inode is the target's, possibly a lower
// layer's, and must not change.
func (u *unpacker) hardlink(dir int, base, rel string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "." {
		return fmt.Errorf("hardlink to the layer root %q", hdr.Linkname)
	}
	srcDir, srcBase, src, err := u.linkSource(target)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(srcDir)
	st, err := fsat.Lstat(dir, base)
	if err != nil {
		return err
	}
	if st != nil {
		if st.Dev == src.Dev && st.Ino == src.Ino {
			return nil // already that file, as with a link to itself
		}
		if err := u.remove(dir, base, rel, st); err != nil {
			return err
		}
	}
	// Flags 0: a target that is a symlink is linked itself, not followed.
	return unix.Linkat(srcDir, srcBase, dir, base, 0)
}

// linkSource finds target in this layer, then in the lower layers nearest
// first, stopping at a layer that deletes or shadows it. It returns the
// target's parent directory, to be closed, its last component and status.
func (u *unpacker) linkSource(target string) (int, string, *unix.Stat_t, error) {
	layers := append([]int{u.root}, u.lower...)
	for _, layer := range layers {
		dir, base, st, err := lookup(layer, target)
		if err != nil {
			return -1, "", nil, err
		}
		if st != nil && !isWhiteoutStat(st) {
			return dir, base, st, nil
		}
		if dir >= 0 {
			unix.Close(dir)
		}
		hidden, err := hides(layer, target)
		if err != nil {
			return -1, "", nil, err
		}
		if hidden {
			break
		}
	}
	return -1, "", nil, fs.ErrNotExist
}

// lookup resolves target inside layer. A nil status means it is not there;
// dir is then -1 or an open descriptor the caller closes.
func lookup(layer int, target string) (int, string, *unix.Stat_t, error) {
	dir, err := openIn(layer, path.Dir(target), unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return -1, "", nil, nil
	}
	if err != nil {
		return -1, "", nil, err
	}
	base := path.Base(target)
	st, err := fsat.Lstat(dir, base)
	if err != nil {
		unix.Close(dir)
		return -1, "", nil, err
	}
	return dir, base, st, nil
}

// hides reports whether layer keeps target from showing through from the
// layers beneath: by a whiteout of it or of a parent, an opaque parent, or
// a non-directory (symlinks included) standing where a parent should be.
func hides(layer int, target string) (bool, error) {
	dir, err := unix.Openat(layer, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	parts := strings.Split(target, "/")
	for i, name := range parts {
		hidden, next, err := hidesStep(dir, name, i == len(parts)-1)
		unix.Close(dir)
		if err != nil || hidden || next < 0 {
			return hidden, err
		}
		dir = next
	}
	return false, nil // not reached: the last step opens nothing
}

// hidesStep checks name in the open directory dir, returning the opened
// name when the walk must go on into it.
func hidesStep(dir int, name string, last bool) (bool, int, error) {
	opaque, err := OpaqueDir(dir)
	if err != nil || opaque {
		return opaque, -1, err
	}
	marker, err := fsat.Lstat(dir, whiteoutPrefix+name)
	if err != nil || marker != nil {
		return marker != nil, -1, err
	}
	st, err := fsat.Lstat(dir, name)
	if err != nil || st == nil {
		return false, -1, err
	}
	if last || !fsat.IsDir(st) {
		return true, -1, nil
	}
	next, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, -1, err
	}
	return false, next, nil
}
