package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
)

func init() {
	operations["tagImage"] = (*Engine).tagImage
	operations["pushAnImage"] = (*Engine).pushAnImage
}

// storedImage is an image of the store seen as a v1.Image, so that
// go-containerregistry can push it: its manifest, config and compressed
// layers are the store's blobs, byte for byte, so digests do not change.
type storedImage struct {
	st  *store.Store
	img store.Image
}

func (s storedImage) RawConfigFile() ([]byte, error) { return s.verified(s.img.ID) }
func (s storedImage) RawManifest() ([]byte, error)   { return s.verified(s.img.ManifestDigest) }
func (s storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(s.img.ManifestMediaType), nil
}

func (s storedImage) verified(digest string) ([]byte, error) {
	raw, err := os.ReadFile(s.st.BlobPath(digest))
	if err != nil {
		return nil, err
	}
	return raw, content.Verify("blob "+digest, raw, digest)
}

func (s storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range s.img.Layers {
		if l.BlobDigest == h.String() {
			return storedLayer{path: s.st.BlobPath(l.BlobDigest), digest: h, size: l.BlobSize, mediaType: types.MediaType(l.MediaType)}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not a layer of image %s", h, s.img.ID)
}

type storedLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (l storedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l storedLayer) Size() (int64, error)                { return l.size, nil }
func (l storedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the blob; the registry checks it against its digest.
func (l storedLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }

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

var pushClasses = withClasses(registryClasses, map[imageFault]string{
	faultNotFound: "PushImageFailure", faultBadContent: "PushImageFailure", faultStore: "StoreFailure",
})

// pushAnImage(image, destination?, {credentials, tlsVerify, timeout}) sends
// a store image to a registry; without a destination, to the one its name says.
func (e *Engine) pushAnImage(ctx context.Context, call *Request) (any, error) {
	const op = "pushAnImage"
	list, err := positional(call.Args, 3)
	if err != nil {
		return nil, errcat.New(op, "InvalidPushParameters", err.Error(), nil)
	}
	source, _, err1 := stringParam(list[0], "image")
	dest, _, err2 := stringParam(list[1], "destination")
	invalid := func(reason string) error {
		return errcat.New(op, "InvalidPushParameters", reason, nil).With("image", source).With("destination", dest)
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, invalid(err.Error())
	}
	if source == "" {
		return nil, invalid("image is required")
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
	st, img, ferr := e.findStoredImage(op, call.Root, source)
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
		return nil, imageFailure(op, pushClasses, err)
	}
	ref, err := req.reference(client.ParseOptions())
	if err != nil {
		return nil, invalid(err.Error())
	}
	pushed, err := partial.CompressedToImage(storedImage{st: st, img: img})
	if err == nil {
		err = client.Push(ctx, ref, pushed)
	}
	if err != nil {
		if registry.Classify(err).Kind == registry.Unauthorized {
			e.registries.Forget(opts)
		}
		return nil, imageFailure(op, pushClasses, err).With("image", source).With("destination", dest)
	}
	return map[string]any{"Digest": img.ManifestDigest, "Destination": displayName(ref)}, nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
