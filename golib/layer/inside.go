package layer

import (
	"os"

	"golang.org/x/sys/unix"
)

// OpenInside opens name inside the directory root as a process whose root
// directory is root would: every symlink, absolute or climbing with "..",
// resolves inside root, and the kernel refuses to leave it. flags are
// open(2) flags. Others than the unpacker use it to read a tree an image
// author controls, such as a container's /etc/passwd.
func OpenInside(root, name string, flags int) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := openIn(dir, name, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
