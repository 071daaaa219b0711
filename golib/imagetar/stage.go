package imagetar

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/content"
)

// stagedLayer is a layer's uncompressed tar, checked against its diff ID,
// in an unnamed file that vanishes with its descriptor, even on a kill.
type stagedLayer struct {
	file *os.File
	size int64
}

func (s *stagedLayer) open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(s.file, 0, s.size)), nil
}

// maxParallelLayers bounds the layers fetched and inflated at once: enough
// to keep every core and the network busy, few enough not to thrash a disk.
const maxParallelLayers = 4

// stageLayers fetches, inflates and verifies every layer at once, because
// a tar member's header needs its size before its bytes and only inflating
// tells the size; the archive is then written from the staged files in order.
func stageLayers(ctx context.Context, dir string, layers map[digest.Digest]v1.Layer) (map[digest.Digest]*stagedLayer, error) {
	staged := make(map[digest.Digest]*stagedLayer, len(layers))
	files := make([]*stagedLayer, 0, len(layers))
	for diffID := range layers {
		f, err := unnamedFile(dir)
		if err != nil {
			closeStaged(files)
			return nil, err
		}
		s := &stagedLayer{file: f}
		staged[diffID] = s
		files = append(files, s)
	}
	group, gctx := errgroup.WithContext(ctx)
	group.SetLimit(maxParallelLayers)
	for diffID, layer := range layers {
		s := staged[diffID]
		group.Go(func() error { return stageOne(gctx, s, diffID, layer) })
	}
	if err := group.Wait(); err != nil {
		closeStaged(files)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return staged, nil
}

func stageOne(ctx context.Context, s *stagedLayer, diffID digest.Digest, layer v1.Layer) error {
	compressed, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer compressed.Close()
	plain, err := archive.Decompress(&contextReader{ctx: ctx, r: compressed})
	if err != nil {
		return fmt.Errorf("layer %s cannot be decompressed: %w", diffID, err)
	}
	defer plain.Close()
	if !diffID.Algorithm().Available() {
		return fmt.Errorf("layer %s: digest algorithm %s is not supported", diffID, diffID.Algorithm())
	}
	verifier := diffID.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(s.file, verifier.Hash()), plain)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if got := verifier.Digest(); got != diffID {
		return &content.DigestMismatchError{What: "uncompressed layer", Want: diffID.String(), Got: got.String()}
	}
	s.size = n
	return nil
}

func closeStaged(files []*stagedLayer) {
	for _, s := range files {
		s.file.Close()
	}
}

// unnamedFile opens a file with no name in dir (O_TMPFILE), or one whose
// name is removed at once where the file system cannot.
func unnamedFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), dir+"/(staged layer)"), nil
	}
	f, err := os.CreateTemp(dir, ".k3-layer-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// contextReader stops a download when the call is cancelled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifiedReader fails at the end of a blob whose bytes do not match its digest.
type verifiedReader struct {
	r        io.ReadCloser
	want     digest.Digest
	digester digest.Digester
	what     string
}

func newVerifiedReader(r io.ReadCloser, want digest.Digest, what string) (io.ReadCloser, error) {
	if !want.Algorithm().Available() {
		r.Close()
		return nil, fmt.Errorf("%s: digest algorithm %s is not supported", what, want.Algorithm())
	}
	return &verifiedReader{r: r, want: want, digester: want.Algorithm().Digester(), what: what}, nil
}

func (v *verifiedReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.digester.Hash().Write(p[:n])
	if err == io.EOF {
		if got := v.digester.Digest(); got != v.want {
			return n, &content.DigestMismatchError{What: v.what, Want: v.want.String(), Got: got.String()}
		}
	}
	return n, err
}

func (v *verifiedReader) Close() error { return v.r.Close() }

// progressCounter adds up bytes from several goroutines.
type progressCounter struct {
	done  atomic.Int64
	total int64
	phase string
	emit  func(Event)
}

// add reports at most one event per MiB, so a large image does not flood
// the caller's event loop.
func (p *progressCounter) add(n int64) {
	now := p.done.Add(n)
	if p.emit != nil && (now>>20 != (now-n)>>20 || now == p.total) {
		p.emit(Event{Phase: p.phase, Current: now, Total: p.total})
	}
}
