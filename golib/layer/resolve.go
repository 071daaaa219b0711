package layer

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// cleanName turns an archive name into a path relative to the layer root,
// "." for the root itself.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	// Trim before cleaning: Clean("/../x") is "/x", which would hide the
	// climb this check exists to refuse.
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	return p, nil
}

// openIn opens rel beneath the layer descriptor root, symlinks included,
// without leaving it.
func openIn(root int, rel string, flags int) (int, error) {
	return fsat.Open(root, rel, flags, fsat.InRoot)
}

// parentDir opens directory rel of the layer, first making it and any
// missing ancestors the way tar implies them: 0755, owned by root.
func (u *unpacker) parentDir(rel string) (int, error) {
	return u.openMaking(rel, u.impliedDir)
}

func (u *unpacker) impliedDir(up int, base, rel string) error {
	err := unix.Mkdirat(up, base, 0o755)
	if err == nil {
		err = u.chownErr(unix.Fchownat(up, base, 0, 0, unix.AT_SYMLINK_NOFOLLOW))
	}
	if err == nil {
		err = fsat.Chmod(up, base, 0o755) // mkdir obeyed the umask
	}
	return err
}

// openMaking opens directory rel of the layer, first making it and any
// missing ancestors with mkdir, which makes base in the open directory up.
func (u *unpacker) openMaking(rel string, mkdir func(up int, base, rel string) error) (int, error) {
	fd, err := openIn(u.root, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT || rel == "." {
		return fd, err
	}
	up, err := u.openMaking(path.Dir(rel), mkdir)
	if err != nil {
		return -1, err
	}
	err = mkdir(up, path.Base(rel), rel)
	unix.Close(up)
	// EEXIST: something not a directory is there, such as a dangling
	// symlink; the open below reports what is wrong with it.
	if err != nil && err != unix.EEXIST {
		return -1, err
	}
	return openIn(u.root, rel, unix.O_PATH|unix.O_DIRECTORY)
}

// clear makes room for a new entry named base in dir.
func (u *unpacker) clear(dir int, base, rel string) error {
	st, err := fsat.Lstat(dir, base)
	if err != nil || st == nil {
		return err
	}
	return u.remove(dir, base, rel, st)
}

// remove deletes base, whose status is st, with everything beneath it.
func (u *unpacker) remove(dir int, base, rel string, st *unix.Stat_t) error {
	if !fsat.IsDir(st) {
		return unix.Unlinkat(dir, base, 0)
	}
	for k := range u.dirs {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			delete(u.dirs, k)
		}
	}
	return fsat.RemoveAll(dir, base)
}

// chownErr forgives an unprivileged process for not being able to give
// files away.
func (u *unpacker) chownErr(err error) error {
	if err == unix.EPERM && !u.privileged {
		return nil
	}
	return err
}
