package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/rootfs"
)

// Errors the callers map to their catalogues.
var (
	ErrSourceNotFound      = errors.New("no such file on the host")
	ErrDestinationNotFound = errors.New("no such directory in the container")
	ErrPathNotFound        = errors.New("no such file or directory in the container")
)

// Stack is a container's layer directories, top first: its diff, then the
// image's layers from the top down.
type Stack []string

// Root is a container's files as changes from outside reach them, as
// `docker cp` makes them. Every path in the container is resolved as the
// container itself would resolve it: symlinks are followed inside its root,
// an absolute one starting at that root, and no file is ever reached
// through a symlink by the kernel. What the container controls cannot make
// a change land outside it.
type Root struct {
	// Layers is a stopped container's stack. Changes go into its top
	// layer, with whiteouts for what the layers below still show.
	Layers Stack
	// Mounted, when set, is a running container's merged root, the
	// overlayfs mount its processes see: changes go there and overlayfs
	// records them (a live overlay's upper directory is never written
	// directly). Layers is then unused.
	Mounted string
}

// maxSymlinks is how many symlinks one resolution follows, as Linux allows.
const maxSymlinks = 40

// CopyIn copies the host path src into the container at dest, as
// `docker cp SRC CONTAINER:DEST` does: into dest when dest is a directory
// (its contents only when src ends in "/."), as dest otherwise; a symlink in
// dest is followed inside the container. What stands at a name being
// written is removed first, never written through. Files belong to the
// container's root user. It returns the path written, as the container
// sees it. When ctx ends the copy stops, between entries or within a file,
// and returns ctx's error: the file being written is removed, what was
// copied before it stays.
func (r Root) CopyIn(ctx context.Context, src, dest string) (string, error) {
	srcInfo, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrSourceNotFound, src)
	}
	t, err := r.open()
	if err != nil {
		return "", err
	}
	defer t.close()
	rel, st, err := t.resolve(dest, true)
	if err != nil {
		return "", destinationErr(ErrDestinationNotFound, dest, err)
	}
	contentsOnly := srcInfo.IsDir() && filepath.Base(src) == "."
	if st != nil && fsat.IsDir(st) && !contentsOnly {
		rel = path.Join(rel, filepath.Base(src))
	}
	if rel == "" {
		if !contentsOnly {
			return "", fmt.Errorf("%w: only a directory's contents can be copied to /", ErrDestinationNotFound)
		}
		root, err := fsat.OpenDir(t.layers[0], ".")
		if err != nil {
			return "", err
		}
		defer unix.Close(root)
		return "/", t.copyChildren(ctx, src, root, "")
	}
	dir, err := t.parentDir(rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(dir)
	if err := t.copyEntry(ctx, src, srcInfo, dir, path.Base(rel), rel); err != nil {
		return "", err
	}
	return "/" + rel, nil
}

// Remove deletes p from the container's view, a symlink itself rather than
// what it points at: from the top layer, and with a whiteout when a lower
// layer still shows it. It returns the path removed, as the container sees
// it.
func (r Root) Remove(p string) (string, error) {
	t, err := r.open()
	if err != nil {
		return "", err
	}
	defer t.close()
	rel, st, err := t.resolve(p, false)
	if err != nil {
		return "", destinationErr(ErrPathNotFound, p, err)
	}
	if st == nil {
		return "", fmt.Errorf("%w: %s", ErrPathNotFound, p)
	}
	if rel == "" {
		return "", fmt.Errorf("%w: the root directory cannot be removed", ErrPathNotFound)
	}
	base := path.Base(rel)
	// The path has no symlink left in the merged view; in the top layer a
	// symlink on the way would mean a race, and the open refuses it.
	top, err := fsat.Open(t.layers[0], path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, fsat.NoSymlinks)
	switch {
	case err == nil:
		err = fsat.RemoveAll(top, base)
		unix.Close(top)
		if err != nil {
			return "", err
		}
	case t.merged || (err != unix.ENOENT && err != unix.ENOTDIR):
		return "", err
	}
	if t.merged {
		return "/" + rel, nil
	}
	if below, _, err := t.lookup(rel, 0); err != nil || below == nil {
		return "/" + rel, err
	}
	dir, err := t.parentDir(rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(dir)
	return "/" + rel, layer.WriteWhiteout(dir, base, t.format)
}

// destinationErr reports a path that does not resolve in the container as
// notFound, and any other fault as it is.
func destinationErr(notFound error, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%w: %s: %v", notFound, p, err)
	}
	return err
}

// tree is an open Root: its layers as descriptors, top first.
type tree struct {
	layers []int
	// merged: layers holds one overlayfs mount, which shows whiteouts as
	// absences and records changes itself.
	merged bool
	format layer.WhiteoutFormat
}

func (r Root) open() (*tree, error) {
	dirs := r.Layers
	if r.Mounted != "" {
		dirs = Stack{r.Mounted}
	}
	t := &tree{merged: r.Mounted != "", format: layer.NativeWhiteouts()}
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.close()
			return nil, &os.PathError{Op: "open", Path: d, Err: err}
		}
		t.layers = append(t.layers, fd)
	}
	if len(t.layers) == 0 {
		return nil, errors.New("the container has no layers")
	}
	return t, nil
}

func (t *tree) close() {
	for _, fd := range t.layers {
		unix.Close(fd)
	}
}

// resolve turns p into the symlink-free path, relative and slash separated
// ("" for the root), that the container reaches by it, with its status (nil
// when the last component does not exist). Symlinks are read, never
// followed by the kernel, and resolved as the container resolves them:
// relative to their directory, an absolute one from the root, ".." never
// above the root. A final symlink is followed only when followLast is set.
func (t *tree) resolve(p string, followLast bool) (string, *unix.Stat_t, error) {
	var done []string
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		rel := strings.Join(append(done, name), "/")
		st, in, err := t.lookup(rel, 0)
		if err != nil {
			return "", nil, err
		}
		last := len(todo) == 0
		switch {
		case st == nil && last:
			return rel, nil, nil
		case st == nil:
			return "", nil, fmt.Errorf("/%s: %w", rel, fs.ErrNotExist)
		case fsat.IsSymlink(st) && (followLast || !last):
			if links++; links > maxSymlinks {
				return "", nil, fmt.Errorf("/%s: %w", rel, unix.ELOOP)
			}
			target, err := t.readlink(in, rel)
			if err != nil {
				return "", nil, err
			}
			if strings.HasPrefix(target, "/") {
				done = nil
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		case !last && !fsat.IsDir(st):
			return "", nil, fmt.Errorf("/%s: %w", rel, unix.ENOTDIR)
		}
		done = append(done, name)
	}
	rel := strings.Join(done, "/")
	st, _, err := t.lookup(rel, 0)
	return rel, st, err
}

// lookup finds rel, a path without symlinks, as layers[from:] show it,
// merged as the export merges them (see rootfs.Dir). It returns rel's
// status (nil when not shown) and the layer that shows it.
func (t *tree) lookup(rel string, from int) (*unix.Stat_t, int, error) {
	if rel == "" {
		var st unix.Stat_t
		return &st, from, unix.Fstat(t.layers[from], &st)
	}
	d, err := rootfs.OpenDir(t.layers[from:], t.merged)
	if err != nil {
		return nil, -1, err
	}
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		sub, err := d.Open(name)
		d.Close()
		if err != nil {
			return nil, -1, err
		}
		d = sub
	}
	defer d.Close()
	st, in, _, err := d.Lookup(parts[len(parts)-1])
	if st == nil || err != nil {
		return nil, -1, err
	}
	return st, from + in, nil
}

// readlink reads the symlink rel of layer in.
func (t *tree) readlink(in int, rel string) (string, error) {
	dir, err := fsat.Open(t.layers[in], path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, fsat.NoSymlinks)
	if err != nil {
		return "", err
	}
	defer unix.Close(dir)
	return fsat.Readlink(dir, path.Base(rel))
}

// parentDir opens the top layer's directory holding rel, first copying up
// the directories the merged view shows there and the top layer lacks, with
// their metadata, as overlayfs copies a directory up. Each component is
// opened alone, not following a symlink.
func (t *tree) parentDir(rel string) (int, error) {
	dir, err := fsat.OpenDir(t.layers[0], ".")
	if err != nil {
		return -1, err
	}
	parts := strings.Split(rel, "/")
	for i, name := range parts[:len(parts)-1] {
		prefix := strings.Join(parts[:i+1], "/")
		next, err := fsat.OpenDir(dir, name)
		if err == unix.ENOENT && !t.merged {
			next, err = t.copyUp(dir, name, prefix)
		}
		unix.Close(dir)
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			return -1, fmt.Errorf("%w: /%s: %v", ErrDestinationNotFound, prefix, err)
		}
		if err != nil {
			return -1, err
		}
		dir = next
	}
	return dir, nil
}

// copyUp makes the directory name in dir, the top layer's, as the layers
// below show rel, and opens it.
func (t *tree) copyUp(dir int, name, rel string) (int, error) {
	shown, _, err := t.lookup(rel, 1)
	if err != nil {
		return -1, err
	}
	if shown == nil || !fsat.IsDir(shown) {
		return -1, unix.ENOENT
	}
	if err := unix.Mkdirat(dir, name, 0o700); err != nil {
		return -1, err
	}
	fd, err := fsat.OpenDir(dir, name)
	if err != nil {
		return -1, err
	}
	if err := setMetadata(dir, name, fd, shown.Uid, shown.Gid, shown.Mode, shown.Mtim); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// copyEntry copies the host file, symlink or directory tree src, whose
// status is fi, to name in the top layer's directory dir (rel in the
// container). Devices, FIFOs and sockets are not copied, as with docker cp.
func (t *tree) copyEntry(ctx context.Context, src string, fi fs.FileInfo, dir int, name, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	// hidden: the top layer deleted or covered what the layers below have
	// at rel, so a new directory here must not show their contents.
	hidden := false
	if !t.merged {
		var err error
		if hidden, err = layer.DropWhiteout(dir, name); err != nil {
			return err
		}
	}
	old, err := fsat.Lstat(dir, name)
	if err != nil {
		return err
	}
	merge := old != nil && fsat.IsDir(old) && fi.IsDir()
	if old != nil && !merge {
		hidden = true
		if err := fsat.RemoveAll(dir, name); err != nil {
			return err
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no file status", src)
	}
	mtime := unix.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec}
	switch {
	case fi.IsDir():
		if !merge {
			if err := unix.Mkdirat(dir, name, 0o700); err != nil {
				return err
			}
		}
		fd, err := fsat.OpenDir(dir, name)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if !merge && hidden && !t.merged {
			if below, _, err := t.lookup(rel, 1); err != nil {
				return err
			} else if below != nil && fsat.IsDir(below) {
				if err := layer.MarkOpaque(fd, t.format); err != nil {
					return err
				}
			}
		}
		if err := t.copyChildren(ctx, src, fd, rel); err != nil {
			return err
		}
		// Set last: its children changed its times.
		return setMetadata(dir, name, fd, 0, 0, st.Mode, mtime)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dir, name); err != nil {
			return err
		}
		return setMetadata(dir, name, -1, 0, 0, st.Mode, mtime)
	}
	return copyFile(ctx, src, dir, name, st.Mode, mtime)
}

// copyChildren copies the entries of the host directory src into the top
// layer's directory dir, which is rel in the container.
func (t *tree) copyChildren(ctx context.Context, src string, dir int, rel string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if err := t.copyEntry(ctx, filepath.Join(src, e.Name()), fi, dir, e.Name(), path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// copyChunk is how much of a file is copied between two looks at ctx: the
// kernel copies each chunk in one call.
const copyChunk = 32 << 20

// copyFile copies the host file src to a new file name in dir. A copy that
// fails or is cancelled removes the file.
func copyFile(ctx context.Context, src string, dir int, name string, mode uint32, mtime unix.Timespec) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	// O_EXCL: whatever stood at name was removed; anything there now was
	// put there since, and is not written through.
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(fd), name)
	defer out.Close()
	defer func() {
		if err != nil {
			unix.Unlinkat(dir, name, 0)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// CopyN hands the file a LimitedReader, which it copies in the kernel.
		if _, err := io.CopyN(out, in, copyChunk); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	return setMetadata(dir, name, fd, 0, 0, mode, mtime)
}

// setMetadata gives name in dir, open as fd (or -1 for a symlink), its
// owner, mode and modification time. A process that may not give files
// away keeps them.
func setMetadata(dir int, name string, fd int, uid, gid, mode uint32, mtime unix.Timespec) error {
	if fd < 0 {
		if err := unix.Fchownat(dir, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.EPERM {
			return err
		}
	} else {
		if err := unix.Fchown(fd, int(uid), int(gid)); err != nil && err != unix.EPERM {
			return err
		}
		// After the owner: chown clears set-id bits.
		if err := unix.Fchmod(fd, mode&0o7777); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(dir, name, []unix.Timespec{mtime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
}
