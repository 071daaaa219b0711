package ocilayout

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/inspect"
)

// Image returns the image Resolve selects, for platform when index.json
// names an index there. Its manifest is read and verified now; its config
// when asked, verified; its layers stream from the layout for the reader to
// check against their digests.
func (s *Source) Image(ctx context.Context, platform inspect.Platform) (v1.Image, error) {
	top, err := s.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	return s.EntryImage(top, platform)
}

// EntryImage is Image for one of Entries.
func (s *Source) EntryImage(d v1.Descriptor, platform inspect.Platform) (v1.Image, error) {
	if d.MediaType.IsIndex() {
		raw, err := s.blob(d.Digest)
		if err != nil {
			return nil, err
		}
		index, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, &inspect.ContentError{Reason: "malformed index: " + err.Error()}
		}
		if d, err = inspect.ChoosePlatform(index, platform); err != nil {
			return nil, err
		}
	}
	raw, err := s.blob(d.Digest)
	if err != nil {
		return nil, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, &inspect.ContentError{Reason: "malformed manifest: " + err.Error()}
	}
	mediaType := d.MediaType
	if mediaType == "" {
		mediaType = manifest.MediaType
	}
	return partial.CompressedToImage(&layoutImage{s: s, rawManifest: raw, mediaType: mediaType, manifest: manifest})
}

// CheckLayers reports a layer blob of img the layout does not hold, which
// a reader would otherwise meet only once it opens that layer.
func (s *Source) CheckLayers(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	for _, l := range m.Layers {
		if _, err := s.files.Size(blobName(l.Digest)); err != nil {
			return fmt.Errorf("layer %s is not in the layout: %w", l.Digest, err)
		}
	}
	return nil
}

// layoutImage is one image manifest of a layout, as partial's core.
type layoutImage struct {
	s           *Source
	rawManifest []byte
	mediaType   types.MediaType
	manifest    *v1.Manifest
}

func (i *layoutImage) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *layoutImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *layoutImage) RawConfigFile() ([]byte, error)      { return i.s.blob(i.manifest.Config.Digest) }
func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range i.manifest.Layers {
		if d.Digest == h {
			return layoutLayer{files: i.s.files, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not a layer of the image", h)
}

// layoutLayer is a layer blob as the manifest describes it.
type layoutLayer struct {
	files files
	desc  v1.Descriptor
}

func (l layoutLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l layoutLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l layoutLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l layoutLayer) Compressed() (io.ReadCloser, error) {
	return l.files.Open(blobName(l.desc.Digest))
}
