// Package outfile owns writing a user's output file atomically: the bytes go
// to an unnamed file in the target's directory (O_TMPFILE), or, where the
// file system cannot make one, to a hidden temporary file beside it, and
// appear under the target's name only once complete. After any failure, or a
// kill, nothing is left under the target's name and a file already there is
// untouched. A durable output is also on disk before it gets its name, so it
// survives a power loss too (at the price of waiting for the disk, which
// docker, podman and GNU tar never do). It also picks compression by the
// name's ending.
package outfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// Compression is what Create wraps the file in.
type Compression string

const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// CompressionFor reads a path's ending: .tar.gz and .tgz are gzip, .tar.zst
// (and .tzst) zstd, anything else plain.
func CompressionFor(path string) Compression {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return Gzip
	case strings.HasSuffix(lower, ".tar.zst"), strings.HasSuffix(lower, ".tzst"):
		return Zstd
	}
	return None
}

// File is an output in progress.
type File struct {
	target    string
	durable   bool
	file      *os.File
	out       io.Writer
	named     string // the temporary name, when O_TMPFILE was not available
	encoder   io.WriteCloser
	committed bool
}

// writeBehindWindow is how much is written before the kernel is asked to
// start putting it on disk.
const writeBehindWindow = 16 << 20

// writeBehind starts writeback of each window as soon as it is written and
// waits for the window before it, so the fsync that makes the output
// durable finds almost nothing left to do, and dirty pages stay bounded
// however large the output.
type writeBehind struct {
	f       *os.File
	written int64
	started int64 // writeback requested up to here
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err == nil && w.written-w.started >= writeBehindWindow {
		fd := int(w.f.Fd())
		// Best effort: a file system without sync_file_range just fsyncs later.
		_ = unix.SyncFileRange(fd, w.started, w.written-w.started, unix.SYNC_FILE_RANGE_WRITE)
		if w.started >= writeBehindWindow {
			prev := w.started - writeBehindWindow
			_ = unix.SyncFileRange(fd, prev, writeBehindWindow, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		}
		w.started = w.written
	}
	return n, err
}

// Create starts an output for target, compressed as its name says.
func Create(target string, durable bool) (*File, error) {
	dir := filepath.Dir(target)
	f := &File{target: target, durable: durable}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	switch {
	case err == nil:
		f.file = os.NewFile(uintptr(fd), target)
	case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
		tmp, cerr := os.CreateTemp(dir, "."+filepath.Base(target)+".k3tmp-*")
		if cerr != nil {
			return nil, cerr
		}
		if cerr := tmp.Chmod(0o644 &^ umask()); cerr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, cerr
		}
		f.file, f.named = tmp, tmp.Name()
	default:
		return nil, &os.PathError{Op: "create", Path: target, Err: err}
	}
	f.out = f.file
	if durable {
		f.out = &writeBehind{f: f.file}
	}
	switch CompressionFor(target) {
	case Gzip:
		gz := pgzip.NewWriter(f.out)
		// Blocks of 1 MiB on every core: the .tar.gz export is CPU-bound.
		if err := gz.SetConcurrency(1<<20, 2*numCPU()); err != nil {
			f.Abort()
			return nil, err
		}
		f.encoder = gz
	case Zstd:
		enc, err := zstd.NewWriter(f.out)
		if err != nil {
			f.Abort()
			return nil, err
		}
		f.encoder = enc
	}
	return f, nil
}

// Writer is where the content goes.
func (f *File) Writer() io.Writer {
	if f.encoder != nil {
		return f.encoder
	}
	return f.out
}

// Commit finishes the file and gives it the target's name, replacing any
// file there in one rename; a durable file is synced first, its directory after.
func (f *File) Commit() error {
	if f.encoder != nil {
		if err := f.encoder.Close(); err != nil {
			f.Abort()
			return err
		}
	}
	if f.durable {
		if err := f.file.Sync(); err != nil {
			f.Abort()
			return err
		}
	}
	tmp := f.named
	if tmp == "" {
		// Give the unnamed file a hidden name first: linkat cannot replace.
		tmp = filepath.Join(filepath.Dir(f.target), fmt.Sprintf(".%s.k3tmp-%d", filepath.Base(f.target), os.Getpid()))
		os.Remove(tmp)
		procPath := fmt.Sprintf("/proc/self/fd/%d", f.file.Fd())
		if err := unix.Linkat(unix.AT_FDCWD, procPath, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW); err != nil {
			f.Abort()
			return &os.LinkError{Op: "link", Old: procPath, New: tmp, Err: err}
		}
	}
	if err := os.Rename(tmp, f.target); err != nil {
		os.Remove(tmp)
		f.Abort()
		return err
	}
	f.committed = true
	f.file.Close()
	if f.durable {
		syncDir(filepath.Dir(f.target))
	}
	return nil
}

// Abort discards the output; the target is untouched. Safe to call twice.
func (f *File) Abort() {
	if f.committed {
		return
	}
	f.committed = true
	f.file.Close()
	if f.named != "" {
		os.Remove(f.named)
	}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// umask reads the process's umask from /proc: setting and restoring it
// would race with every other thread of the host process creating files.
func umask() os.FileMode {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o022
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return os.FileMode(m)
			}
		}
	}
	return 0o022
}

func numCPU() int { return runtime.NumCPU() }

// Available returns the bytes an unprivileged writer may still use on the
// file system holding dir.
func Available(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
