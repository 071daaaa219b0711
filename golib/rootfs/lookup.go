package rootfs

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// Dir is one directory of the merged tree, for looking names up in it one
// at a time (the walk lists them instead): its copies in the layers that
// show it, top first, each an open descriptor, by the same rules as the
// walk. A layer shows a name it holds unless it holds a whiteout device
// there; a ".wh.<name>" marker hides the name in the layers below its own,
// not beside it; a non-directory hides the directories below it, and an
// opaque copy the copies below it.
//
// Nothing is followed: names are single components looked at with *at
// calls relative to their copy, so a layer a running container changes
// cannot send a lookup elsewhere.
type Dir struct {
	copies []dirFD
	// plain: one mounted overlayfs, which shows deletions as absences; a
	// name in it that looks like a marker is a file like any other.
	plain bool
}

type dirFD struct {
	layer int // index in the stack the Dir was opened from
	fd    int
}

// OpenDir opens the merged root of the layer directories fds, top first,
// which stay the caller's; plain is for a single mounted overlay.
func OpenDir(fds []int, plain bool) (Dir, error) {
	d := Dir{plain: plain}
	for i, fd := range fds {
		own, err := fsat.OpenDir(fd, ".")
		if err != nil {
			d.Close()
			return Dir{}, err
		}
		d.copies = append(d.copies, dirFD{layer: i, fd: own})
		if !plain && d.opaque(own) {
			break
		}
	}
	return d, nil
}

// Close closes the copies.
func (d Dir) Close() {
	for _, c := range d.copies {
		unix.Close(c.fd)
	}
}

// Empty reports a directory no layer shows.
func (d Dir) Empty() bool { return len(d.copies) == 0 }

// Lookup finds what the merged tree shows as name here: the status and the
// index of the layer that holds it, and that layer's copy of this directory
// (owned by d); a nil status when nothing is shown.
func (d Dir) Lookup(name string) (st *unix.Stat_t, layer, dirfd int, err error) {
	if !d.plain && strings.HasPrefix(name, whPrefix) {
		return nil, -1, -1, nil
	}
	for _, c := range d.copies {
		st, err := fsat.Lstat(c.fd, name)
		if err != nil {
			return nil, -1, -1, err
		}
		if st != nil {
			if !d.plain && isWhiteoutDevice(st) {
				return nil, -1, -1, nil
			}
			return st, c.layer, c.fd, nil
		}
		if d.plain {
			continue
		}
		if marker, err := fsat.Lstat(c.fd, whPrefix+name); err != nil || marker != nil {
			return nil, -1, -1, err
		}
	}
	return nil, -1, -1, nil
}

// Open returns the merged directory name, which the caller closes: its
// copies down to the first layer where name is not a directory, is deleted,
// or is opaque. It is empty when no layer shows a directory there.
func (d Dir) Open(name string) (Dir, error) {
	sub := Dir{plain: d.plain}
	if !d.plain && strings.HasPrefix(name, whPrefix) {
		return sub, nil
	}
	for _, c := range d.copies {
		more, err := sub.openCopy(c, name)
		if err != nil {
			sub.Close()
			return Dir{}, err
		}
		if !more {
			break
		}
	}
	return sub, nil
}

// openCopy adds c's copy of directory name to d, and reports whether the
// copies below can still show through.
func (d *Dir) openCopy(c dirFD, name string) (more bool, err error) {
	st, err := fsat.Lstat(c.fd, name)
	if err != nil {
		return false, err
	}
	if st != nil && !fsat.IsDir(st) {
		return false, nil
	}
	if st != nil {
		fd, err := fsat.OpenDir(c.fd, name)
		if err != nil {
			return false, err
		}
		d.copies = append(d.copies, dirFD{layer: c.layer, fd: fd})
		if !d.plain && d.opaque(fd) {
			return false, nil
		}
	}
	if d.plain {
		return true, nil
	}
	// A marker beside it deletes the lower copies; this layer's own, if it
	// has one, is the directory made anew.
	marker, err := fsat.Lstat(c.fd, whPrefix+name)
	return marker == nil, err
}

// Names lists the names of every copy, markers left out; a name several
// copies hold comes several times.
func (d Dir) Names() ([]string, error) {
	var out []string
	for _, c := range d.copies {
		fd, err := fsat.OpenDir(c.fd, ".")
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), "layer directory")
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if d.plain || !strings.HasPrefix(name, whPrefix) {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// opaque reports an opaque copy, by marker or overlayfs xattr.
func (d Dir) opaque(fd int) bool {
	if overlayOpaque(fd) {
		return true
	}
	marker, err := fsat.Lstat(fd, whOpaque)
	return err == nil && marker != nil
}
