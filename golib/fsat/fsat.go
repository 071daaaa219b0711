// Package fsat owns the descriptor-relative file primitives that every
// change to a tree someone else controls goes through: a layer being
// unpacked, a container's writable layer or its mounted root. The rule they
// keep: a path of more than one component is only ever resolved by openat2
// beneath a root descriptor, with symlinks resolved as if that root were "/"
// (or refused); every other syscall gets a directory descriptor and a single
// component it does not follow.
package fsat

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Resolve flags for Open.
const (
	// InRoot resolves symlinks as if the root descriptor were "/", so
	// nothing resolves outside it, and refuses /proc magic links, which
	// could jump anywhere.
	InRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	// NoSymlinks refuses any symlink on the way: for a path already
	// resolved, a symlink there now means someone raced the walk.
	NoSymlinks = InRoot | unix.RESOLVE_NO_SYMLINKS
)

// ErrNoOpenat2 is returned on kernels without openat2.
var ErrNoOpenat2 = errors.New("openat2 is unavailable: this needs Linux 5.6 or later")

// Open opens rel beneath the directory descriptor root, never leaving it;
// resolve is InRoot or NoSymlinks.
func Open(root int, rel string, flags int, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(root, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		// The kernel asks for a retry when a rename or mount raced the walk.
		case (err == unix.EAGAIN || err == unix.EINTR) && tries < 64:
			continue
		case err == unix.ENOSYS:
			return -1, ErrNoOpenat2
		}
		return -1, err
	}
}

// OpenDir opens the directory base of dir for reading, not following a
// symlink there.
func OpenDir(dir int, base string) (int, error) {
	for {
		fd, err := unix.Openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Lstat returns the status of base in dir, or nil when there is none.
func Lstat(dir int, base string) (*unix.Stat_t, error) {
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

// IsDir reports whether st is a directory's.
func IsDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// IsSymlink reports whether st is a symlink's.
func IsSymlink(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }

// RemoveAll deletes base in dir and, if it is a directory, its contents,
// never following a symlink. A name that is not there is not an error.
func RemoveAll(dir int, base string) error {
	err := unix.Unlinkat(dir, base, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	fd, err := OpenDir(dir, base)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	for _, n := range names {
		if err != nil {
			break
		}
		err = RemoveAll(fd, n)
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, base, unix.AT_REMOVEDIR)
}

// Chmod sets the mode of base in dir, which the caller knows is not a
// symlink.
func Chmod(dir int, base string, mode uint32) error {
	err := unix.Fchmodat(dir, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	// Kernels before 6.6 lack fchmodat2, and plain fchmodat follows a final
	// symlink: check there is none rather than trust the caller.
	st, err := Lstat(dir, base)
	if err != nil {
		return err
	}
	if st == nil || IsSymlink(st) {
		return unix.ELOOP
	}
	return unix.Fchmodat(dir, base, mode, 0)
}

// Readlink returns the target of the symlink base in dir.
func Readlink(dir int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, base, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Path names base in dir for the few calls that take only a path, such as
// the l*xattr family for a symlink or device, which cannot be opened: the
// kernel reaches dir through its descriptor and then looks up base alone,
// so no other component is walked again.
func Path(dir int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + base
}

// OpenInside opens name inside the directory at root as a process whose root
// directory is root would: every symlink, absolute or climbing with "..",
// resolves inside root, and the kernel refuses to leave it. It serves
// readers of a tree an image author controls, such as a container's
// /etc/passwd.
func OpenInside(root, name string, flags int) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := Open(dir, name, flags, InRoot)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
