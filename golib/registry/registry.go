// Package registry owns k3-core's conversations with image registries: one
// long-lived client per (credentials, TLS) pair so that connections, pings
// and bearer tokens are reused across calls, the choice of credentials, and
// reading manifests and config blobs with their digests verified.
//
// The protocol itself is go-containerregistry's; this package only decides
// how its pieces are shared and bounds every read.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/safego"
)

// Credentials chooses how to authenticate. The zero value means "use the
// user's Docker/Podman auth files and credential helpers".
type Credentials struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	RegistryToken string `json:"registryToken"`
}

func (c Credentials) authOption() remote.Option {
	switch {
	case c.RegistryToken != "":
		return remote.WithAuth(&authn.Bearer{Token: c.RegistryToken})
	case c.Username != "" || c.Password != "":
		return remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password})
	default:
		return remote.WithAuthFromKeychain(authn.DefaultKeychain)
	}
}

// key identifies a client without keeping the secret itself in a map key.
// Each field is length-prefixed: joined with a separator, the user "a\x00b"
// with password "c" and the user "a" with password "b\x00c" would share a
// client, and so each other's credentials and tokens.
func (c Credentials) key() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%d:%s%d:%s",
		len(c.Username), c.Username, len(c.Password), c.Password, len(c.RegistryToken), c.RegistryToken)))
	return hex.EncodeToString(sum[:])
}

// Options are the per-call choices that select a client.
type Options struct {
	Credentials Credentials
	// Insecure skips TLS verification and allows plain HTTP (tlsVerify: false).
	Insecure bool
}

// Pool hands out shared clients. Its zero value is not usable; use NewPool.
type Pool struct {
	mu      sync.Mutex
	clients map[string]*Client
	secure  http.RoundTripper
	relaxed http.RoundTripper
}

// NewPool makes a pool whose clients share two HTTP transports: one that
// verifies TLS and one that does not.
func NewPool() *Pool {
	return &Pool{
		clients: map[string]*Client{},
		secure:  newTransport(false),
		relaxed: newTransport(true),
	}
}

func newTransport(insecure bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Many calls in flight to one registry is the normal case for a Node app;
	// the default of 2 idle connections per host would redial constantly.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the caller asked for tlsVerify: false
	}
	return t
}

// Client reads from and writes to registries with one set of credentials.
type Client struct {
	puller  *remote.Puller
	pusher  *remote.Pusher
	options []remote.Option // what made them, for a pusher that reports progress
	// transport is the one in options, for a pusher that reports progress.
	transport http.RoundTripper
	insecure  bool
}

func (opts Options) key() string {
	return fmt.Sprintf("%s/%t", opts.Credentials.key(), opts.Insecure)
}

// Forget drops the client for opts, so the next call resolves credentials
// and tokens afresh: after a 401 the user may well have just logged in.
func (p *Pool) Forget(opts Options) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, opts.key())
}

// Client returns the shared client for opts, making it on first use.
func (p *Pool) Client(opts Options) (*Client, error) {
	k := opts.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[k]; ok {
		return c, nil
	}
	rt := p.secure
	if opts.Insecure {
		rt = p.relaxed
	}
	options := []remote.Option{
		remote.WithTransport(rt),
		opts.Credentials.authOption(),
		// Callers decide about retries (the documents show retry loops);
		// go-containerregistry's default would wait 1 s and 3 s on a closed port.
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithUserAgent("k3-core"),
	}
	puller, err := remote.NewPuller(options...)
	if err != nil {
		return nil, err
	}
	pusher, err := remote.NewPusher(options...)
	if err != nil {
		return nil, err
	}
	c := &Client{puller: puller, pusher: pusher, options: options, transport: rt, insecure: opts.Insecure}
	p.clients[k] = c
	return c, nil
}

// ParseOptions returns the name options for parsing references this client reads.
func (c *Client) ParseOptions() []name.Option {
	if c.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Head returns the descriptor a tag or digest currently points at, with one
// HEAD request. A 404 is repeated as a GET so the caller learns whether the
// repository or the manifest is unknown (HEAD responses carry no body); so is
// any other failure that is not a connection failure, since some registries
// answer HEAD without the digest header or with non-standard codes.
func (c *Client) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	d, err := c.puller.Head(ctx, ref)
	if err == nil {
		return d, nil
	}
	if Classify(err).Kind != Unreachable {
		got, gerr := c.puller.Get(ctx, ref)
		if gerr != nil {
			return nil, gerr
		}
		return &got.Descriptor, nil
	}
	return nil, err
}

// Manifest fetches the manifest a digest reference names; go-containerregistry
// verifies its bytes against the digest.
func (c *Client) Manifest(ctx context.Context, ref name.Digest) (*remote.Descriptor, error) {
	return c.puller.Get(ctx, ref)
}

// maxConfigSize bounds a config blob read into memory; real ones are a few KB.
const maxConfigSize = 16 << 20

// Blob reads a small blob (an image config) and checks it against its digest.
func (c *Client) Blob(ctx context.Context, ref name.Digest) ([]byte, error) {
	layer, err := c.puller.Layer(ctx, ref)
	if err != nil {
		return nil, err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, err
	}
	// Always close: an open blob reader holds one of the client's download slots.
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", ref.DigestStr(), maxConfigSize)
	}
	if err := content.Verify("blob "+ref.DigestStr(), data, ref.DigestStr()); err != nil {
		return nil, err
	}
	return data, nil
}

// Tags lists a repository's tags.
func (c *Client) Tags(ctx context.Context, repo name.Repository) ([]string, error) {
	return c.puller.List(ctx, repo)
}

// Source reads the image one reference names through a client; it satisfies
// inspect.Source.
type Source struct {
	Client *Client
	Ref    name.Reference
}

// Resolve costs one HEAD, for a digest as for a tag: the registry's answer
// to this client's credentials for this repository is what lets a cached
// result be served (inspect.Cacheable).
func (s Source) Resolve(ctx context.Context) (v1.Descriptor, error) {
	d, err := s.Client.Head(ctx, s.Ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, nil
}

// Scope is the registry and repository, and whether TLS is verified: a
// result read over verified TLS is not served to a call whose HEAD an
// impostor could have answered.
func (s Source) Scope() string {
	return fmt.Sprintf("%s insecure=%t", s.Ref.Context().Name(), s.Client.insecure)
}

// Manifest fetches the manifest with digest d from the reference's repository.
func (s Source) Manifest(ctx context.Context, d v1.Hash) ([]byte, types.MediaType, error) {
	desc, err := s.Client.Manifest(ctx, s.Ref.Context().Digest(d.String()))
	if err != nil {
		return nil, "", err
	}
	return desc.Manifest, desc.MediaType, nil
}

// Config fetches the config blob with digest d.
func (s Source) Config(ctx context.Context, d v1.Hash) ([]byte, error) {
	return s.Client.Blob(ctx, s.Ref.Context().Digest(d.String()))
}

// Push uploads an image (the blobs the registry lacks, then the manifest)
// under ref. progress, when not nil, is called with the bytes sent so far
// and the bytes to send, on one goroutine, in order.
func (c *Client) Push(ctx context.Context, ref name.Reference, img v1.Image, progress func(sent, total int64)) error {
	if progress == nil {
		return c.pusher.Push(ctx, ref, img)
	}
	// go-containerregistry reports progress per pusher, so a push that
	// reports it has a pusher of its own (its token is fetched afresh).
	// Each read of an upload's body sends an update, and net/http may read
	// a body after its request has returned (when it was canceled): the
	// bodies are read through bodies, which ends them before updates is
	// closed, so that no read sends on the closed channel and crashes the
	// process.
	updates := make(chan v1.Update, 64)
	bodies := &endingBodies{next: c.transport}
	pusher, err := remote.NewPusher(append(slices.Clip(c.options), remote.WithTransport(bodies), remote.WithProgress(updates))...)
	if err != nil {
		return err
	}
	reported := make(chan struct{})
	safego.Go(func() error {
		for u := range updates {
			if u.Error == nil {
				progress(u.Complete, u.Total)
			}
		}
		return nil
	}, func(error) { close(reported) })
	err = pusher.Push(ctx, ref, img)
	bodies.end()
	close(updates)
	<-reported
	return err
}

// endingBodies is a transport whose request bodies can be ended: a read
// after end fails, and end waits for the reads under way.
type endingBodies struct {
	next  http.RoundTripper
	mu    sync.RWMutex
	ended bool
}

var errPushEnded = errors.New("the push has ended")

func (e *endingBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = endingBody{ReadCloser: r.Body, of: e}
	}
	return e.next.RoundTrip(r)
}

func (e *endingBodies) end() {
	e.mu.Lock()
	e.ended = true
	e.mu.Unlock()
}

type endingBody struct {
	io.ReadCloser
	of *endingBodies
}

func (b endingBody) Read(p []byte) (int, error) {
	b.of.mu.RLock()
	defer b.of.mu.RUnlock()
	if b.of.ended {
		return 0, errPushEnded
	}
	return b.ReadCloser.Read(p)
}

// Get fetches the manifest a tag or digest names, with its descriptor.
func (c *Client) Get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	return c.puller.Get(ctx, ref)
}
