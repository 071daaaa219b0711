// Package outfile owns writing a user's output file, and the rule for what
// an output path may name.
//
// Nothing there, a regular file or a symlink: the bytes go to an unnamed file
// in the target's directory (O_TMPFILE), or, where the file system cannot
// make one, to a hidden temporary file beside it, and appear under the
// target's name only once complete. After any failure, or a kill, nothing is
// left under the target's name and a file already there is untouched; a
// symlink is replaced, the file it points to never written. A durable output
// is also on disk before it gets its name, so it survives a power loss too
// (at the price of waiting for the disk, which docker, podman and GNU tar
// never do).
//
// A character or block device or a FIFO: written into as a stream, as
// `docker export -o` and GNU tar do, since replacing /dev/null or a pipe a
// script reads with a regular file would break the host. Nothing is renamed
// or removed, so a failure leaves whatever was already written.
//
// A socket, or a path on a special file system (/proc, /sys, cgroup,
// debugfs, ...): refused with an *UnusableError before anything is written.
//
// A third kind of output is a Unix socket the caller serves (Connect): the
// JS layer's socket for a Node Writable. It is written into as a stream;
// the socket's flow control makes a slow reader block the writes, so
// nothing piles up. Nothing is named, no room is checked, and durable has
// no meaning: what the reader does with the bytes is its affair.
//
// It also picks compression by the name's ending, or as told for a socket.
package outfile

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

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
	ctx       context.Context // the call's: once it ends, Commit refuses
	target    string
	durable   bool
	file      *os.File
	out       io.Writer
	named     string // the temporary name, when O_TMPFILE was not available
	encoder   io.WriteCloser
	committed bool
	names     kind        // what target names: a device or FIFO is written into
	stopWatch func() bool // ends the watch that stops a stream's writes with ctx
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

// WriteBehind writes into f, from its current end, as Create's files are
// written: for a writer given a file straight from Direct.
func WriteBehind(f *os.File) io.Writer { return &writeBehind{f: f} }

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

// Create starts an output for target, compressed as its name says. ctx
// bounds the wait for a FIFO's reader and any write the reader does not take.
func Create(ctx context.Context, target string, durable bool) (*File, error) {
	k, err := kindOf(target)
	if err != nil {
		return nil, err
	}
	f := &File{ctx: ctx, target: target, durable: durable, names: k}
	if k == replaced {
		err = f.createUnnamed()
	} else {
		err = f.openStream(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := f.compress(CompressionFor(target)); err != nil {
		return nil, err
	}
	return f, nil
}

// Connect starts an output into the Unix socket at socketPath, compressed
// as c says. ctx ends a write the reader does not take.
func Connect(ctx context.Context, socketPath string, c Compression) (*File, error) {
	file, err := dialUnix(socketPath)
	if err != nil {
		return nil, err
	}
	f := &File{ctx: ctx, target: socketPath, names: socket}
	f.writeInto(ctx, file)
	if err := f.compress(c); err != nil {
		return nil, err
	}
	return f, nil
}

// compress wraps the output in c's encoder.
func (f *File) compress(c Compression) error {
	switch c {
	case Gzip:
		gz := pgzip.NewWriter(f.out)
		// Blocks of 1 MiB on every core: the .tar.gz export is CPU-bound.
		if err := gz.SetConcurrency(1<<20, 2*numCPU()); err != nil {
			f.Abort()
			return err
		}
		f.encoder = gz
	case Zstd:
		enc, err := zstd.NewWriter(f.out)
		if err != nil {
			f.Abort()
			return err
		}
		f.encoder = enc
	}
	return nil
}

// createUnnamed starts the file that Commit will name target.
func (f *File) createUnnamed() error {
	dir := filepath.Dir(f.target)
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	switch {
	case err == nil:
		f.file = os.NewFile(uintptr(fd), f.target)
	case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
		tmp, cerr := os.CreateTemp(dir, "."+filepath.Base(f.target)+".k3tmp-*")
		if cerr != nil {
			return cerr
		}
		if cerr := tmp.Chmod(0o644 &^ umask()); cerr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return cerr
		}
		f.file, f.named = tmp, tmp.Name()
	default:
		return &os.PathError{Op: "create", Path: f.target, Err: err}
	}
	f.out = f.file
	if f.durable {
		f.out = &writeBehind{f: f.file}
	}
	return nil
}

// openStream opens the device or FIFO at target to write into it. Only a
// block device keeps what it is given across a power loss, so only its
// writes are synced when durable.
func (f *File) openStream(ctx context.Context) error {
	file, err := openExisting(ctx, f.target, f.names)
	if err != nil {
		return err
	}
	f.writeInto(ctx, file)
	f.durable = f.durable && f.names == blockDevice
	if f.durable {
		f.out = &writeBehind{f: file}
	}
	return nil
}

// writeInto makes file, a device, FIFO or socket, the stream written into;
// a write it does not take stops when ctx ends.
func (f *File) writeInto(ctx context.Context, file *os.File) {
	f.file = file
	f.stopWatch = context.AfterFunc(ctx, func() { file.SetWriteDeadline(time.Now()) })
	f.out = &streamWriter{ctx: ctx, f: file}
}

// Writer is where the content goes.
func (f *File) Writer() io.Writer {
	if f.encoder != nil {
		return f.encoder
	}
	return f.out
}

// Direct is the file the content goes into unchanged (no compression, not
// a stream), for a writer that writes it itself; nil for any other output.
func (f *File) Direct() *os.File {
	if f.encoder != nil || f.names != replaced {
		return nil
	}
	return f.file
}

// Commit finishes the file and gives it the target's name, replacing any
// file there in one rename; a durable file is synced first, its directory
// after. A device or FIFO target just has the last bytes written into it.
// Once the ctx given to Create or Connect has ended, Commit aborts instead
// and returns ctx's error.
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
	// The last moment an abort stops the output: after it, the output is
	// whole and named, and the caller is told so.
	if err := f.ctx.Err(); err != nil {
		f.Abort()
		return err
	}
	if f.names != replaced {
		f.committed = true
		f.stopWatch()
		return f.file.Close()
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

// Abort discards the output; the target is untouched, except that a device
// or FIFO keeps what was already written into it. Safe to call twice.
func (f *File) Abort() {
	if f.committed {
		return
	}
	f.committed = true
	if f.stopWatch != nil {
		f.stopWatch()
	}
	f.file.Close()
	f.stopEncoder()
	if f.named != "" {
		os.Remove(f.named)
	}
}

// stopEncoder ends the compressor's goroutines, once the file is closed so
// that none of them can be left waiting on a write. Neither encoder's
// Close does it on every path: pgzip's returns at once after a failed
// write, leaving its writer goroutine blocked for ever, and zstd's keeps
// its workers after an error. Both Resets stop everything and wait.
func (f *File) stopEncoder() {
	if enc, ok := f.encoder.(interface{ Reset(io.Writer) }); ok {
		enc.Reset(io.Discard)
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
