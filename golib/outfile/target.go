package outfile

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// UnusableError says why no output may be written at a path: it names a
// socket, or lies on a special file system. It is the caller's invalid
// parameter, not a fault of the disk.
type UnusableError struct {
	Path   string
	Reason string
}

func (e *UnusableError) Error() string { return e.Reason }

// kind is what an output path names, as far as writing to it goes.
type kind int

const (
	replaced    kind = iota // nothing, a regular file or a symlink
	fifo                    // written into as a stream
	charDevice              // written into as a stream
	blockDevice             // written into as a stream, and can be synced
	socket                  // a socket the caller serves (Connect), written into as a stream
)

// specialFileSystems are the kernel's interfaces dressed as file systems:
// they hold no user files, and statfs reports them as having no room.
var specialFileSystems = map[int64]string{
	unix.PROC_SUPER_MAGIC:     "proc",
	unix.SYSFS_MAGIC:          "sysfs",
	unix.CGROUP_SUPER_MAGIC:   "cgroup",
	unix.CGROUP2_SUPER_MAGIC:  "cgroup2",
	unix.DEBUGFS_MAGIC:        "debugfs",
	unix.TRACEFS_MAGIC:        "tracefs",
	unix.SECURITYFS_MAGIC:     "securityfs",
	unix.SELINUX_MAGIC:        "selinuxfs",
	unix.SMACK_MAGIC:          "smackfs",
	unix.BPF_FS_MAGIC:         "bpf",
	unix.PSTOREFS_MAGIC:       "pstore",
	unix.EFIVARFS_MAGIC:       "efivarfs",
	unix.BINFMTFS_MAGIC:       "binfmt_misc",
	unix.NSFS_MAGIC:           "nsfs",
	unix.RDTGROUP_SUPER_MAGIC: "resctrl",
	0x62656570:                "configfs", // CONFIGFS_MAGIC, not in x/sys/unix
	0x65735543:                "fusectl",  // FUSE_CTL_SUPER_MAGIC
	0x19800202:                "mqueue",   // MQUEUE_MAGIC
}

// Check returns an *UnusableError when no output may be written at target.
// Other problems (a missing directory, no permission) are left for Create
// to meet and report.
func Check(target string) error {
	_, err := kindOf(target)
	return err
}

// IsStream tells whether target is an existing device or FIFO, which an
// output is written into rather than replacing.
func IsStream(target string) bool {
	k, err := kindOf(target)
	return err == nil && k != replaced
}

// Room returns the bytes an unprivileged writer may still use for target's
// file. known is false when that cannot be told: target is a device or a
// FIFO (its directory's file system is not where the bytes go), or the file
// system does not answer.
func Room(target string) (available uint64, known bool) {
	if IsStream(target) {
		return 0, false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(target), &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

func kindOf(target string) (kind, error) {
	dir := filepath.Dir(target)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		if name, ok := specialFileSystems[int64(st.Type)]; ok {
			return 0, &UnusableError{Path: target, Reason: fmt.Sprintf(
				"%s is on a special file system (%s); choose a path on a regular file system", dir, name)}
		}
	}
	fi, err := os.Lstat(target)
	if err != nil {
		return replaced, nil
	}
	switch mode := fi.Mode(); {
	case mode&fs.ModeSocket != 0:
		return 0, &UnusableError{Path: target, Reason: fmt.Sprintf(
			"%s is a socket, which cannot be opened for writing; choose a file, a device or a FIFO", target)}
	case mode&fs.ModeNamedPipe != 0:
		return fifo, nil
	case mode&fs.ModeCharDevice != 0:
		return charDevice, nil
	case mode&fs.ModeDevice != 0:
		return blockDevice, nil
	}
	return replaced, nil
}

// fifoPoll is how often opening a FIFO is retried while it has no reader.
const fifoPoll = 20 * time.Millisecond

// openExisting opens a device or FIFO for writing, as it is: no truncation,
// no temporary file. A FIFO is opened without blocking, so that waiting for
// its reader ends when ctx does; the descriptor stays non-blocking, which
// lets the runtime's poller wait for the reader on each write, and a write
// deadline stop a write the reader no longer takes.
func openExisting(ctx context.Context, target string, k kind) (*os.File, error) {
	flags := unix.O_WRONLY | unix.O_CLOEXEC
	if k == fifo {
		flags |= unix.O_NONBLOCK
	}
	for {
		fd, err := unix.Open(target, flags, 0)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), target), nil
		case err == unix.EINTR:
			continue
		case err != unix.ENXIO || k != fifo:
			return nil, &os.PathError{Op: "open", Path: target, Err: err}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(fifoPoll):
		}
	}
}

// streamWriter reports a write cut short by the call's end as that end.
type streamWriter struct {
	ctx context.Context
	f   *os.File
}

func (w *streamWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.ctx.Err() != nil {
		return n, w.ctx.Err()
	}
	return n, err
}

// socketBuffer is the send buffer asked for a stream's socket (the kernel
// doubles it): room for a few of the engine's 1 MiB writes, so that each
// goes in one call while the reader is busy, rather than in pieces of the
// default 208 KiB with a wait for the reader between them.
const socketBuffer = 2 << 20

// dialUnix connects to the Unix socket at path. The descriptor is made
// non-blocking once connected, so that, as for a FIFO, the runtime's poller
// waits for the reader on each write and a write deadline can stop it.
func dialUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the stream could not be reached: %w", &os.PathError{Op: "connect", Path: path, Err: err})
	}
	// Best effort: the kernel caps the size at net.core.wmem_max.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
