package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the descriptor-relative primitives every write goes
// through. The rule they keep: a path of more than one component is only
// ever resolved by openat2 with resolveFlags; every other syscall gets a
// directory descriptor and a single component it does not follow.

// resolveFlags makes symlinks resolve as if the layer directory were "/", so
// nothing resolves outside it, and refuses /proc magic links, which could
// jump anywhere.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

var errNoOpenat2 = errors.New("openat2 is unavailable: unpacking a layer needs Linux 5.6 or later")

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
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(root, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		// The kernel asks for a retry when a rename or mount raced the walk.
		case (err == unix.EAGAIN || err == unix.EINTR) && tries < 64:
			continue
		case err == unix.ENOSYS:
			return -1, errNoOpenat2
		}
		return -1, err
	}
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
		err = chmodAt(up, base, 0o755) // mkdir obeyed the umask
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

// lstatAt returns the status of base in dir, or nil when there is none.
func lstatAt(dir int, base string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// clear makes room for a new entry named base in dir.
func (u *unpacker) clear(dir int, base, rel string) error {
	st, err := lstatAt(dir, base)
	if err != nil || st == nil {
		return err
	}
	return u.remove(dir, base, rel, st)
}

// remove deletes base, whose status is st, with everything beneath it.
func (u *unpacker) remove(dir int, base, rel string, st *unix.Stat_t) error {
	if !isDir(st) {
		return unix.Unlinkat(dir, base, 0)
	}
	for k := range u.dirs {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			delete(u.dirs, k)
		}
	}
	return removeAllAt(dir, base)
}

// removeAllAt deletes base in dir and, if it is a directory, its contents,
// never following a symlink.
func removeAllAt(dir int, base string) error {
	err := unix.Unlinkat(dir, base, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	fd, err := unix.Openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	for _, n := range names {
		if err != nil {
			break
		}
		err = removeAllAt(fd, n)
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, base, unix.AT_REMOVEDIR)
}

// chmodAt sets the mode of base in dir, which the caller knows is not a
// symlink.
func chmodAt(dir int, base string, mode uint32) error {
	err := unix.Fchmodat(dir, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	// Kernels before 6.6 lack fchmodat2, and plain fchmodat follows a final
	// symlink: check there is none rather than trust the caller.
	st, err := lstatAt(dir, base)
	if err != nil {
		return err
	}
	if st == nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return unix.Fchmodat(dir, base, mode, 0)
}

// chownErr forgives an unprivileged process for not being able to give
// files away.
func (u *unpacker) chownErr(err error) error {
	if err == unix.EPERM && !u.privileged {
		return nil
	}
	return err
}
