// Package dockerarchive owns reading `docker save` tarballs (skopeo's
// `docker-archive:` transport) for inspection: manifest.json picks the image,
// and the image is described by the Docker schema 2 manifest skopeo would
// generate for it, so digests and layer lists agree with skopeo's.
package dockerarchive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/inspect"
)

const maxMetadataSize = 16 << 20

// Entry is one image of manifest.json.
type Entry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Source reads one image of a docker save tarball; it satisfies inspect.Source.
type Source struct {
	idx      *archive.Index
	ref      string
	name     string
	manifest []byte
	config   []byte
}

// Open indexes the tarball at p and selects the image tagged ref (any
// spelling docker accepts), or the only image when ref is empty.
func Open(p, ref string) (*Source, error) {
	idx, err := archive.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &inspect.NotFoundError{Reason: fmt.Sprintf("no docker archive at %s", p)}
	}
	if err != nil {
		return nil, &inspect.ContentError{Reason: err.Error()}
	}
	s := &Source{idx: idx, ref: ref}
	if err := s.load(); err != nil {
		idx.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the archive.
func (s *Source) Close() error { return s.idx.Close() }

// Name is the repository of the reference the caller chose, as skopeo reports it.
func (s *Source) Name() string { return s.name }

func (s *Source) load() error {
	raw, err := s.idx.ReadFile("manifest.json", maxMetadataSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &inspect.NotFoundError{Reason: "not a docker archive: manifest.json is missing"}
	}
	if err != nil {
		return err
	}
	var entries []Entry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return &inspect.ContentError{Reason: "malformed manifest.json: " + err.Error()}
	}
	entry, err := s.choose(entries)
	if err != nil {
		return err
	}
	if s.config, err = s.idx.ReadFile(entry.Config, maxMetadataSize); err != nil {
		return &inspect.ContentError{Reason: "config: " + err.Error()}
	}
	if want := configDigestFromName(entry.Config); want != "" {
		if err := content.Verify("config "+entry.Config, s.config, want); err != nil {
			return err
		}
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(s.config, &config); err != nil {
		return &inspect.ContentError{Reason: "malformed image config: " + err.Error()}
	}
	if len(config.RootFS.DiffIDs) != len(entry.Layers) {
		return &inspect.ContentError{Reason: fmt.Sprintf("manifest.json lists %d layers but the config has %d diff IDs", len(entry.Layers), len(config.RootFS.DiffIDs))}
	}
	layers := make([]descriptor, len(entry.Layers))
	for i, member := range entry.Layers {
		m, err := s.idx.Stat(member)
		if err != nil {
			return &inspect.ContentError{Reason: "layer: " + err.Error()}
		}
		layers[i] = descriptor{MediaType: types.DockerLayer, Size: m.Size, Digest: config.RootFS.DiffIDs[i]}
	}
	s.manifest, err = json.Marshal(schema2{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(s.config)), Digest: digest.FromBytes(s.config).String()},
		Layers:        layers,
	})
	return err
}

// schema2 and descriptor keep the field order skopeo's generated manifest has,
// so the manifest digest is the same.
type schema2 struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Config        descriptor      `json:"config"`
	Layers        []descriptor    `json:"layers"`
}

type descriptor struct {
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
	Digest    string          `json:"digest"`
}

func (s *Source) choose(entries []Entry) (Entry, error) {
	if s.ref == "" {
		if len(entries) == 1 {
			return entries[0], nil
		}
		return Entry{}, &inspect.NotFoundError{Reason: fmt.Sprintf("the archive holds %d images; name one with imageTag", len(entries))}
	}
	want, err := name.ParseReference(s.ref)
	if err != nil {
		return Entry{}, &inspect.NotFoundError{Reason: fmt.Sprintf("%q is not an image reference: %v", s.ref, err)}
	}
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if have, err := name.ParseReference(t); err == nil && have.Name() == want.Name() {
				s.name = want.Context().Name()
				if want.Context().RegistryStr() == name.DefaultRegistry {
					s.name = "docker.io/" + want.Context().RepositoryStr()
				}
				return e, nil
			}
		}
	}
	return Entry{}, &inspect.NotFoundError{Reason: fmt.Sprintf("no image tagged %s in the archive", s.ref)}
}

// configDigestFromName reads the digest docker encodes in the config's member
// name ("<hex>.json" or "blobs/sha256/<hex>").
func configDigestFromName(member string) string {
	base := strings.TrimSuffix(path.Base(member), ".json")
	d := digest.NewDigestFromEncoded(digest.SHA256, base)
	if d.Validate() != nil {
		return ""
	}
	return d.String()
}

// Resolve names the generated manifest.
func (s *Source) Resolve(context.Context) (v1.Descriptor, error) {
	h, _, err := v1.SHA256(bytes.NewReader(s.manifest))
	return v1.Descriptor{Digest: h, MediaType: types.DockerManifestSchema2, Size: int64(len(s.manifest))}, err
}

// Manifest returns the generated manifest.
func (s *Source) Manifest(context.Context, v1.Hash) ([]byte, types.MediaType, error) {
	return s.manifest, types.DockerManifestSchema2, nil
}

// Config returns the image config read at Open.
func (s *Source) Config(context.Context, v1.Hash) ([]byte, error) { return s.config, nil }
