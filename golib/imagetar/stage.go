package imagetar

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/ctxio"
	"github.com/k3-core/k3-core/golib/safego"
)

// stagedLayer is a layer's uncompressed tar, checked against its diff ID,
// in an unnamed file that vanishes with its descriptor, even on a kill.
type stagedLayer struct {
	file *os.File
	size int64
	done chan struct{} // closed once the layer is staged or failed
	err  error
}

// wait blocks until the layer is staged.
func (s *stagedLayer) wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyTo writes the staged layer to w in chunks, so that a cancelled call
// stops between them; into a plain file the kernel copies (copy_file_range).
func (s *stagedLayer) copyTo(ctx context.Context, w io.Writer, copied func(int64)) error {
	const chunk = 8 << 20
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	for left := s.size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.Copy(w, &io.LimitedReader{R: s.file, N: min(chunk, left)})
		left -= n
		copied(n)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("staged layer shrank by %d bytes", left)
		}
	}
	return nil
}

// maxParallelLayers bounds the layers fetched and inflated at once: enough
// to keep every core and the network busy, few enough not to thrash a disk.
const maxParallelLayers = 4

// stager fetches, inflates and verifies layers in the background, in the
// order the archive needs them, because a tar member's header needs its
// size before its bytes and only inflating tells the size. The archive is
// written while later layers are still being staged.
type stager struct {
	layers    map[digest.Digest]*stagedLayer
	cancel    context.CancelFunc
	group     *safego.Group
	scheduled chan struct{} // closed once every layer has been handed to group

	mu    sync.Mutex
	first error // the failure that stopped the others
}

// failed stops the other layers after the first failure, and reports that
// failure for each layer it stopped, rather than their cancellation.
func (st *stager) failed(parent context.Context, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return parent.Err() // the caller cancelled
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.first == nil {
		st.first = err
		st.cancel()
		return err
	}
	return st.first
}

func startStaging(ctx context.Context, dir string, order []digest.Digest, layers map[digest.Digest]v1.Layer) (*stager, error) {
	st := &stager{layers: map[digest.Digest]*stagedLayer{}}
	for _, diffID := range order {
		if _, ok := st.layers[diffID]; ok {
			continue
		}
		f, err := unnamedFile(dir)
		if err != nil {
			st.close()
			return nil, err
		}
		st.layers[diffID] = &stagedLayer{file: f, done: make(chan struct{})}
	}
	parent := ctx
	ctx, st.cancel = context.WithCancel(ctx)
	st.group = safego.NewGroup()
	st.group.SetLimit(maxParallelLayers)
	st.scheduled = make(chan struct{})
	started := map[digest.Digest]bool{}
	safego.Go(func() error {
		for _, diffID := range order {
			if started[diffID] {
				continue
			}
			started[diffID] = true
			layer, staged := layers[diffID], st.layers[diffID]
			st.group.Go(func() error {
				err := safego.Run(func() error { return stageOne(ctx, staged, diffID, layer) })
				staged.err = st.failed(parent, err)
				close(staged.done)
				return nil
			})
		}
		return nil
	}, func(err error) {
		defer close(st.scheduled)
		if err == nil {
			return
		}
		// The scheduler panicked: the layers it never started fail with
		// its panic, so nothing waits for them.
		for diffID, staged := range st.layers {
			if !started[diffID] {
				staged.err = st.failed(parent, err)
				close(staged.done)
			}
		}
	})
	return st, nil
}

// stagedBytes adds up the sizes of the layers staged so far.
func (st *stager) stagedBytes() int64 {
	var total int64
	for _, s := range st.layers {
		select {
		case <-s.done:
			total += s.size
		default:
		}
	}
	return total
}

// waitAll waits for every layer, for layouts that need every size first.
func (st *stager) waitAll(ctx context.Context) error {
	for _, s := range st.layers {
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// close stops what is still running, waits until every goroutine of the
// stager has ended, and frees every staged file.
func (st *stager) close() {
	if st.cancel != nil {
		st.cancel()
		<-st.scheduled
		st.group.Wait()
	}
	for _, s := range st.layers {
		s.file.Close()
	}
}

func stageOne(ctx context.Context, s *stagedLayer, diffID digest.Digest, layer v1.Layer) error {
	compressed, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer compressed.Close()
	plain, err := archive.Decompress(ctxio.Reader(ctx, compressed))
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
	done    atomic.Int64
	total   int64
	totalOf func() int64 // a total that grows, when there is one
	phase   string
	emit    func(Event)
}

// add reports at most one event per MiB, so a large image does not flood
// the caller's event loop.
func (p *progressCounter) add(n int64) {
	now := p.done.Add(n)
	total := p.total
	if p.totalOf != nil {
		total = p.totalOf()
	}
	if p.emit != nil && (now>>20 != (now-n)>>20 || now == total) {
		p.emit(Event{Phase: p.phase, Current: now, Total: total})
	}
}
