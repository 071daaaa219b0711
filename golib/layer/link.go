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
// this layer or else in the nearest lower layer that shows it, and gives
// that inode the entry's own owner, mode, times and xattrs, as Docker and
// podman do: every name of it shows them. A lower layer's inode must not
// change, so it is shared only when the entry leaves it as it is; else the
// target is first copied up into this layer, at its own path, as overlayfs
// copies up a file it changes.
func (u *unpacker) hardlink(dir int, base, rel string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "." {
		return fmt.Errorf("hardlink to the layer root %q", hdr.Linkname)
	}
	srcDir, srcBase, src, fromLower, err := u.linkSource(target)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	defer func() { unix.Close(srcDir) }()
	lowerInode := fromLower || u.sharedInodes[inodeOf(src)]
	if lowerInode && !u.keepsMeta(pathAttrs(procPath(srcDir, srcBase)), src, hdr) {
		copyDir, copySt, err := u.copyUp(target, srcDir, srcBase, src)
		if err != nil {
			return fmt.Errorf("copying up hardlink target %q: %w", hdr.Linkname, err)
		}
		unix.Close(srcDir)
		srcDir, srcBase, src, lowerInode = copyDir, path.Base(target), copySt, false
	}
	st, err := fsat.Lstat(dir, base)
	if err != nil {
		return err
	}
	if st == nil || st.Dev != src.Dev || st.Ino != src.Ino { // else already that file, as with a link to itself
		if st != nil {
			if err := u.remove(dir, base, rel, st); err != nil {
				return err
			}
		}
		// Flags 0: a target that is a symlink is linked itself, not followed.
		if err := unix.Linkat(srcDir, srcBase, dir, base, 0); err != nil {
			return err
		}
	}
	if lowerInode {
		u.sharedInodes[inodeOf(src)] = true
		return nil
	}
	// A symlink has no mode of its own, and Docker leaves its times.
	symlink := src.Mode&unix.S_IFMT == unix.S_IFLNK
	return u.nodeMeta(dir, base, hdr, !symlink, !symlink)
}

// inode names a file across layers.
type inode struct{ dev, ino uint64 }

func inodeOf(st *unix.Stat_t) inode { return inode{st.Dev, st.Ino} }

// keepsMeta reports whether giving the inode st the metadata of hdr, a
// hardlink entry, would leave it as it is.
func (u *unpacker) keepsMeta(a attrs, st *unix.Stat_t, hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return false
		}
	}
	uid, gid, mode := int(st.Uid), int(st.Gid), st.Mode&0o7777
	if u.confined {
		uid, gid, mode = trueOwner(a, st)
	}
	// An unprivileged unpack cannot give files away, so owners never differ.
	if u.privileged && (uid != hdr.Uid || gid != hdr.Gid) {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return true
	}
	m := hdr.ModTime
	return mode == fileMode(hdr) && st.Mtim.Sec == m.Unix() && st.Mtim.Nsec == int64(m.Nanosecond())
}

// linkSource finds target in this layer, then in the lower layers nearest
// first, stopping at a layer that deletes or shadows it. It returns the
// target's parent directory, to be closed, its last component and status,
// and whether it is a lower layer's.
func (u *unpacker) linkSource(target string) (int, string, *unix.Stat_t, bool, error) {
	dir, base, st, i, err := visible(append([]int{u.root}, u.lower...), target)
	return dir, base, st, i > 0, err
}

// visible finds target in the first of layers that shows it, stopping at a
// layer that deletes or shadows it. It returns the target's parent
// directory, to be closed, its last component and status, and the index of
// the layer; an error wrapping fs.ErrNotExist when no layer shows it.
func visible(layers []int, target string) (int, string, *unix.Stat_t, int, error) {
	for i, layer := range layers {
		dir, base, st, err := lookup(layer, target)
		if err != nil {
			return -1, "", nil, -1, err
		}
		if st != nil && !IsWhiteoutStat(st) {
			return dir, base, st, i, nil
		}
		if dir >= 0 {
			unix.Close(dir)
		}
		hidden, err := hides(layer, target)
		if err != nil {
			return -1, "", nil, -1, err
		}
		if hidden {
			break
		}
	}
	return -1, "", nil, -1, fs.ErrNotExist
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
