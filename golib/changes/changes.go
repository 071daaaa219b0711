// Package changes owns telling what a container changed against its image,
// as `docker diff` does: every path whose file was added, deleted, or
// modified (its type, mode, owner, device, capabilities, or for a
// non-directory its size or modification time).
//
// The answer is the one Docker gives when it compares the two whole trees
// (its naive differ, and so its vfs driver), but only the container's own
// layer is walked: a path it does not hold, directly or as a whiteout or
// under an opaque directory, is the image's unchanged. Paths come in
// docker's overlay2 order: a depth-first walk with each directory's entries
// by name, a directory before what changed inside it. Nothing is written.
//
// The container may be running and changing its layer meanwhile, so every
// directory, the container's and the image's, is walked by descriptor: each
// name is looked at with one *at call relative to its open directory, never
// following a symlink and never opening anything but a directory.
package changes

import (
	"context"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/rootfs"
)

// Kind is docker's change kind.
type Kind int

const (
	Modified Kind = 0
	Added    Kind = 1
	Deleted  Kind = 2
)

// Change is one changed path, absolute inside the container.
type Change struct {
	Path string `json:"Path"`
	Kind Kind   `json:"Kind"`
}

// List compares the view of upper (a container's writable layer) over
// image (the image's layer directories, top first) with image's own view.
func List(ctx context.Context, upper string, image bundle.Stack) ([]Change, error) {
	top, err := openRoot(upper)
	if err != nil {
		return nil, err
	}
	defer top.Close()
	old, err := openImage(image)
	if err != nil {
		return nil, err
	}
	defer old.Close()
	w := &walker{ctx: ctx, out: []Change{}}
	if err := w.dir("", top, old, true); err != nil {
		return nil, err
	}
	return w.out, nil
}

type walker struct {
	ctx context.Context
	out []Change
}

// dir lists the changes under rel, held open as d in upper. old is the
// image's directory at rel (empty when the image has none). showsImage: the
// new view at rel still shows the image's entries (no opaque directory at
// or above rel in upper).
func (w *walker) dir(rel string, d *os.File, old rootfs.Dir, showsImage bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	children, err := w.children(rel, d, old, showsImage)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(children)) {
		st, p := children[name], path.Join(rel, name)
		if st == nil {
			// A whiteout, or an image entry an opaque directory hides.
			if was, _, _, err := old.Lookup(name); err != nil {
				return pathErr("lstat", p, err)
			} else if was != nil {
				w.add(p, Deleted)
			}
			continue
		}
		if err := w.entry(p, d, name, st, old, showsImage); err != nil {
			return err
		}
	}
	return nil
}

// children merges upper's entries in d, by name, with the names upper
// deletes and, when an opaque directory hides them, the image's names: those
// map to nil, deleted unless upper holds them.
func (w *walker) children(rel string, d *os.File, old rootfs.Dir, showsImage bool) (map[string]*unix.Stat_t, error) {
	out := map[string]*unix.Stat_t{}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, pathErr("readdirent", rel, err)
	}
	for _, name := range names {
		if layer.IsOpaqueMarker(name) {
			continue
		}
		st, err := fsat.Lstat(int(d.Fd()), name)
		if err != nil {
			return nil, pathErr("lstat", path.Join(rel, name), err)
		}
		if st == nil {
			continue // a running container removed it meanwhile
		}
		deleted, ok := layer.Whiteout(name, nil)
		if !ok && layer.IsWhiteoutStat(st) {
			deleted, ok = name, true
		}
		if ok {
			if _, held := out[deleted]; !held {
				out[deleted] = nil
			}
			continue
		}
		out[name] = st
	}
	if !showsImage {
		names, err := old.Names()
		if err != nil {
			return nil, pathErr("readdirent", rel, err)
		}
		for _, name := range names {
			if _, held := out[name]; !held {
				out[name] = nil
			}
		}
	}
	return out, nil
}

// entry reports p, which upper holds as name in parent (st), and what
// changed below it; old and showsImage are those of p's directory.
func (w *walker) entry(p string, parent *os.File, name string, st *unix.Stat_t, old rootfs.Dir, showsImage bool) error {
	was, _, oldParent, err := old.Lookup(name)
	if err != nil {
		return pathErr("lstat", p, err)
	}
	at := len(w.out)
	recorded := true
	switch {
	case was == nil:
		w.add(p, Added)
	case differs(was, st) || capability(oldParent, name, was) != capability(int(parent.Fd()), name, st):
		w.add(p, Modified)
	default:
		recorded = false
	}
	if !fsat.IsDir(st) {
		return nil
	}
	fd, err := fsat.OpenDir(int(parent.Fd()), name)
	switch err {
	case nil:
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP:
		// A running container replaced the directory meanwhile, perhaps
		// with a symlink, which is never followed: nothing below to list.
		return nil
	default:
		return pathErr("open", p, err)
	}
	d := os.NewFile(uintptr(fd), p)
	defer d.Close()
	opaque, err := layer.OpaqueDir(fd)
	if err != nil {
		return pathErr("getxattr", p, err)
	}
	var sub rootfs.Dir
	if was != nil && fsat.IsDir(was) {
		if sub, err = old.Open(name); err != nil {
			return pathErr("open", p, err)
		}
		defer sub.Close()
	}
	if err := w.dir(p, d, sub, showsImage && !opaque); err != nil {
		return err
	}
	// As docker: a directory something inside changed is modified too,
	// listed before its contents.
	if !recorded && len(w.out) > at {
		w.out = slices.Insert(w.out, at, Change{Path: "/" + p, Kind: Modified})
	}
	return nil
}

func (w *walker) add(p string, kind Kind) {
	w.out = append(w.out, Change{Path: "/" + p, Kind: kind})
}

func pathErr(op, rel string, err error) error {
	return &os.PathError{Op: op, Path: "/" + rel, Err: err}
}

// differs compares what docker compares: type and mode, owner, device, and
// for a non-directory its size and modification time (a directory's change
// so in size or time alone is not one; see moby#9874).
func differs(a, b *unix.Stat_t) bool {
	if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev {
		return true
	}
	if fsat.IsDir(a) {
		return false
	}
	return a.Size != b.Size || !sameTime(time.Unix(a.Mtim.Unix()), time.Unix(b.Mtim.Unix()))
}

// sameTime: a layer from a tar has whole seconds, so a time with no
// nanoseconds matches any in the same second, as docker allows.
func sameTime(a, b time.Time) bool {
	return a.Equal(b) || a.Unix() == b.Unix() && (a.Nanosecond() == 0 || b.Nanosecond() == 0)
}

// capability is a regular file's security.capability, the one extended
// attribute docker compares; name in the open directory dir is reached
// through the descriptor, and l*xattr follows no final symlink.
func capability(dir int, name string, st *unix.Stat_t) string {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ""
	}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(fsat.Path(dir, name), "security.capability", buf)
	if err != nil || n < 0 {
		return ""
	}
	return string(buf[:n])
}

func openRoot(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openImage opens the image's merged root (see rootfs.Dir). The image's
// layers are the store's and never change, but they still come from an
// image author: a symlink in one is never followed.
func openImage(s bundle.Stack) (rootfs.Dir, error) {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, dir := range s {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return rootfs.Dir{}, &os.PathError{Op: "open", Path: dir, Err: err}
		}
		fds = append(fds, fd)
	}
	return rootfs.OpenDir(fds, false)
}
