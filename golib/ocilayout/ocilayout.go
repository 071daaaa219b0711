// Package ocilayout owns reading OCI image layouts, as a directory (skopeo's
// `oci:` transport) or as a tar of one (`oci-archive:`, read in place): the
// manifests and configs for inspection, and each image as a v1.Image for
// pull, copy, save and load.
package ocilayout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/inspect"
)

// refNameAnnotation names an entry of index.json, as skopeo's oci:DIR:REF does.
const refNameAnnotation = imagespec.AnnotationRefName

// maxMetadataSize bounds index.json, manifests and configs read into memory.
const maxMetadataSize = 16 << 20

// files is a layout's files, in a directory or an archive.
type files interface {
	ReadFile(name string, limit int64) ([]byte, error)
	// Open opens a blob to stream it; Size is its size (an error if it is
	// missing or not a regular file).
	Open(name string) (io.ReadCloser, error)
	Size(name string) (int64, error)
}

// Source reads one image of a layout; it satisfies inspect.Source.
type Source struct {
	files   files
	refName string
	closer  io.Closer
	// labelled remembers media types index.json gives, since blobs carry none.
	labelled map[v1.Hash]types.MediaType
}

// OpenDir opens the layout directory dir and selects the image refName
// (or the only image, when refName is empty).
func OpenDir(dir, refName string) (*Source, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, &inspect.NotFoundError{Reason: fmt.Sprintf("no OCI layout directory at %s", dir)}
	}
	return &Source{files: dirFiles(dir), refName: refName, labelled: map[v1.Hash]types.MediaType{}}, nil
}

// OpenArchive opens the OCI archive (a tar of a layout) at p.
func OpenArchive(p, refName string) (*Source, error) {
	idx, err := archive.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &inspect.NotFoundError{Reason: fmt.Sprintf("no OCI archive at %s", p)}
	}
	if err != nil {
		return nil, &inspect.ContentError{Reason: err.Error()}
	}
	return &Source{files: archiveFiles{idx}, refName: refName, closer: idx, labelled: map[v1.Hash]types.MediaType{}}, nil
}

// Close releases an archive; a directory holds nothing open.
func (s *Source) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// Entries returns index.json's entries: the layout's images, each an image
// manifest or an index.
func (s *Source) Entries() ([]v1.Descriptor, error) {
	raw, err := s.files.ReadFile("index.json", maxMetadataSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &inspect.NotFoundError{Reason: "not an OCI layout: index.json is missing"}
	}
	if err != nil {
		return nil, err
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, &inspect.ContentError{Reason: "malformed index.json: " + err.Error()}
	}
	for _, d := range index.Manifests {
		s.labelled[d.Digest] = d.MediaType
	}
	return index.Manifests, nil
}

// Resolve picks the image's descriptor from index.json.
func (s *Source) Resolve(context.Context) (v1.Descriptor, error) {
	entries, err := s.Entries()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if s.refName == "" {
		if len(entries) == 1 {
			return entries[0], nil
		}
		return v1.Descriptor{}, &inspect.NotFoundError{Reason: fmt.Sprintf("the layout holds %d images; name one with imageTag", len(entries))}
	}
	for _, d := range entries {
		if d.Annotations[refNameAnnotation] == s.refName {
			return d, nil
		}
	}
	return v1.Descriptor{}, &inspect.NotFoundError{Reason: fmt.Sprintf("no image named %q in the layout", s.refName)}
}

// Manifest reads and verifies a manifest blob.
func (s *Source) Manifest(_ context.Context, d v1.Hash) ([]byte, types.MediaType, error) {
	raw, err := s.blob(d)
	return raw, s.labelled[d], err
}

// Config reads and verifies a config blob.
func (s *Source) Config(_ context.Context, d v1.Hash) ([]byte, error) {
	return s.blob(d)
}

func (s *Source) blob(d v1.Hash) ([]byte, error) {
	raw, err := s.files.ReadFile(blobName(d), maxMetadataSize)
	if err != nil {
		return nil, &inspect.ContentError{Reason: fmt.Sprintf("blob %s: %v", d, err)}
	}
	return raw, content.Verify("blob "+d.String(), raw, d.String())
}

func blobName(d v1.Hash) string { return filepath.Join("blobs", d.Algorithm, d.Hex) }

type dirFiles string

func (d dirFiles) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), name))
}

func (d dirFiles) Size(name string) (int64, error) {
	fi, err := os.Stat(filepath.Join(string(d), name))
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d dirFiles) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return raw, nil
}

type archiveFiles struct{ *archive.Index }

func (a archiveFiles) Open(name string) (io.ReadCloser, error) {
	r, err := a.Section(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(r), nil
}

func (a archiveFiles) Size(name string) (int64, error) {
	m, err := a.Stat(name)
	return m.Size, err
}
