// Package pull owns bringing an image into the store: its layers are
// downloaded in parallel, checked against their digests while they stream,
// unpacked in order (a layer may hardlink into the ones below it) while later
// ones still download, checked again against their diff IDs, and only then
// put in place and recorded. Layers the store already has are not fetched
// again. A pull holds the store (store.Hold) from its first staged byte to
// its image record, so no collection takes what it has placed meanwhile.
package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/ctxio"
	"github.com/k3-core/k3-core/golib/imageconfig"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/safego"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

// Source is an image to pull and the names to record it under.
type Source struct {
	Image v1.Image
	// Names are the repo:tag names the image gets (may be empty).
	Names []string
	// RepoDigests are repo@digest references it was pulled by.
	RepoDigests []string
}

// Event is a progress report.
type Event struct {
	Phase   string `json:"phase"` // resolved, download, unpack, exists, done
	Layer   string `json:"layer,omitempty"`
	Index   int    `json:"index"`
	Count   int    `json:"count"`
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
}

// Options tune a pull.
type Options struct {
	// Jobs is how many layers download at once; 0 means 3.
	Jobs     int
	Progress func(Event)
}

// Result describes the pulled image, docker-style.
type Result struct {
	ID           string   `json:"Id"`
	Digest       string   `json:"Digest"`
	RepoTags     []string `json:"RepoTags"`
	RepoDigests  []string `json:"RepoDigests"`
	Architecture string   `json:"Architecture"`
	Os           string   `json:"Os"`
	Size         int64    `json:"Size"`
	Layers       int      `json:"Layers"`
	LayersPulled int      `json:"LayersPulled"`
	LayersReused int      `json:"LayersReused"`
}

// ContentError reports a layer or config that is not what it claims to be.
type ContentError struct{ Reason string }

func (e *ContentError) Error() string { return e.Reason }

// Into pulls src into st.
func Into(ctx context.Context, st *store.Store, src Source, opts Options) (Result, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = 3
	}
	progress := throttled(opts.Progress)
	plan, err := makePlan(src.Image)
	if err != nil {
		return Result{}, err
	}
	hold, err := st.Hold()
	if err != nil {
		return Result{}, err
	}
	defer hold.Release()
	if err := st.PutBlob(plan.configDigest, plan.rawConfig); err != nil {
		return Result{}, err
	}
	if err := st.PutBlob(plan.manifestDigest, plan.rawManifest); err != nil {
		return Result{}, err
	}
	progress(Event{Phase: "resolved", Count: len(plan.layers)}, true)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every missing layer streams at once (up to Jobs): download, verify,
	// inflate and unpack in one pass, so both cores work and nothing waits
	// for a whole blob. Results are taken in order, so a layer that needed a
	// lower one (a hardlink into it) can be unpacked again once that is done.
	results := make([]chan error, len(plan.layers))
	slots := make(chan struct{}, opts.Jobs)
	var wg sync.WaitGroup
	// On any return, stop the others first, then wait: no goroutine may go
	// on writing into the store after Into returns.
	defer func() {
		cancel()
		wg.Wait()
	}()
	reused := 0
	for i := range plan.layers {
		l := &plan.layers[i]
		// A committed layer may be recorded before its directory exists;
		// a layer unpacked from another blob (a docker save archive's plain
		// tar) is fetched for this image's own blob, which it records.
		if have, err := st.HasLayer(l.ChainID); err != nil {
			return Result{}, err
		} else if have && dirExists(st.LayerDir(l.ChainID)) && fileExists(st.BlobPath(l.BlobDigest)) {
			l.present = true
			reused++
			progress(Event{Phase: "exists", Layer: l.BlobDigest, Index: i, Count: len(plan.layers)}, true)
			continue
		}
		results[i] = make(chan error, 1)
	}
	// Slots are handed out bottom layer first, so the layers others may
	// hardlink into are the first to finish.
	scheduling := make(chan error, 1) // the scheduler's panic, if it has one
	wg.Add(1)
	safego.Go(func() error {
		for i := range plan.layers {
			l := &plan.layers[i]
			if l.present {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				results[i] <- ctx.Err()
				continue
			}
			lower := lowerDirs(st, plan.layers[:i])
			wg.Add(1)
			safego.Go(func() error {
				return fetch(ctx, st, l, lower, func(phase string, n, total int64) {
					progress(Event{Phase: phase, Layer: l.BlobDigest, Index: i, Count: len(plan.layers), Current: n, Total: total}, false)
				})
			}, func(err error) {
				<-slots
				results[i] <- err
				wg.Done()
			})
		}
		return nil
	}, func(err error) {
		scheduling <- err
		wg.Done()
	})
	for i := range plan.layers {
		l := &plan.layers[i]
		if l.present {
			continue
		}
		var err error
		select {
		case err = <-results[i]:
		case err = <-scheduling:
			if err == nil { // every layer was handed out: wait for this one
				err = <-results[i]
			}
		}
		if errors.Is(err, errNeedsLower) {
			err = unpackBlob(ctx, st, l, lowerDirs(st, plan.layers[:i]), nil)
		}
		if err != nil {
			return Result{}, err
		}
	}

	img := store.Image{
		ID: plan.configDigest, ManifestDigest: plan.manifestDigest, ManifestMediaType: plan.mediaType,
		Created: plan.created, Size: plan.size, Architecture: plan.architecture, OS: plan.os,
		Names: src.Names, RepoDigests: src.RepoDigests,
	}
	for _, l := range plan.layers {
		img.Layers = append(img.Layers, l.Layer)
	}
	if err := st.AddImage(img); err != nil {
		return Result{}, err
	}
	progress(Event{Phase: "done", Count: len(plan.layers)}, true)
	return Result{
		ID: img.ID, Digest: plan.manifestDigest, RepoTags: nonNil(src.Names), RepoDigests: nonNil(src.RepoDigests),
		Architecture: plan.architecture, Os: plan.os, Size: plan.size, Layers: len(plan.layers),
		LayersPulled: len(plan.layers) - reused, LayersReused: reused,
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// throttled limits progress events to about ten a second, except the ones
// marked as always worth sending.
func throttled(fn func(Event)) func(Event, bool) {
	if fn == nil {
		return func(Event, bool) {}
	}
	var mu sync.Mutex
	var last time.Time
	return func(e Event, always bool) {
		mu.Lock()
		defer mu.Unlock()
		if !always && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		fn(e)
	}
}

type plannedLayer struct {
	store.Layer
	source  v1.Layer
	present bool
}

type plan struct {
	configDigest, manifestDigest, mediaType string
	rawConfig, rawManifest                  []byte
	created, architecture, os               string
	size                                    int64
	layers                                  []plannedLayer
}

func makePlan(img v1.Image) (plan, error) {
	var p plan
	var err error
	if p.rawManifest, err = img.RawManifest(); err != nil {
		return p, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return p, err
	}
	p.mediaType = string(mt)
	p.manifestDigest = digest.FromBytes(p.rawManifest).String()
	if p.rawConfig, err = img.RawConfigFile(); err != nil {
		return p, err
	}
	cfg, err := imageconfig.Parse(p.rawConfig)
	if err != nil {
		return p, &ContentError{Reason: "malformed image config: " + err.Error()}
	}
	manifest, err := img.Manifest()
	if err != nil {
		return p, &ContentError{Reason: "malformed manifest: " + err.Error()}
	}
	p.configDigest = manifest.Config.Digest.String()
	if err := content.Verify("config", p.rawConfig, p.configDigest); err != nil {
		return p, err
	}
	if !cfg.Created.IsZero() {
		p.created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	p.architecture, p.os = cfg.Architecture, cfg.OS
	layers, err := img.Layers()
	if err != nil {
		return p, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) || len(layers) != len(manifest.Layers) {
		return p, &ContentError{Reason: fmt.Sprintf("the manifest has %d layers but the config %d diff IDs", len(manifest.Layers), len(cfg.RootFS.DiffIDs))}
	}
	parent := ""
	for i, l := range layers {
		diffID := cfg.RootFS.DiffIDs[i].String()
		chainID := diffID
		if parent != "" {
			chainID = digest.FromString(parent + " " + diffID).String()
		}
		desc := manifest.Layers[i]
		p.size += desc.Size
		p.layers = append(p.layers, plannedLayer{source: l, Layer: store.Layer{
			ChainID: chainID, DiffID: diffID, Parent: parent, BlobDigest: desc.Digest.String(),
			BlobSize: desc.Size, MediaType: string(desc.MediaType),
		}})
		parent = chainID
	}
	return p, nil
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// errNeedsLower: a layer hardlinks to a file of a lower layer that was not
// unpacked yet; its blob is complete and verified, to unpack again later.
var errNeedsLower = errors.New("layer needs a lower layer first")

func lowerDirs(st *store.Store, below []plannedLayer) []string {
	var dirs []string
	for j := len(below) - 1; j >= 0; j-- {
		dirs = append(dirs, st.LayerDir(below[j].ChainID))
	}
	return dirs
}

// fetch downloads a layer and unpacks it as the bytes arrive. The blob is
// kept (verified against its digest) and the layer recorded only when both
// its digest and its diff ID match.
func fetch(ctx context.Context, st *store.Store, l *plannedLayer, lower []string, report func(phase string, n, total int64)) error {
	if _, err := os.Stat(st.BlobPath(l.BlobDigest)); err == nil {
		return unpackBlob(ctx, st, l, lower, report) // a previous pull verified and kept it
	}
	want, err := digest.Parse(l.BlobDigest)
	if err != nil || !want.Algorithm().Available() {
		return &ContentError{Reason: fmt.Sprintf("layer digest %q is not usable", l.BlobDigest)}
	}
	rc, err := l.source.Compressed()
	if err != nil {
		return err
	}
	// Closing releases the registry client's download slot, also on error.
	defer rc.Close()
	blob, err := st.TempFile("blob-")
	if err != nil {
		return err
	}
	defer os.Remove(blob.Name())
	defer blob.Close()
	verifier := want.Verifier()
	counter := &countingWriter{onBytes: func(n int64) { report("download", n, l.BlobSize) }}
	raw := io.TeeReader(ctxio.Reader(ctx, rc), io.MultiWriter(blob, verifier, counter))

	staged, unpackErr := unpackStream(ctx, st, l, raw, lower, report)
	if staged != "" {
		defer treeops.RemoveAll(staged)
	}
	// Whatever unpacking made of it, the whole blob must arrive and be checked.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return err
	}
	if !verifier.Verified() {
		return &ContentError{Reason: fmt.Sprintf("digest mismatch: layer %s does not match its content", l.BlobDigest)}
	}
	if err := blob.Sync(); err != nil {
		return err
	}
	if err := st.PlaceBlob(l.BlobDigest, blob.Name()); err != nil {
		return err
	}
	if unpackErr != nil {
		return unpackErr
	}
	// Only now are both the digest and the diff ID known to match.
	return st.PlaceLayer(l.Layer, staged)
}

// UnpackBlob unpacks a layer whose blob is already in the store into its
// directory, checks its diff ID, and records it; lower are the directories
// of the layers below, nearest first. It returns the layer with its size.
func UnpackBlob(ctx context.Context, st *store.Store, l store.Layer, lower []string) (store.Layer, error) {
	hold, err := st.Hold()
	if err != nil {
		return l, err
	}
	defer hold.Release()
	planned := &plannedLayer{Layer: l}
	err = unpackBlob(ctx, st, planned, lower, nil)
	return planned.Layer, err
}

// unpackBlob unpacks a layer from its stored blob, verified when it was
// stored, and puts it in place.
func unpackBlob(ctx context.Context, st *store.Store, l *plannedLayer, lower []string, report func(string, int64, int64)) error {
	f, err := os.Open(st.BlobPath(l.BlobDigest))
	if err != nil {
		return err
	}
	defer f.Close()
	staged, err := unpackStream(ctx, st, l, f, lower, report)
	if staged != "" {
		defer treeops.RemoveAll(staged)
	}
	if err != nil {
		return err
	}
	return st.PlaceLayer(l.Layer, staged)
}

// unpackStream inflates a layer stream into a staging directory and checks
// its diff ID; it returns the staging directory (for the caller to remove,
// and, once the blob's digest is checked too, to put in place).
func unpackStream(ctx context.Context, st *store.Store, l *plannedLayer, compressed io.Reader, lower []string, report func(string, int64, int64)) (string, error) {
	if report == nil {
		report = func(string, int64, int64) {}
	}
	tarStream, err := archive.Decompress(compressed)
	if err != nil {
		return "", &ContentError{Reason: fmt.Sprintf("layer %s: %v", l.BlobDigest, err)}
	}
	// Closed before the caller drains the rest: it may inflate ahead.
	defer tarStream.Close()
	diffDigester := digest.Canonical.Digester()
	tee := io.TeeReader(tarStream, diffDigester.Hash())

	staging, err := st.TempDir("layer-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return staging, err
	}
	// Layers below this one may still be unpacking: link into those that are
	// done; a hardlink into another one sends this layer round again.
	var available []string
	for _, dir := range lower {
		if _, err := os.Stat(dir); err == nil {
			available = append(available, dir)
		}
	}
	stats, err := treeops.Unpack(ctx, tee, staging, available, func(n int64) { report("unpack", n, 0) })
	if errors.Is(err, fs.ErrNotExist) {
		if len(available) < len(lower) {
			return staging, errNeedsLower
		}
		// Every lower layer was there: the layer names what does not exist
		// (a hardlink to nowhere, a path through a dangling symlink).
		return staging, fmt.Errorf("layer %s: %w: %v", l.BlobDigest, layer.ErrUnsafePath, err)
	}
	if err != nil {
		return staging, fmt.Errorf("layer %s: %w", l.BlobDigest, err)
	}
	// The diff ID covers the whole stream, including the tar's end padding.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return staging, &ContentError{Reason: fmt.Sprintf("layer %s: %v", l.BlobDigest, err)}
	}
	if got := diffDigester.Digest().String(); got != l.DiffID {
		return staging, &ContentError{Reason: fmt.Sprintf("digest mismatch: layer %s uncompresses to %s, but the config says %s", l.BlobDigest, got, l.DiffID)}
	}
	l.Size = stats.Bytes
	return staging, nil
}

type countingWriter struct {
	n       int64
	onBytes func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.onBytes(c.n)
	return len(p), nil
}
