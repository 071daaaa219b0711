package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/store"
)

// inspectStored answers inspectAnImage for containerImageTransport "k3":
// an image of the local store, by name, ID or ID prefix; RepoTags are its
// names there.
func (e *Engine) inspectStored(ctx context.Context, req inspectRequest, root string) (inspect.Output, error) {
	// Held before the image is found: a removeImage in another process may
	// drop its record meanwhile, and its blobs must stay until they are read.
	st, hold, err := e.heldStore(root)
	if err != nil {
		return inspect.Output{}, err
	}
	defer hold.Release()
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
	out, err := inspect.Read(ctx, imagesrc.Stored{Store: st, Image: img}, req.platform)
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
