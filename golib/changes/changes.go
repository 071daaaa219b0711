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
package changes

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/layer"
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
	w := &walker{ctx: ctx, upper: upper, image: image, out: []Change{}}
	if err := w.dir("", true, true); err != nil {
		return nil, err
	}
	return w.out, nil
}

type walker struct {
	ctx   context.Context
	upper string
	image bundle.Stack
	out   []Change
}

// dir lists the changes under rel, a directory in upper. imageDir: the
// image has a directory at rel. showsImage: the new view at rel still shows
// the image's entries (no opaque directory at or above rel in upper).
func (w *walker) dir(rel string, imageDir, showsImage bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	children, err := w.children(rel, imageDir, showsImage)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(children)) {
		fi, p := children[name], path.Join(rel, name)
		if fi == nil {
			// A whiteout, or an image entry an opaque directory hides.
			if !imageDir {
				continue
			}
			if _, _, ok := lookupImage(w.image, p); ok {
				w.add(p, Deleted)
			}
			continue
		}
		if err := w.entry(p, fi, imageDir, showsImage); err != nil {
			return err
		}
	}
	return nil
}

// children merges upper's entries at rel, by name, with the names upper
// deletes and, when an opaque directory hides them, the image's names: those
// map to nil, deleted unless upper holds them.
func (w *walker) children(rel string, imageDir, showsImage bool) (map[string]fs.FileInfo, error) {
	out := map[string]fs.FileInfo{}
	names, err := readNames(filepath.Join(w.upper, rel))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if layer.IsOpaqueMarker(name) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(w.upper, rel, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a running container removed it meanwhile
		}
		if err != nil {
			return nil, err
		}
		if deleted, ok := layer.Whiteout(name, fi); ok {
			if _, held := out[deleted]; !held {
				out[deleted] = nil
			}
			continue
		}
		out[name] = fi
	}
	if imageDir && !showsImage {
		for _, dir := range w.image {
			names, err := readNames(filepath.Join(dir, rel))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
				return nil, err
			}
			for _, name := range names {
				if _, held := out[name]; !held && !layer.IsOpaqueMarker(name) {
					out[name] = nil
				}
			}
		}
	}
	return out, nil
}

// entry reports p, which upper holds (fi), and what changed below it;
// imageDir and showsImage are those of p's directory.
func (w *walker) entry(p string, fi fs.FileInfo, imageDir, showsImage bool) error {
	var old fs.FileInfo
	oldDir, inImage := "", false
	if imageDir {
		oldDir, old, inImage = lookupImage(w.image, p)
	}
	at := len(w.out)
	recorded := true
	switch {
	case !inImage:
		w.add(p, Added)
	case differs(old, fi) || capability(filepath.Join(oldDir, p), old) != capability(filepath.Join(w.upper, p), fi):
		w.add(p, Modified)
	default:
		recorded = false
	}
	if !fi.IsDir() {
		return nil
	}
	opaque, err := layer.Opaque(filepath.Join(w.upper, p))
	if err != nil {
		return err
	}
	if err := w.dir(p, inImage && old.IsDir(), showsImage && !opaque); err != nil {
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

// differs compares what docker compares: type and mode, owner, device, and
// for a non-directory its size and modification time (a directory's change
// so in size or time alone is not one; see moby#9874).
func differs(old, new fs.FileInfo) bool {
	a, b := old.Sys().(*syscall.Stat_t), new.Sys().(*syscall.Stat_t)
	if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev {
		return true
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
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
// attribute docker compares.
func capability(p string, fi fs.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, "security.capability", buf)
	if err != nil || n < 0 {
		return ""
	}
	return string(buf[:n])
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// lookupImage finds the layer that shows rel in the image's merged view, as
// overlayfs would: whiteouts and non-directories hide what is below them,
// and an opaque directory hides the lower contents of that directory. The
// image's layer directories are the store's and never change; each prefix
// of rel is looked at in turn with Lstat, so a symlink among them ends the
// walk rather than being followed.
func lookupImage(s bundle.Stack, rel string) (dir string, fi fs.FileInfo, ok bool) {
	parts := strings.Split(rel, "/")
	for _, dir := range s {
		hidesBelow := false
		for i, part := range parts {
			p := filepath.Join(dir, filepath.FromSlash(strings.Join(parts[:i+1], "/")))
			if _, err := os.Lstat(filepath.Join(filepath.Dir(p), ".wh."+part)); err == nil {
				return "", nil, false
			}
			fi, err := os.Lstat(p)
			if err != nil {
				break // this layer has nothing at rel; look below unless hidden
			}
			if _, isWhiteout := layer.Whiteout(part, fi); isWhiteout {
				return "", nil, false
			}
			if i == len(parts)-1 {
				return dir, fi, true
			}
			if !fi.IsDir() {
				return "", nil, false
			}
			if opaque, _ := layer.Opaque(p); opaque {
				hidesBelow = true
			}
		}
		if hidesBelow {
			return "", nil, false
		}
	}
	return "", nil, false
}
