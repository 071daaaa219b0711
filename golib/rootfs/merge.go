package rootfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// OCI whiteout markers. Names under the ".wh..wh." prefix are the aufs
// bookkeeping that some old layers carry; none of them is a file either.
const (
	whPrefix = ".wh."
	whMeta   = ".wh..wh."
	whOpaque = ".wh..wh..opq"
)

// entry is one visible path of the merged tree.
type entry struct {
	rel   string
	name  string
	layer int // index into the Stack
	dirfd int // the directory holding name in that layer
	st    unix.Stat_t
	// marker: in a layer walk, rel is an OCI whiteout marker standing for
	// a deletion or an opaque directory of the layer; st is unset.
	marker bool
}

// walker holds the state of one walk. Directories are held open down the
// current path (one descriptor per layer that has them) so that every stat
// and open is relative to its directory: no repeated path lookups, and a
// symlink swapped in by a running container is never followed.
type walker struct {
	ctx    context.Context
	layers Stack
	visit  func(*entry) error
	dents  []byte // getdents buffer, shared by every directory
	// layerOnly walks one layer as it is, its deletions and opaque
	// directories visited as OCI markers rather than applied.
	layerOnly bool
}

// dirCopy is one layer's copy of a directory of the merged tree.
type dirCopy struct {
	layer int
	fd    int
	ents  []dirent        // sorted by name, markers left out
	hides map[string]bool // names a .wh. marker here hides in lower layers
	next  int             // merge cursor into ents
	// opaque: this copy hides the copies below it, by a marker or xattr.
	opaque bool
}

type dirent struct {
	name string
	typ  uint8 // DT_* as getdents reports it
}

func (w *walker) openRoot() ([]dirCopy, error) {
	var copies []dirCopy
	for i, dir := range w.layers {
		c, opaque, err := w.openCopy(unix.AT_FDCWD, dir, i, "")
		if err != nil {
			closeCopies(copies)
			return nil, err
		}
		copies = append(copies, c)
		if opaque {
			break
		}
	}
	return copies, nil
}

// openCopy opens and lists one layer's copy of directory rel and reports
// whether it is opaque, hiding the copies below it.
func (w *walker) openCopy(at int, name string, layer int, rel string) (dirCopy, bool, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if at != unix.AT_FDCWD {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openat(at, name, flags)
	if err != nil {
		return dirCopy{}, false, w.pathErr("open", layer, rel, err)
	}
	c := dirCopy{layer: layer, fd: fd}
	opaque, err := c.list(w.dents, w.layerOnly)
	if err != nil {
		unix.Close(fd)
		return dirCopy{}, false, w.pathErr("readdirent", layer, rel, err)
	}
	c.opaque = opaque || overlayOpaque(fd)
	return c, c.opaque, nil
}

func (w *walker) pathErr(op string, layer int, rel string, err error) error {
	return &fs.PathError{Op: op, Path: filepath.Join(w.layers[layer], filepath.FromSlash(rel)), Err: err}
}

// dir visits the merged contents of directory rel, given its copies top
// first, and closes them.
func (w *walker) dir(rel string, copies []dirCopy) error {
	defer closeCopies(copies)
	for {
		name, ok := smallestNext(copies)
		if !ok {
			return nil
		}
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.child(rel, name, copies); err != nil {
			if errors.Is(err, fs.SkipDir) {
				return nil
			}
			return err
		}
	}
}

// child decides what the merged tree shows under name, moves every copy's
// cursor past it, and visits it.
func (w *walker) child(rel, name string, copies []dirCopy) error {
	e := &entry{rel: join(rel, name), name: name}
	if w.layerOnly {
		return w.layerChild(rel, e, &copies[0])
	}
	top, below, err := w.resolve(copies, e)
	if err != nil || top < 0 {
		return err
	}
	c := &copies[top]
	e.layer, e.dirfd = c.layer, c.fd
	return w.visitAndEnter(e, copies, append([]int{top}, below...))
}

// visitAndEnter visits e and, when it is a directory, its merged contents,
// made of the copies idx of its parent.
func (w *walker) visitAndEnter(e *entry, copies []dirCopy, idx []int) error {
	err := w.visit(e)
	if e.marker || e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return err
	}
	if errors.Is(err, fs.SkipDir) {
		return nil
	}
	if err != nil {
		return err
	}
	sub, err := w.openChildren(e.rel, e.name, copies, idx)
	if err != nil {
		return err
	}
	if w.layerOnly && sub[0].opaque {
		if err := w.visit(&entry{rel: join(e.rel, whOpaque), marker: true}); err != nil {
			closeCopies(sub)
			return err
		}
	}
	return w.dir(e.rel, sub)
}

// layerChild is child for a layer walk: a deletion is visited as the OCI
// marker of either format would name it.
func (w *walker) layerChild(rel string, e *entry, c *dirCopy) error {
	c.take(e.name)
	e.dirfd = c.fd
	if strings.HasPrefix(e.name, whPrefix) {
		e.marker = true
		return w.visit(e)
	}
	found, err := c.stat(e.name, &e.st)
	if err != nil || !found {
		return err
	}
	if isWhiteoutDevice(&e.st) {
		e.rel, e.marker = join(rel, whPrefix+e.name), true
		return w.visit(e)
	}
	return w.visitAndEnter(e, []dirCopy{*c}, []int{0})
}

// resolve walks the copies top down for name: the first real entry is what
// is shown (top, its stat in e), unless a whiteout comes first; when it is
// a directory, the directories right below it merge into it (below), down to
// the first non-directory, whiteout or opaque marker.
func (w *walker) resolve(copies []dirCopy, e *entry) (top int, below []int, err error) {
	name := e.name
	top = -1
	done := false
	for i := range copies {
		c := &copies[i]
		typ, here := c.take(name)
		if done {
			continue
		}
		if here && top < 0 {
			if here, err = c.stat(name, &e.st); err != nil {
				return -1, nil, w.pathErr("lstat", c.layer, e.rel, err)
			}
		}
		switch {
		case !here:
		case top >= 0:
			dir, err := c.isDir(name, typ)
			if err != nil {
				return -1, nil, w.pathErr("lstat", c.layer, e.rel, err)
			}
			if !dir {
				done = true
				continue
			}
			below = append(below, i)
		case isWhiteoutDevice(&e.st):
			done = true
			continue
		default:
			top = i
			if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
				done = true
				continue
			}
		}
		// A marker hides what is below its layer, not a copy beside it.
		done = c.hides[name]
	}
	return top, below, nil
}

// openChildren opens the copies of directory name found in the copies idx
// of its parent, stopping below an opaque one.
func (w *walker) openChildren(rel, name string, parent []dirCopy, idx []int) ([]dirCopy, error) {
	sub := make([]dirCopy, 0, len(idx))
	for _, i := range idx {
		c, opaque, err := w.openCopy(parent[i].fd, name, parent[i].layer, rel)
		if err != nil {
			closeCopies(sub)
			return nil, err
		}
		sub = append(sub, c)
		if opaque {
			break
		}
	}
	return sub, nil
}

// list reads the directory with getdents, keeps the real entries sorted and
// notes the markers (kept among the entries too when keepMarkers is set).
// It reports an OCI opaque marker.
func (c *dirCopy) list(buf []byte, keepMarkers bool) (opaque bool, err error) {
	for {
		n, err := unix.Getdents(c.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if n <= 0 {
			break
		}
		opaque = c.parse(buf[:n], keepMarkers) || opaque
	}
	slices.SortFunc(c.ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return opaque, nil
}

// parse reads linux_dirent64 records: d_ino u64, d_off s64, d_reclen u16,
// d_type u8, then the NUL-terminated name.
func (c *dirCopy) parse(buf []byte, keepMarkers bool) (opaque bool) {
	for len(buf) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(buf[16:]))
		if reclen < 19 || reclen > len(buf) {
			break
		}
		typ, raw := buf[18], buf[19:reclen]
		if i := bytes.IndexByte(raw, 0); i >= 0 {
			raw = raw[:i]
		}
		buf = buf[reclen:]
		switch name := string(raw); {
		case name == "." || name == "..":
		case name == whOpaque:
			opaque = true
		case strings.HasPrefix(name, whMeta):
		case strings.HasPrefix(name, whPrefix):
			if c.hides == nil {
				c.hides = map[string]bool{}
			}
			c.hides[name[len(whPrefix):]] = true
			if keepMarkers {
				c.ents = append(c.ents, dirent{name: name, typ: typ})
			}
		default:
			c.ents = append(c.ents, dirent{name: name, typ: typ})
		}
	}
	return opaque
}

// take reports whether the copy has name at its cursor, and moves past it.
func (c *dirCopy) take(name string) (typ uint8, ok bool) {
	if c.next < len(c.ents) && c.ents[c.next].name == name {
		c.next++
		return c.ents[c.next-1].typ, true
	}
	return 0, false
}

// stat is an lstat of name in this copy; a name that vanished since the
// listing is reported as absent rather than as an error.
func (c *dirCopy) stat(name string, st *unix.Stat_t) (bool, error) {
	for {
		err := unix.Fstatat(c.fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return false, nil
		}
		return false, err
	}
}

func (c *dirCopy) isDir(name string, typ uint8) (bool, error) {
	if typ != unix.DT_UNKNOWN {
		return typ == unix.DT_DIR, nil
	}
	// Some file systems leave d_type unset.
	var st unix.Stat_t
	ok, err := c.stat(name, &st)
	return ok && st.Mode&unix.S_IFMT == unix.S_IFDIR, err
}

func smallestNext(copies []dirCopy) (string, bool) {
	name, ok := "", false
	for i := range copies {
		c := &copies[i]
		if c.next < len(c.ents) && (!ok || c.ents[c.next].name < name) {
			name, ok = c.ents[c.next].name, true
		}
	}
	return name, ok
}

func closeCopies(copies []dirCopy) {
	for _, c := range copies {
		unix.Close(c.fd)
	}
}

// isWhiteoutDevice reports overlayfs's deletion mark.
func isWhiteoutDevice(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// overlayOpaque reports overlayfs's opaque mark on a directory, as root's
// overlay reads it (trusted.) or one mounted in a user namespace with
// userxattr (user.). Only "y" is opaque: newer kernels write "x" on a merged
// directory holding xattr whiteouts, which still shows what is below.
func overlayOpaque(fd int) bool {
	for _, name := range [...]string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		var v [2]byte
		n, err := unix.Fgetxattr(fd, name, v[:])
		if err == nil && n == 1 && v[0] == 'y' {
			return true
		}
	}
	return false
}

func openat(at int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(at, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
