package imagesrc

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k3-core/k3-core/golib/inspect"
)

// registryImage resolves loc.Ref in its registry to the image for
// platform, and names it as docker does: by its tag, if it was asked by
// one, and by its repository digest.
func registryImage(ctx context.Context, loc Location, platform inspect.Platform) (Image, error) {
	desc, err := loc.Client.Get(ctx, loc.Ref)
	if err != nil {
		return Image{}, err
	}
	out := Image{RepoDigests: []string{DockerName(loc.Ref) + "@" + desc.Digest.String()}}
	if _, isTag := loc.Ref.(name.Tag); isTag {
		out.Names = []string{DisplayName(loc.Ref)}
	}
	if desc.MediaType.IsIndex() {
		index, err := desc.ImageIndex()
		if err != nil {
			return Image{}, err
		}
		manifest, err := index.IndexManifest()
		if err != nil {
			return Image{}, &inspect.ContentError{Reason: "malformed index: " + err.Error()}
		}
		chosen, err := inspect.ChoosePlatform(manifest, platform)
		if err != nil {
			return Image{}, err
		}
		if desc, err = loc.Client.Get(ctx, loc.Ref.Context().Digest(chosen.Digest.String())); err != nil {
			return Image{}, err
		}
	}
	if desc.MediaType.IsSchema1() {
		return Image{}, &inspect.ContentError{Reason: "Docker schema 1 images can be inspected but not pulled; push the image again with a current tool"}
	}
	out.Image, err = desc.Image()
	return out, err
}
