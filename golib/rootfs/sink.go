package rootfs

import (
	"context"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

const (
	bufSize = 1 << 20
	// Files smaller than this are read into the buffer: a read costs less
	// than the flush and copy_file_range call that would replace it.
	zeroCopyMin = 1 << 62
	// Large copies go in steps of this, checking ctx and reporting progress.
	chunk = 32 << 20
)

var zeroBlocks [1024]byte

// errShrank is a file that ended before the size its header promised; the
// stream cannot continue, as the header is already written.
var errShrank = errors.New("file shrank while being archived")

// sink is the tar stream. Small pieces (headers, padding, small files) gather
// in a buffer and go out in large writes, so a small file costs one read and
// no write call of its own; large files go from file to file with
// copy_file_range when w is a regular file. Measuring counts and writes
// nothing.
type sink struct {
	w       io.Writer
	file    *os.File // w, while copy_file_range can write to it
	buf     []byte
	n       int64 // bytes of the stream so far
	measure bool
}

func newSink(w io.Writer) *sink {
	s := &sink{w: w, buf: make([]byte, 0, bufSize)}
	if f, ok := w.(*os.File); ok && copyTarget(f) {
		s.file = f
	}
	return s
}

// copyTarget reports whether copy_file_range can write to f: only a regular
// file not opened for appending. To pipes and the like, Go's own fallback
// would copy through a fresh 32 KiB buffer per file; the sink's buffer is
// better.
func copyTarget(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	flags := unix.O_APPEND
	rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	return err == nil && flags&unix.O_APPEND == 0
}

// Write adds p to the stream; archive/tar renders headers through it.
func (s *sink) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.measure {
		return len(p), nil
	}
	if len(s.buf)+len(p) > cap(s.buf) {
		if err := s.flush(); err != nil {
			return 0, err
		}
		if len(p) > cap(s.buf) {
			return s.w.Write(p)
		}
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

func (s *sink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}

// content adds size bytes read from fd, then the padding to a whole block.
func (s *sink) content(ctx context.Context, fd int, size int64, progress func(int64)) error {
	var err error
	switch {
	case s.measure:
		s.n += size
		progress(size)
	case s.file != nil && size >= zeroCopyMin:
		err = s.copyRange(ctx, fd, size, progress)
	default:
		err = s.read(ctx, fd, size, progress)
	}
	if err != nil {
		return err
	}
	_, err = s.Write(zeroBlocks[:-size&511])
	return err
}

// read reads fd straight into the buffer: the one copy a write needs anyway.
func (s *sink) read(ctx context.Context, fd int, size int64, progress func(int64)) error {
	for size > 0 {
		if len(s.buf) == cap(s.buf) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.flush(); err != nil {
				return err
			}
		}
		room := s.buf[len(s.buf):int64(len(s.buf))+min(size, int64(cap(s.buf)-len(s.buf)))]
		n, err := unix.Read(fd, room)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return errShrank
		}
		s.buf = s.buf[:len(s.buf)+n]
		s.n += int64(n)
		size -= int64(n)
		progress(int64(n))
	}
	return nil
}

// copyRange copies with copy_file_range. Where the kernel cannot (another
// file system type, say) it falls back to read, for this file and the rest.
func (s *sink) copyRange(ctx context.Context, fd int, size int64, progress func(int64)) error {
	if err := s.flush(); err != nil {
		return err
	}
	rc, err := s.file.SyscallConn()
	if err != nil {
		return err
	}
	copied := int64(0)
	var copyErr error
	err = rc.Control(func(dst uintptr) {
		for copied < size && copyErr == nil {
			n, err := unix.CopyFileRange(fd, nil, int(dst), nil, int(min(size-copied, chunk)), 0)
			switch {
			case err == unix.EINTR:
			case err != nil:
				copyErr = err
			case n == 0:
				copyErr = errShrank
			default:
				copied += int64(n)
				s.n += int64(n)
				progress(int64(n))
				copyErr = ctx.Err()
			}
		}
	})
	if err != nil {
		return err
	}
	if copied == 0 && cannotCopyRange(copyErr) {
		s.file = nil
		return s.read(ctx, fd, size, progress)
	}
	return copyErr
}

func cannotCopyRange(err error) bool {
	switch err {
	case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EPERM, unix.EBADF:
		return true
	}
	return false
}

// end writes the two zero blocks that close a tar, and flushes.
func (s *sink) end() error {
	if _, err := s.Write(zeroBlocks[:]); err != nil {
		return err
	}
	return s.flush()
}
