package imagesrc

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/k3-core/k3-core/golib/dockerarchive"
	"github.com/k3-core/k3-core/golib/inspect"
)

// openDockerArchive opens loc's archive for inspection: the manifest
// skopeo generates for the image, so digests agree with skopeo's.
func openDockerArchive(loc Location) (*dockerarchive.Source, error) {
	return dockerarchive.Open(loc.Path, loc.RefName)
}

// dockerArchiveImage reads loc's image with go-containerregistry's
// tarball reader, whose generated manifest is the one pulls record.
func dockerArchiveImage(loc Location) (Image, error) {
	var tag *name.Tag
	if loc.RefName != "" {
		t, err := name.NewTag(loc.RefName)
		if err != nil {
			return Image{}, &inspect.NotFoundError{Reason: fmt.Sprintf("%q is not an image reference", loc.RefName)}
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(loc.Path, tag)
	if err != nil {
		if strings.Contains(err.Error(), "tag") || strings.Contains(err.Error(), "multiple images") {
			return Image{}, &inspect.NotFoundError{Reason: err.Error()}
		}
		return Image{}, &inspect.ContentError{Reason: "not a readable docker archive: " + err.Error()}
	}
	out := Image{Image: img}
	if tag != nil {
		out.Names = []string{DisplayName(*tag)}
	}
	return out, nil
}
