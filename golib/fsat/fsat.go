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
	return retryEINTR(func() (int, error) {
		return unix.Openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
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

// Chmod sets the mode of base in dir, never following a symlink there.
func Chmod(dir int, base string, mode uint32) error {
	err := unix.Fchmodat(dir, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	return chmodPinned(dir, base, mode)
}

// chmodPinned is Chmod for kernels before 6.6, which lack fchmodat2: plain
// fchmodat follows a final symlink, and checking for one first leaves a
// moment to swap one in. So the name is pinned to its inode first, and the
// mode set on that inode.
func chmodPinned(dir int, base string, mode uint32) error {
	fd, st, err := openPath(dir, base)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if IsSymlink(&st) {
		return unix.ELOOP
	}
	return unix.Fchmodat(unix.AT_FDCWD, fdPath(fd), mode, 0)
}

// ErrChanged is a file that is no longer the one a walk saw: the name was
// pointed at another file, perhaps a device or a FIFO, since it was listed.
var ErrChanged = errors.New("the file changed while it was being read")

// OpenRegular opens base in dir for reading, provided it is still the
// regular file want (from an earlier lstat of it) describes; otherwise it
// returns ErrChanged. It is how a walk of a tree a running container can
// change reads a file's contents: the container may rename a host device
// or a FIFO over the name between the lstat and the open.
//
// The name is pinned by an O_PATH descriptor and checked before anything
// is opened for reading, so no device driver's open ever runs; the reopen
// is non-blocking in case of a lease, then made blocking for the reads.
func OpenRegular(dir int, base string, want *unix.Stat_t) (int, error) {
	pinned, st, err := openPath(dir, base)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pinned)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != want.Dev || st.Ino != want.Ino {
		return -1, ErrChanged
	}
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(fdPath(pinned), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, err
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openPath pins base in dir, not following a symlink there, to a
// descriptor that can name its inode but not read it, and stats it.
func openPath(dir int, base string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(dir, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	return fd, st, nil
}

// fdPath names the file open as fd: the kernel resolves it to that very
// inode, whatever its name now points at.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if err != unix.EINTR {
			return fd, err
		}
	}
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
	return fdPath(dir) + "/" + base
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
