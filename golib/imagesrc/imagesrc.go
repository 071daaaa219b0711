// Package imagesrc owns opening an image where a transport says it is: a
// registry ("docker"), an OCI layout directory ("oci"), an OCI archive
// ("oci-archive", read in place) or a `docker save` tarball
// ("docker-archive"). Every operation that reads an image from one of them
// opens it here: inspectAnImage reads its manifests and configs (Inspect),
// pullAnImage, copyImage and saveImage read it as a go-containerregistry
// v1.Image (Image), and loadImage reads every image of an archive
// (OpenArchive). Images of the local store ("k3") are read by Stored, for
// inspection, save and push. Each format has one reader: package registry,
// ocilayout, Stored, or, for docker archives, dockerarchive for inspection
// (skopeo's generated manifest) and go-containerregistry's tarball for the
// image itself.
//
// Failures are those of the readers: *inspect.NotFoundError for an image
// that is not there, *inspect.ContentError for content that cannot be read,
// registry errors as go-containerregistry returns them.
package imagesrc

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/ocilayout"
	"github.com/k3-core/k3-core/golib/registry"
)

// Transports are the transports Open reads.
var Transports = []string{"docker", "oci", "oci-archive", "docker-archive"}

// Location names one image.
type Location struct {
	// Transport is one of Transports.
	Transport string
	// Path is the layout directory or archive file (not for "docker").
	Path string
	// RefName selects an image of a layout (its ref name annotation) or of a
	// docker archive (one of its RepoTags); "" selects the only one.
	RefName string
	// Client and Ref name a registry image ("docker" only).
	Client *registry.Client
	Ref    name.Reference
}

// Image is an opened image and the names a pull records it under; its
// fields are those of pull.Source.
type Image struct {
	Image v1.Image
	// Names are the repo:tag names the image gets (may be empty).
	Names []string
	// RepoDigests are repo@digest references it was read by.
	RepoDigests []string
}

// Source is one opened image location.
type Source struct {
	loc    Location
	layout *ocilayout.Source // "oci" and "oci-archive"
}

// Open opens loc. Local files are checked to exist now; a registry is first
// asked by Inspect or Image.
func Open(loc Location) (*Source, error) {
	s := &Source{loc: loc}
	var err error
	switch loc.Transport {
	case "docker":
		if loc.Client == nil || loc.Ref == nil {
			return nil, fmt.Errorf("imagesrc: a docker location needs a client and a reference")
		}
	case "oci":
		s.layout, err = ocilayout.OpenDir(loc.Path, loc.RefName)
	case "oci-archive":
		s.layout, err = ocilayout.OpenArchive(loc.Path, loc.RefName)
	case "docker-archive":
		if _, serr := os.Stat(loc.Path); serr != nil {
			err = &inspect.NotFoundError{Reason: fmt.Sprintf("no docker archive at %s", loc.Path)}
		}
	default:
		err = fmt.Errorf("imagesrc: unknown transport %q", loc.Transport)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases what Open holds open.
func (s *Source) Close() error {
	if s.layout != nil {
		return s.layout.Close()
	}
	return nil
}

// Inspect reads the image's manifests and configs for platform, the way
// `skopeo inspect` reports them, and its Name. Registry results are kept
// in (and served from) in, once the registry has let this caller read them.
func (s *Source) Inspect(ctx context.Context, in *inspect.Inspector, platform inspect.Platform) (inspect.Output, error) {
	switch s.loc.Transport {
	case "docker":
		out, err := in.Inspect(ctx, registry.Source{Client: s.loc.Client, Ref: s.loc.Ref}, platform)
		if err == nil {
			out.Name = DockerName(s.loc.Ref)
		}
		return out, err
	case "docker-archive":
		archive, err := openDockerArchive(s.loc)
		if err != nil {
			return inspect.Output{}, err
		}
		defer archive.Close()
		out, err := inspect.Read(ctx, archive, platform)
		if err == nil {
			out.Name = archive.Name()
		}
		return out, err
	}
	return inspect.Read(ctx, s.layout, platform)
}

// Image opens the image for platform (when the location names an index).
// Only a registry image is read now; the rest of an image is read as its
// reader asks.
func (s *Source) Image(ctx context.Context, platform inspect.Platform) (Image, error) {
	switch s.loc.Transport {
	case "docker":
		return registryImage(ctx, s.loc, platform)
	case "docker-archive":
		return dockerArchiveImage(s.loc)
	}
	img, err := s.layout.Image(ctx, platform)
	if err != nil {
		return Image{}, err
	}
	return Image{Image: img, Names: localNames(s.loc.RefName)}, nil
}

// Tags lists the tags of a registry image's repository.
func (s *Source) Tags(ctx context.Context) ([]string, error) {
	if s.loc.Transport != "docker" {
		return nil, fmt.Errorf("imagesrc: a %s location has no tags to list", s.loc.Transport)
	}
	return s.loc.Client.Tags(ctx, s.loc.Ref.Context())
}
