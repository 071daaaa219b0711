package engine

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/store"
)

// storedSource reads an image of the local store for inspection; it
// satisfies inspect.Source, verifying every blob it reads.
type storedSource struct {
	st  *store.Store
	img store.Image
}

func (s storedSource) Resolve(context.Context) (v1.Descriptor, error) {
	h, err := v1.NewHash(s.img.ManifestDigest)
	return v1.Descriptor{Digest: h, MediaType: types.MediaType(s.img.ManifestMediaType)}, err
}

func (s storedSource) Manifest(_ context.Context, d v1.Hash) ([]byte, types.MediaType, error) {
	raw, err := s.blob(d)
	return raw, types.MediaType(s.img.ManifestMediaType), err
}

func (s storedSource) Config(_ context.Context, d v1.Hash) ([]byte, error) { return s.blob(d) }

func (s storedSource) blob(d v1.Hash) ([]byte, error) {
	raw, err := os.ReadFile(s.st.BlobPath(d.String()))
	if err != nil {
		return nil, &inspect.ContentError{Reason: fmt.Sprintf("blob %s is missing from the store: %v", d, err)}
	}
	return raw, content.Verify("blob "+d.String(), raw, d.String())
}

// inspectStored answers inspectAnImage for containerImageTransport "k3":
// an image of the local store, by name, ID or ID prefix; RepoTags are its
// names there.
func (e *Engine) inspectStored(ctx context.Context, req inspectRequest, root string) (inspect.Output, error) {
	st, err := e.store(root)
	if err != nil {
		return inspect.Output{}, err
	}
	var candidates []string
	if req.imageTag != "" {
		candidates = imageCandidates(repositoryPart(req.imageName) + ":" + req.imageTag)
		if isDigest(req.imageTag) {
			candidates = imageCandidates(repositoryPart(req.imageName) + "@" + req.imageTag)
		}
	}
	candidates = append(candidates, imageCandidates(req.imageName)...)
	img, err := st.FindImage(candidates...)
	if errors.Is(err, store.ErrNotFound) {
		return inspect.Output{}, &inspect.NotFoundError{Reason: fmt.Sprintf("no image %s in the local store", req.imageName)}
	}
	if err != nil {
		return inspect.Output{}, err
	}
	out, err := inspect.Read(ctx, storedSource{st: st, img: img}, req.platform)
	if err != nil {
		return inspect.Output{}, err
	}
	out.RepoTags = img.Names
	if len(img.Names) > 0 {
		if ref, err := name.ParseReference(img.Names[0]); err == nil {
			out.Name = dockerName(ref)
		}
	}
	return out, nil
}
