package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/k3-core/k3-core/golib/ctxio"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
)

const opPush = "pushAnImage"

// storedImage is an image of the store as go-containerregistry pushes
// it: the store's own blobs (imagesrc.Stored), except that for a push of
// uncompressed layers, manifest names their gzipped copies, in extra.
type storedImage struct {
	imagesrc.Stored
	manifest []byte
	extra    map[v1.Hash]imagesrc.FileLayer
}

func (s storedImage) RawManifest() ([]byte, error) {
	if s.manifest != nil {
		return s.manifest, nil
	}
	return s.Stored.RawManifest()
}

func (s storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := s.extra[h]; ok {
		return l, nil
	}
	return s.Stored.LayerByDigest(h)
}

// tagImage(image, newName) gives a store image another name, as docker tag.
func (e *Engine) tagImage(ctx context.Context, call *Request) (any, error) {
	const op = "tagImage"
	list, err := positional(call.Args, 2)
	if err != nil {
		return nil, errcat.New(op, "InvalidTagImageParameters", err.Error(), nil)
	}
	source, _, err1 := stringParam(list[0], "image")
	target, _, err2 := stringParam(list[1], "newName")
	invalid := func(reason string) error {
		return errcat.New(op, "InvalidTagImageParameters", reason, nil).With("image", source).With("newName", target)
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, invalid(err.Error())
	}
	if source == "" || target == "" {
		return nil, invalid("image and newName are required")
	}
	if reason := checkStoreRef(source); reason != "" {
		return nil, invalid("image: " + reason)
	}
	if reason := checkDockerName(target); reason != "" {
		return nil, invalid("newName: " + reason)
	}
	ref, err := name.NewTag(target)
	if err != nil {
		return nil, invalid("newName must be a repository with an optional tag, not a digest")
	}
	st, img, ferr := e.findStoredImage(op, call.Root, source)
	if ferr != nil {
		return nil, ferr.With("newName", target)
	}
	if err := st.TagImage(img.ID, displayName(ref)); err != nil {
		return nil, errcat.New(op, "StoreFailure", err.Error(), err).With("image", source)
	}
	recordImageEvent(call.Root, "tag", img.ID, displayName(ref))
	return map[string]any{"Id": img.ID, "Tagged": displayName(ref)}, nil
}

// findStoredImage resolves a store image for op, or the documented error.
func (e *Engine) findStoredImage(op, root, ref string) (*store.Store, store.Image, *errcat.Error) {
	st, err := e.store(root)
	if err != nil {
		return nil, store.Image{}, errcat.New(op, "StoreFailure", err.Error(), err).With("image", ref)
	}
	img, err := st.FindImage(imageCandidates(ref)...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.Image{}, errcat.New(op, "ImageNotFoundLocally", fmt.Sprintf("no image %s in the local store", ref), err).With("image", ref)
	}
	if err != nil {
		return nil, store.Image{}, errcat.New(op, "StoreFailure", err.Error(), err).With("image", ref)
	}
	return st, img, nil
}

// PushProgress is a push's progress event: the bytes sent so far (the
// blobs, then the manifest) and the bytes to send, which grows as each
// upload starts.
type PushProgress struct {
	Phase   string `json:"phase"` // upload, done
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
}

// pushReporter turns go-containerregistry's update at each 32 KiB written
// into a push's first bytes at once, then about ten events a second.
type pushReporter struct {
	emit        func(any)
	last        time.Time
	sent, total int64
}

func (r *pushReporter) upload(sent, total int64) {
	r.sent, r.total = sent, total
	if !r.last.IsZero() && time.Since(r.last) < 100*time.Millisecond {
		return
	}
	r.last = time.Now()
	r.emit(PushProgress{Phase: "upload", Current: sent, Total: total})
}

func (r *pushReporter) done() {
	r.emit(PushProgress{Phase: "done", Current: r.sent, Total: r.total})
}

// pushAnImage(image, destination?, {credentials, tlsVerify, timeout}) sends
// a store image to a registry; without a destination, to the one its name says.
func (e *Engine) pushAnImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 3)
	if err != nil {
		return nil, errcat.New(opPush, "InvalidPushParameters", err.Error(), nil)
	}
	source, _, err1 := stringParam(list[0], "image")
	dest, _, err2 := stringParam(list[1], "destination")
	invalid := func(reason string) error {
		return errcat.New(opPush, "InvalidPushParameters", reason, nil).With("image", source).With("destination", dest)
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, invalid(err.Error())
	}
	if source == "" {
		return nil, invalid("image is required")
	}
	if reason := checkStoreRef(source); reason != "" {
		return nil, invalid("image: " + reason)
	}
	if dest == "" {
		dest = source
	}
	// The options share inspect's rules (credentials, tlsVerify, timeout).
	options := list[2]
	if isNull(options) {
		options = []byte(`{}`)
	}
	optsMap, ok := asObject(options)
	if !ok {
		return nil, invalid("options must be an object")
	}
	optsMap["imageName"] = jsonString(dest)
	postData, _ := json.Marshal(optsMap)
	req, _, reason := parseImageRequest(jsonString(dest), postData, "options")
	if reason != "" {
		return nil, invalid(reason)
	}
	// Held before the image is found, so its blobs stay until it is sent.
	_, hold, err := e.heldStore(call.Root)
	if err != nil {
		return nil, errcat.New(opPush, "StoreFailure", err.Error(), err).With("image", source)
	}
	defer hold.Release()
	st, img, ferr := e.findStoredImage(opPush, call.Root, source)
	if ferr != nil {
		return nil, ferr.With("destination", dest)
	}
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	opts := registry.Options{Credentials: req.credentials, Insecure: !req.tlsVerify}
	client, err := e.registries.Client(opts)
	if err != nil {
		return nil, imageFailure(opPush, fromRegistry, err)
	}
	ref, err := req.reference(client.ParseOptions())
	if err != nil {
		return nil, invalid(err.Error())
	}
	compressed, cleanup, err := compressForPush(ctx, st, img)
	if err != nil {
		return nil, imageFailure(opPush, fromLocal, err).With("image", source).With("destination", dest)
	}
	defer cleanup()
	progress := &pushReporter{emit: call.Emit}
	pushed, err := partial.CompressedToImage(compressed)
	if err == nil {
		err = client.Push(ctx, ref, pushed, progress.upload)
	}
	if err != nil {
		if registry.Classify(err).Kind == registry.Unauthorized {
			e.registries.Forget(opts)
		}
		return nil, imageFailure(opPush, fromRegistry, err).With("image", source).With("destination", dest)
	}
	digest, err := pushed.Digest()
	if err != nil {
		return nil, imageFailure(opPush, fromLocal, err)
	}
	progress.done()
	recordImageEvent(call.Root, "push", img.ID, displayName(ref))
	return map[string]any{"Digest": digest.String(), "Destination": displayName(ref)}, nil
}

// uncompressedToGzip names the gzip media type of each uncompressed one.
var uncompressedToGzip = map[types.MediaType]types.MediaType{
	types.OCIUncompressedLayer: types.OCILayer, types.DockerUncompressedLayer: types.DockerLayer,
}

// compressForPush is the image as it goes to a registry: the store's own
// blobs, except that layers kept uncompressed (a commit's) are gzipped
// first, as docker push does, in a new manifest; the config, and so the
// image ID, does not change. cleanup removes the compressed copies.
func compressForPush(ctx context.Context, st *store.Store, img store.Image) (storedImage, func(), error) {
	image := storedImage{Stored: imagesrc.Stored{Store: st, Image: img}}
	raw, err := image.RawManifest()
	if err != nil {
		return image, func() {}, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return image, func() {}, &inspect.ContentError{Reason: "malformed manifest in the store: " + err.Error()}
	}
	var tmp []string
	cleanup := func() {
		for _, f := range tmp {
			os.Remove(f)
		}
	}
	changed := false
	for i, l := range manifest.Layers {
		gzipType, ok := uncompressedToGzip[l.MediaType]
		if !ok {
			continue
		}
		file, digest, size, err := gzipBlob(ctx, st, l.Digest.String())
		if err != nil {
			cleanup()
			return image, func() {}, err
		}
		tmp = append(tmp, file)
		manifest.Layers[i] = v1.Descriptor{MediaType: gzipType, Digest: digest, Size: size}
		if image.extra == nil {
			image.extra = map[v1.Hash]imagesrc.FileLayer{}
		}
		image.extra[digest] = imagesrc.NewFileLayer(file, digest, size, gzipType)
		changed = true
	}
	if changed {
		if image.manifest, err = json.Marshal(manifest); err != nil {
			cleanup()
			return image, func() {}, err
		}
	}
	return image, cleanup, nil
}

// gzipBlob compresses a store blob into the store's staging area.
func gzipBlob(ctx context.Context, st *store.Store, blobDigest string) (string, v1.Hash, int64, error) {
	in, err := os.Open(st.BlobPath(blobDigest))
	if err != nil {
		return "", v1.Hash{}, 0, err
	}
	defer in.Close()
	out, err := st.TempFile("push-gzip-")
	if err != nil {
		return "", v1.Hash{}, 0, err
	}
	fail := func(err error) (string, v1.Hash, int64, error) {
		out.Close()
		os.Remove(out.Name())
		return "", v1.Hash{}, 0, err
	}
	hasher := sha256.New()
	counter := &byteCounter{}
	gz := pgzip.NewWriter(io.MultiWriter(out, hasher, counter))
	if _, err := io.Copy(gz, ctxio.Reader(ctx, in)); err != nil {
		return fail(err)
	}
	if err := gz.Close(); err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		return fail(err)
	}
	return out.Name(), v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hasher.Sum(nil))}, counter.n, nil
}

type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
