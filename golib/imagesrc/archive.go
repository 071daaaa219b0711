package imagesrc

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/ocilayout"
)

// Archive is every image of an archive, as `docker load` reads it.
type Archive struct {
	Images []Image
	// Parents holds, for each image, the parent manifest.json names for it
	// ("" for none; OCI archives name none).
	Parents []string
	closer  io.Closer
}

// Close releases the archive.
func (a *Archive) Close() error {
	if a.closer != nil {
		return a.closer.Close()
	}
	return nil
}

// OpenArchive lists the images of the plain (uncompressed) tar at tarPath:
// from manifest.json when it has one (every docker save, which Docker 25+
// writes beside an OCI layout), else from an OCI layout's index.json. Each
// image's manifest and config are read now, and an OCI image's layers
// checked to be there, so that an archive lacking or garbling them fails
// as an invalid archive (*inspect.ContentError) before anything is loaded.
func OpenArchive(tarPath string) (*Archive, error) {
	idx, err := archive.Open(tarPath)
	if err != nil {
		return nil, &inspect.ContentError{Reason: err.Error()}
	}
	raw, manifestErr := idx.ReadFile("manifest.json", 16<<20)
	_, indexErr := idx.Stat("index.json")
	idx.Close()
	switch {
	case manifestErr == nil:
		return dockerArchiveImages(tarPath, raw)
	case indexErr == nil:
		return layoutArchiveImages(tarPath)
	}
	return nil, &inspect.NotFoundError{Reason: "neither a docker save archive (manifest.json) nor an OCI archive (index.json)"}
}

// readImage reads an image's manifest and config, which go-containerregistry
// otherwise reads only when a pull asks for them.
func readImage(img v1.Image) error {
	if _, err := img.Manifest(); err != nil {
		return err
	}
	_, err := img.RawConfigFile()
	return err
}

// dockerArchiveImages lists the images of a docker save archive and the
// parent manifest.json names for each.
func dockerArchiveImages(tarPath string, manifestJSON []byte) (*Archive, error) {
	var entries []struct {
		RepoTags []string `json:"RepoTags"`
		Parent   string   `json:"Parent"`
	}
	if err := json.Unmarshal(manifestJSON, &entries); err != nil {
		return nil, &inspect.ContentError{Reason: "malformed manifest.json: " + err.Error()}
	}
	opener := func() (io.ReadCloser, error) { return os.Open(tarPath) }
	out := &Archive{}
	for i, entry := range entries {
		var tag *name.Tag
		var names []string
		for _, t := range entry.RepoTags {
			parsed, err := name.NewTag(t)
			if err != nil {
				return nil, &inspect.ContentError{Reason: fmt.Sprintf("manifest.json names %q, which is not an image name", t)}
			}
			if tag == nil {
				tag = &parsed
			}
			names = append(names, DisplayName(parsed))
		}
		if tag == nil && len(entries) > 1 {
			return nil, &inspect.ContentError{Reason: fmt.Sprintf("image %d of %d in manifest.json has no name to select it by", i+1, len(entries))}
		}
		img, err := tarball.Image(opener, tag)
		if err == nil {
			err = readImage(img)
		}
		if err != nil {
			return nil, &inspect.ContentError{Reason: "not a readable docker archive: " + err.Error()}
		}
		out.Images = append(out.Images, Image{Image: img, Names: names})
		out.Parents = append(out.Parents, entry.Parent)
	}
	return out, nil
}

// layoutArchiveImages lists the images of an OCI archive, each under its
// name when it has one (an index gives the host's platform).
func layoutArchiveImages(tarPath string) (_ *Archive, err error) {
	layout, err := ocilayout.OpenArchive(tarPath, "")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			layout.Close()
		}
	}()
	entries, err := layout.Entries()
	if err != nil {
		return nil, err
	}
	out := &Archive{closer: layout}
	for _, d := range entries {
		img, err := layout.EntryImage(d, inspect.Platform{}.Normalize())
		if err != nil {
			return nil, err
		}
		err = readImage(img)
		if err == nil {
			err = layout.CheckLayers(img)
		}
		if err != nil {
			return nil, &inspect.ContentError{Reason: "not a readable OCI archive: " + err.Error()}
		}
		// containerd and Docker 25+ give the full name; the ref name alone
		// may be just a tag that several images share.
		names := localNames(d.Annotations["io.containerd.image.name"])
		if names == nil {
			names = localNames(d.Annotations[imagespec.AnnotationRefName])
		}
		out.Images = append(out.Images, Image{Image: img, Names: names})
		out.Parents = append(out.Parents, "")
	}
	return out, nil
}
