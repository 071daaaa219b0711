// Package rootfs owns the merged view of a container's filesystem: a stack of
// layer directories, top first (the container's writable layer, then the
// image's unpacked layers from the top down), seen the way overlayfs shows
// them, and writing that merged tree as one tar stream, entry for entry what
// `docker export` and `podman export` write.
//
// Whiteouts may be in either format, even mixed: OCI marker files (.wh.<name>
// and .wh..wh..opq) or overlayfs ones (a 0/0 character device, and
// trusted.overlay.opaque="y" on a directory). Neither is ever shown.
package rootfs

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stack is the layer directories of one container, top first.
type Stack []string

// Walk calls fn for each visible path of the merged tree in export order:
// depth first, the names of each directory in byte order, a directory before
// its contents, no entry for the root. rel is slash separated without a
// leading "./", layerDir the element of s it comes from, fi its Lstat, whose
// Sys is a *syscall.Stat_t as os.Lstat gives. Sockets are included; whiteouts
// and opaque markers are not.
//
// fs.SkipDir from fn skips a directory's contents (or, for any other entry,
// the rest of its directory); fs.SkipAll ends the walk without error.
// Walk does not read extended attributes, so it cannot tell when a layer is
// an overlayfs upper directory written with metacopy or redirect_dir; the
// export does, and refuses.
func (s Stack) Walk(ctx context.Context, fn func(rel, layerDir string, fi fs.FileInfo) error) error {
	return s.walk(ctx, func(e *entry) error {
		fi := &fileInfo{name: e.name, st: sysStat(&e.st)}
		return fn(e.rel, s[e.layer], fi)
	})
}

// walk is Walk for the package's own use: it keeps the descriptor of the
// entry's directory so that files are opened and read without path lookups.
func (s Stack) walk(ctx context.Context, visit func(*entry) error) error {
	w := &walker{ctx: ctx, layers: s, visit: visit, dents: make([]byte, 64<<10)}
	root, err := w.openRoot()
	if err != nil {
		return err
	}
	err = w.dir("", root)
	if errors.Is(err, fs.SkipAll) || errors.Is(err, fs.SkipDir) {
		return nil
	}
	return err
}

// fileInfo is an fs.FileInfo made from an fstatat result.
type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fileMode(fi.st.Mode) }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (fi *fileInfo) Sys() any           { return &fi.st }

// sysStat converts x/sys's stat to the syscall one that os.Lstat returns, so
// callers (and archive/tar.FileInfoHeader) find the type they expect.
func sysStat(st *unix.Stat_t) syscall.Stat_t {
	return syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode,
		Uid: st.Uid, Gid: st.Gid, Rdev: st.Rdev, Size: st.Size,
		Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}
}

// fileMode is os.FileMode's reading of an st_mode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
