package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/layer"
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

// CleanPath turns a path inside the container into a relative, slash
// separated one ("" for the root); ".." cannot climb above the root.
func CleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// Lookup finds the layer that shows rel in the merged view, as overlayfs
// would: whiteouts and non-directories hide what is below them, and an
// opaque directory hides the lower contents of that directory.
func (s Stack) Lookup(rel string) (dir string, fi fs.FileInfo, ok bool) {
	if rel == "" {
		fi, err := os.Lstat(s[0])
		return s[0], fi, err == nil
	}
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

// CopyIn copies the host path src into the container at dest, as
// `docker cp SRC CONTAINER:DEST` does: into dest when dest is a directory,
// as dest otherwise. Files belong to the container's root user.
func (s Stack) CopyIn(src, dest string) (string, error) {
	srcInfo, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrSourceNotFound, src)
	}
	rel := CleanPath(dest)
	if _, fi, ok := s.Lookup(rel); ok && fi.IsDir() {
		rel = path.Join(rel, filepath.Base(src))
	} else if _, parent, ok := s.Lookup(path.Dir(rel)); rel == "" || !ok || !parent.IsDir() {
		return "", fmt.Errorf("%w: %s", ErrDestinationNotFound, "/"+path.Dir(rel))
	}
	if err := s.copyUpParents(rel); err != nil {
		return "", err
	}
	target := filepath.Join(s[0], filepath.FromSlash(rel))
	wasDeleted := s.removeWhiteout(rel)
	if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && srcInfo.IsDir()) {
		if err := os.RemoveAll(target); err != nil {
			return "", err
		}
	}
	if err := copyTree(src, target); err != nil {
		return "", err
	}
	if srcInfo.IsDir() && wasDeleted {
		// The lower directory was deleted: its old contents must stay hidden.
		if err := markOpaque(target); err != nil {
			return "", err
		}
	}
	return "/" + rel, nil
}

// Remove deletes rel from the container's view: from its diff, and with a
// whiteout when a lower layer still shows it.
func (s Stack) Remove(p string) error {
	rel := CleanPath(p)
	if rel == "" {
		return fmt.Errorf("%w: the root directory cannot be removed", ErrPathNotFound)
	}
	if _, _, ok := s.Lookup(rel); !ok {
		return fmt.Errorf("%w: /%s", ErrPathNotFound, rel)
	}
	if err := os.RemoveAll(filepath.Join(s[0], filepath.FromSlash(rel))); err != nil {
		return err
	}
	if _, _, ok := s.Lookup(rel); !ok {
		return nil
	}
	if err := s.copyUpParents(rel); err != nil {
		return err
	}
	return writeWhiteout(filepath.Join(s[0], filepath.FromSlash(rel)))
}

// copyUpParents makes rel's parent directories exist in the diff, with the
// metadata the merged view shows, as overlayfs copies a directory up.
func (s Stack) copyUpParents(rel string) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		inDiff := filepath.Join(s[0], filepath.FromSlash(p))
		if fi, err := os.Lstat(inDiff); err == nil && fi.IsDir() {
			continue
		}
		_, fi, ok := s.Lookup(p)
		if !ok || !fi.IsDir() {
			return fmt.Errorf("%w: /%s", ErrDestinationNotFound, p)
		}
		if err := os.Mkdir(inDiff, fi.Mode().Perm()); err != nil {
			return err
		}
		if err := copyMetadata(inDiff, fi); err != nil {
			return err
		}
	}
	return nil
}

// removeWhiteout drops a whiteout of rel from the diff, reporting whether
// there was one.
func (s Stack) removeWhiteout(rel string) bool {
	target := filepath.Join(s[0], filepath.FromSlash(rel))
	marker := filepath.Join(filepath.Dir(target), ".wh."+filepath.Base(target))
	if err := os.Remove(marker); err == nil {
		return true
	}
	if fi, err := os.Lstat(target); err == nil {
		if _, ok := layer.Whiteout(filepath.Base(target), fi); ok {
			return os.Remove(target) == nil
		}
	}
	return false
}

func writeWhiteout(target string) error {
	if layer.NativeWhiteouts() == layer.OverlayWhiteouts {
		return unix.Mknod(target, unix.S_IFCHR, 0)
	}
	return os.WriteFile(filepath.Join(filepath.Dir(target), ".wh."+filepath.Base(target)), nil, 0)
}

func markOpaque(dir string) error {
	if layer.NativeWhiteouts() == layer.OverlayWhiteouts {
		return unix.Lsetxattr(dir, "trusted.overlay.opaque", []byte("y"), 0)
	}
	return os.WriteFile(filepath.Join(dir, ".wh..wh..opq"), nil, 0)
}

func copyMetadata(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*unix.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if err := os.Chmod(p, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return setTimes(p, fi)
}

// copyTree copies a host file, symlink or directory tree to target, owned
// by the container's root, keeping modes and times.
func copyTree(src, target string) error {
	type dirTime struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dirTime
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(target, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(dst)
			if err := os.Symlink(link, dst); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, dst); err != nil {
				return err
			}
		default:
			return nil // devices, FIFOs and sockets are not copied, as with docker cp
		}
		if err := os.Lchown(dst, 0, 0); err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if fi.IsDir() {
			// Its children would change its times again: set them at the end.
			dirs = append(dirs, dirTime{dst, fi})
			return nil
		}
		return setTimes(dst, fi)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].path, dirs[i].fi); err != nil {
			return err
		}
	}
	return nil
}

func setTimes(p string, fi fs.FileInfo) error {
	ts := []unix.Timespec{unix.NsecToTimespec(fi.ModTime().UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
