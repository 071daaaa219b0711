package imagetar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeOCIArchive writes an OCI image layout as one tar, as skopeo's
// oci-archive: does: every blob as the registry or store has it (so
// manifest and layer digests do not change), each image named in
// index.json by its tag and, as containerd and Docker 25+ do, by its full name.
func writeOCIArchive(ctx context.Context, w io.Writer, images []Image, opts Options) ([]Saved, error) {
	blobs := map[digest.Digest]entry{}
	var total int64
	addBlob := func(d digest.Digest, e entry) {
		if _, ok := blobs[d]; !ok {
			e.name = "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
			e.mtime = epoch()
			blobs[d] = e
			total += e.size
		}
	}
	var index []imagespec.Descriptor
	var saved []Saved
	for _, img := range images {
		rawManifest, err := img.Image.RawManifest()
		if err != nil {
			return nil, err
		}
		mediaType, err := img.Image.MediaType()
		if err != nil {
			return nil, err
		}
		rawConfig, err := img.Image.RawConfigFile()
		if err != nil {
			return nil, err
		}
		configFile, err := img.Image.ConfigFile()
		if err != nil {
			return nil, err
		}
		rawManifest, mediaType, err = ociManifest(rawManifest, mediaType)
		if err != nil {
			return nil, err
		}
		manifestDigest, configDigest := digest.FromBytes(rawManifest), digest.FromBytes(rawConfig)
		addBlob(manifestDigest, entry{data: rawManifest})
		addBlob(configDigest, entry{data: rawConfig})
		layers, err := img.Image.Layers()
		if err != nil {
			return nil, err
		}
		for _, l := range layers {
			h, err := l.Digest()
			if err != nil {
				return nil, err
			}
			size, err := l.Size()
			if err != nil {
				return nil, err
			}
			d, err := digest.Parse(h.String())
			if err != nil {
				return nil, err
			}
			layer := l
			addBlob(d, entry{size: size, open: func() (io.ReadCloser, error) {
				r, err := layer.Compressed()
				if err != nil {
					return nil, err
				}
				return newVerifiedReader(r, d, "layer blob")
			}})
		}
		described := imagespec.Descriptor{MediaType: string(mediaType), Digest: manifestDigest, Size: int64(len(rawManifest)),
			Platform: platformOf(configFile)}
		var repoTags []string
		for _, t := range img.Tags {
			named := described
			named.Annotations = map[string]string{"io.containerd.image.name": fullName(t), imagespec.AnnotationRefName: t.TagStr()}
			index = append(index, named)
			repoTags = append(repoTags, familiarName(t)+":"+t.TagStr())
		}
		if len(img.Tags) == 0 {
			index = append(index, described)
		}
		saved = append(saved, Saved{ID: configDigest.String(), RepoTags: nonNil(repoTags)})
	}
	indexJSON, err := json.Marshal(imagespec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imagespec.MediaTypeImageIndex, Manifests: index})
	if err != nil {
		return nil, err
	}
	layout, _ := json.Marshal(imagespec.ImageLayout{Version: imagespec.ImageLayoutVersion})
	entries := []entry{
		{name: "blobs", dir: true, mtime: epoch()},
		{name: "blobs/sha256", dir: true, mtime: epoch()},
		{name: "oci-layout", data: layout, mtime: epoch()},
		{name: "index.json", data: indexJSON, mtime: epoch()},
	}
	for _, e := range blobs {
		entries = append(entries, e)
	}
	written := &progressCounter{phase: "write", total: total, emit: opts.Progress}
	return saved, writeEntries(ctx, w, entries, headerStyle{}, written.add)
}

// ociMediaTypes maps Docker schema 2 media types to their OCI names.
var ociMediaTypes = map[string]string{
	string(types.DockerConfigJSON):        imagespec.MediaTypeImageConfig,
	string(types.DockerLayer):             imagespec.MediaTypeImageLayerGzip,
	string(types.DockerUncompressedLayer): imagespec.MediaTypeImageLayer,
	string(types.DockerForeignLayer):      imagespec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // the OCI name Docker's foreign layers had
}

// ociManifest returns a manifest as an OCI archive holds it: an OCI one as
// it is, so its digest is kept; a Docker schema 2 one converted as skopeo
// converts it (same config and layers, OCI media types), because OCI tools
// look only for OCI manifests in a layout.
func ociManifest(raw []byte, mediaType types.MediaType) ([]byte, types.MediaType, error) {
	if mediaType != types.DockerManifestSchema2 {
		return raw, mediaType, nil
	}
	var m imagespec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", &ContentError{"malformed manifest: " + err.Error()}
	}
	convert := func(d *imagespec.Descriptor) error {
		oci, ok := ociMediaTypes[d.MediaType]
		if !ok {
			return &ContentError{fmt.Sprintf("media type %s has no OCI equivalent", d.MediaType)}
		}
		d.MediaType = oci
		return nil
	}
	if err := convert(&m.Config); err != nil {
		return nil, "", err
	}
	for i := range m.Layers {
		if err := convert(&m.Layers[i]); err != nil {
			return nil, "", err
		}
	}
	m.MediaType = imagespec.MediaTypeImageManifest
	converted, err := json.Marshal(m)
	return converted, types.OCIManifestSchema1, err
}

func platformOf(cfg *v1.ConfigFile) *imagespec.Platform {
	if cfg == nil || cfg.OS == "" {
		return nil
	}
	return &imagespec.Platform{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
}
