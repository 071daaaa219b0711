package content

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
)

// FileWriter writes a blob into a file and digests it on another goroutine
// as it is written. Large members are copied file to file inside the kernel
// (copy_file_range), several at once into their places in the blob, while
// the caller goes on laying out the next ones; the digest follows the part
// of the blob that is complete, mapped from the page cache rather than read.
// A commit's tar so costs less than a tar -cf of the same files, which reads
// each byte into memory and writes it out again, one file after another.
type FileWriter struct {
	f   *os.File
	buf []byte // small writes (tar headers), gathered...
	at  int64  // ...to go at this offset
	end int64  // the blob's length so far, copies in flight included

	mu       sync.Mutex
	changed  *sync.Cond
	inFlight map[int64]int64 // start -> end of copies still running
	written  int64           // everything before this that is not in flight is in the file
	closing  bool
	err      error

	copies   chan copyJob
	copiers  sync.WaitGroup
	hashed   chan error
	digester digest.Digester
}

type copyJob struct {
	src    *os.File
	offset int64
	size   int64
}

const (
	gatherSize   = 256 << 10
	hashChunk    = 4 << 20
	asyncCopyMin = 128 << 10 // smaller members are read into the gathered bytes
	copiers      = 2
)

// NewFileWriter starts writing at the start of f; Close must be called.
func NewFileWriter(f *os.File) *FileWriter {
	fw := &FileWriter{f: f, buf: make([]byte, 0, gatherSize), inFlight: map[int64]int64{},
		copies: make(chan copyJob, 16), hashed: make(chan error, 1), digester: digest.Canonical.Digester()}
	fw.changed = sync.NewCond(&fw.mu)
	for i := 0; i < copiers; i++ {
		fw.copiers.Add(1)
		safego.Go(fw.copier, func(err error) {
			fw.fail(err)
			fw.copiers.Done()
		})
	}
	safego.Go(fw.hash, func(err error) {
		if err != nil {
			fw.fail(err) // the writes stop early when the hasher panicked
		}
		fw.hashed <- err
	})
	return fw
}

func (fw *FileWriter) fail(err error) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err == nil && err != nil {
		fw.err = err
		fw.changed.Broadcast()
	}
	return fw.err
}

func (fw *FileWriter) failed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.err
}

func (fw *FileWriter) Write(p []byte) (int, error) {
	if err := fw.failed(); err != nil {
		return 0, err
	}
	if len(fw.buf)+len(p) > cap(fw.buf) {
		if err := fw.flush(); err != nil {
			return 0, err
		}
	}
	if len(fw.buf) == 0 {
		fw.at = fw.end
	}
	fw.buf = append(fw.buf, p...)
	fw.end += int64(len(p))
	if len(fw.buf) >= cap(fw.buf) {
		return len(p), fw.flush()
	}
	return len(p), nil
}

// flush writes the gathered bytes at their offset.
func (fw *FileWriter) flush() error {
	if len(fw.buf) == 0 {
		return nil
	}
	_, err := fw.f.WriteAt(fw.buf, fw.at)
	fw.buf = fw.buf[:0]
	if err != nil {
		return fw.fail(err)
	}
	fw.advance()
	return nil
}

// advance tells the hasher that everything up to end, but copies in flight, is written.
func (fw *FileWriter) advance() {
	fw.mu.Lock()
	fw.written = fw.end
	fw.changed.Broadcast()
	fw.mu.Unlock()
}

// CopyFile appends n bytes of src, file to file, and closes src; a large
// one is copied in the background and its failure reported by a later call
// or by Close.
func (fw *FileWriter) CopyFile(src *os.File, n int64) error {
	if n < asyncCopyMin {
		// Small files are read straight into the gathered bytes: one
		// syscall each, where copying would cost two and a pipe.
		defer src.Close()
		return fw.gather(src, n)
	}
	if err := fw.flush(); err != nil {
		src.Close()
		return err
	}
	job := copyJob{src: src, offset: fw.end, size: n}
	fw.end += n
	fw.mu.Lock()
	fw.inFlight[job.offset] = job.offset + n
	fw.mu.Unlock()
	fw.advance()
	fw.copies <- job
	return fw.failed()
}

func (fw *FileWriter) gather(src *os.File, n int64) error {
	if err := fw.failed(); err != nil {
		return err
	}
	if int64(len(fw.buf))+n > int64(cap(fw.buf)) {
		if err := fw.flush(); err != nil {
			return err
		}
	}
	if len(fw.buf) == 0 {
		fw.at = fw.end
	}
	start := len(fw.buf)
	fw.buf = fw.buf[:start+int(n)]
	if got, err := io.ReadFull(src, fw.buf[start:]); err != nil {
		fw.buf = fw.buf[:start]
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = fmt.Errorf("%s has %d bytes, not the %d it had when it was listed", src.Name(), got, n)
		}
		return fw.fail(err)
	}
	fw.end += n
	return nil
}

// copier copies the jobs it is given until there are no more. A copy that
// fails, or panics, fails the blob; the copier goes on taking the jobs,
// without copying them, so that CopyFile never waits for it.
func (fw *FileWriter) copier() error {
	for job := range fw.copies {
		var err error
		if fw.failed() == nil {
			err = safego.Run(func() error { return copyRange(fw.f, job) })
		}
		job.src.Close()
		fw.mu.Lock()
		delete(fw.inFlight, job.offset)
		if err != nil && fw.err == nil {
			fw.err = err
		}
		fw.changed.Broadcast()
		fw.mu.Unlock()
	}
	return nil
}

// copyRange copies a whole source file into the blob at its offset, inside
// the kernel where the file systems allow it.
func copyRange(dst *os.File, job copyJob) error {
	srcOff, dstOff := int64(0), job.offset
	for srcOff < job.size {
		n, err := unix.CopyFileRange(int(job.src.Fd()), &srcOff, int(dst.Fd()), &dstOff, int(job.size-srcOff), 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
			return copyByReading(dst, job, srcOff)
		}
		if err != nil {
			return &os.PathError{Op: "copy_file_range", Path: job.src.Name(), Err: err}
		}
		if n == 0 {
			return fmt.Errorf("%s has %d bytes, not the %d it had when it was listed", job.src.Name(), srcOff, job.size)
		}
	}
	return nil
}

func copyByReading(dst *os.File, job copyJob, from int64) error {
	buf := make([]byte, 1<<20)
	for off := from; off < job.size; {
		n, err := job.src.ReadAt(buf[:min(int64(len(buf)), job.size-off)], off)
		if n > 0 {
			if _, werr := dst.WriteAt(buf[:n], job.offset+off); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF && off < job.size {
			return fmt.Errorf("%s has %d bytes, not the %d it had when it was listed", job.src.Name(), off, job.size)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// complete is the length of the blob's prefix that is entirely written:
// up to the first copy still in flight. The caller holds mu.
func (fw *FileWriter) complete() int64 {
	done := fw.written
	for start := range fw.inFlight {
		done = min(done, start)
	}
	return done
}

// hash digests the blob's complete prefix as it grows, a chunk at a time,
// until the blob is closed or fails.
func (fw *FileWriter) hash() error {
	var pos int64
	for {
		fw.mu.Lock()
		for {
			if fw.err != nil {
				err := fw.err
				fw.mu.Unlock()
				return err
			}
			done := fw.complete()
			if fw.closing && done == pos && len(fw.inFlight) == 0 {
				fw.mu.Unlock()
				return nil
			}
			if done-pos >= hashChunk || (fw.closing && done > pos) {
				break
			}
			fw.changed.Wait()
		}
		upTo := fw.complete()
		fw.mu.Unlock()
		if err := fw.hashRange(pos, upTo); err != nil {
			return fw.fail(err)
		}
		pos = upTo
	}
}

// hashRange hashes bytes [from, to) of the file straight from the page
// cache, mapped rather than copied.
func (fw *FileWriter) hashRange(from, to int64) error {
	if to <= from {
		return nil
	}
	page := int64(os.Getpagesize())
	start := from &^ (page - 1)
	data, err := unix.Mmap(int(fw.f.Fd()), start, int(to-start), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	fw.digester.Hash().Write(data[from-start:])
	return unix.Munmap(data)
}

// Close waits for every copy and returns the digest and size of the blob,
// or the first error.
func (fw *FileWriter) Close() (digest.Digest, int64, error) {
	flushErr := fw.flush()
	close(fw.copies)
	fw.copiers.Wait()
	fw.mu.Lock()
	fw.closing = true
	fw.changed.Broadcast()
	fw.mu.Unlock()
	hashErr := <-fw.hashed
	for _, err := range []error{flushErr, fw.failed(), hashErr} {
		if err != nil {
			return "", 0, err
		}
	}
	return fw.digester.Digest(), fw.end, nil
}
