package imagesrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/store"
)

// Stored is an image of the local store (the "k3" transport), read from the
// store's blobs: as an inspect.Source for inspection, and as go-containerregistry's
// partial.CompressedImageCore (see StoredImage) for save and push. Every
// manifest and config it returns is verified against its digest; layers
// stream from their blobs for the reader to verify.
type Stored struct {
	Store *store.Store
	Image store.Image
}

// StoredImage is the store image as a v1.Image.
func StoredImage(st *store.Store, img store.Image) (v1.Image, error) {
	return partial.CompressedToImage(Stored{Store: st, Image: img})
}

// verified reads a blob and checks it against its digest; a blob that
// cannot be read is an *fs.PathError.
func (s Stored) verified(digest string) ([]byte, error) {
	raw, err := os.ReadFile(s.Store.BlobPath(digest))
	if err != nil {
		return nil, err
	}
	return raw, content.Verify("blob "+digest, raw, digest)
}

// RawConfigFile, RawManifest, MediaType and LayerByDigest make Stored a
// partial.CompressedImageCore.

func (s Stored) RawConfigFile() ([]byte, error) { return s.verified(s.Image.ID) }
func (s Stored) RawManifest() ([]byte, error)   { return s.verified(s.Image.ManifestDigest) }
func (s Stored) MediaType() (types.MediaType, error) {
	return types.MediaType(s.Image.ManifestMediaType), nil
}

func (s Stored) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range s.Image.Layers {
		if l.BlobDigest == h.String() {
			return NewFileLayer(s.Store.BlobPath(l.BlobDigest), h, l.BlobSize, types.MediaType(l.MediaType)), nil
		}
	}
	return nil, fmt.Errorf("blob %s is not a layer of image %s", h, s.Image.ID)
}

// Resolve, Manifest and Config make Stored an inspect.Source; a blob the
// store lacks is content that cannot be read.

func (s Stored) Resolve(context.Context) (v1.Descriptor, error) {
	h, err := v1.NewHash(s.Image.ManifestDigest)
	return v1.Descriptor{Digest: h, MediaType: types.MediaType(s.Image.ManifestMediaType)}, err
}

func (s Stored) Manifest(_ context.Context, d v1.Hash) ([]byte, types.MediaType, error) {
	raw, err := s.blob(d)
	return raw, types.MediaType(s.Image.ManifestMediaType), err
}

func (s Stored) Config(_ context.Context, d v1.Hash) ([]byte, error) { return s.blob(d) }

func (s Stored) blob(d v1.Hash) ([]byte, error) {
	raw, err := s.verified(d.String())
	var unreadable *fs.PathError
	if errors.As(err, &unreadable) {
		return nil, &inspect.ContentError{Reason: fmt.Sprintf("blob %s is missing from the store: %v", d, err)}
	}
	return raw, err
}

// FileLayer is a layer blob in a file, as a partial.CompressedLayer.
type FileLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

// NewFileLayer describes the blob at path.
func NewFileLayer(path string, digest v1.Hash, size int64, mediaType types.MediaType) FileLayer {
	return FileLayer{path: path, digest: digest, size: size, mediaType: mediaType}
}

func (l FileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l FileLayer) Size() (int64, error)                { return l.size, nil }
func (l FileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the blob; its reader checks it against its digest.
func (l FileLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }
