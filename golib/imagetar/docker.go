package imagetar

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestItem is one image of a docker save manifest.json.
type manifestItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       string                        `json:",omitempty"`
	LayerSources map[digest.Digest]layerSource `json:",omitempty"`
}

// layerSource describes a layer blob in manifest.json's LayerSources, in
// the field order of Docker's distribution.Descriptor (not the OCI one's).
type layerSource struct {
	MediaType string        `json:"mediaType,omitempty"`
	Size      int64         `json:"size,omitempty"`
	Digest    digest.Digest `json:"digest,omitempty"`
}

// dockerImage is an image read for a docker-archive.
type dockerImage struct {
	Image
	rawConfig []byte
	configID  digest.Digest
	config    *imageConfig
	v1        []v1Image
	created   time.Time
}

func readDockerImage(img Image) (*dockerImage, error) {
	raw, err := img.Image.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	layers, err := v1Layers(cfg)
	if err != nil {
		return nil, err
	}
	return &dockerImage{Image: img, rawConfig: raw, configID: digest.FromBytes(raw), config: cfg, v1: layers,
		created: createdTime(cfg.Created)}, nil
}

// jsonLine encodes as Docker's json.Encoder does: HTML-escaped, one line.
func jsonLine(v any) []byte {
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(v)
	return buf.Bytes()
}

func writeDockerArchive(ctx context.Context, w io.Writer, images []Image, flavour dockerFlavour, opts Options) ([]Saved, error) {
	var read []*dockerImage
	toStage := map[digest.Digest]v1.Layer{}
	var compressedTotal int64
	for _, img := range images {
		d, err := readDockerImage(img)
		if err != nil {
			return nil, err
		}
		layers, err := imageLayers(img.Image, d.config)
		if err != nil {
			return nil, err
		}
		for diffID, l := range layers {
			if _, ok := toStage[diffID]; !ok {
				size, _ := l.Size()
				compressedTotal += size
				toStage[diffID] = l
			}
		}
		read = append(read, d)
	}
	fetched := &progressCounter{phase: "layers", total: compressedTotal, emit: opts.Progress}
	stage, err := startStaging(ctx, opts.StagingDir, layerOrder(read, flavour), countCompressed(toStage, fetched.add))
	if err != nil {
		return nil, err
	}
	defer stage.close()
	var entries []entry
	var saved []Saved
	if flavour.ociBased {
		// The manifest and manifest.json list every layer's size: wait for all.
		if err := stage.waitAll(ctx); err != nil {
			return nil, err
		}
		entries, saved, err = ociBasedEntries(read, stage.layers, flavour)
		if err != nil {
			return nil, err
		}
	} else {
		entries, saved = legacyEntries(read, stage.layers)
	}
	// The total grows as layers are staged; it is exact once all are.
	written := &progressCounter{phase: "write", emit: opts.Progress, totalOf: stage.stagedBytes}
	return saved, writeEntries(ctx, w, entries, flavour.style, written.add)
}

// layerOrder lists diff IDs in the order the archive writes them, so the
// first layers needed are staged first.
func layerOrder(images []*dockerImage, flavour dockerFlavour) []digest.Digest {
	type member struct {
		name   string
		diffID digest.Digest
	}
	var members []member
	for _, img := range images {
		for i, layer := range img.v1 {
			diffID := img.config.RootFS.DiffIDs[i]
			name := layer.ID + "/layer.tar"
			if flavour.ociBased {
				name = "blobs/" + diffID.Algorithm().String() + "/" + diffID.Encoded()
			}
			members = append(members, member{name, diffID})
		}
	}
	sort.SliceStable(members, func(i, j int) bool { return walksBefore(members[i].name, members[j].name) })
	order := make([]digest.Digest, len(members))
	for i, m := range members {
		order[i] = m.diffID
	}
	return order
}

// legacyEntries lays images out as Docker up to 24 does: a directory per
// v1 layer ID with VERSION, json and layer.tar (a symlink to the first copy
// when a layer repeats), the config as <id>.json, manifest.json and, when
// any image has a tag, repositories.
func legacyEntries(images []*dockerImage, staged map[digest.Digest]*stagedLayer) ([]entry, []Saved) {
	var entries []entry
	var manifest []manifestItem
	var saved []Saved
	repositories := map[string]map[string]string{}
	doneV1 := map[string]bool{}
	layerFile := map[digest.Digest]string{}
	for _, img := range images {
		var layerPaths []string
		for i, layer := range img.v1 {
			diffID := img.config.RootFS.DiffIDs[i]
			dir := layer.ID
			layerPaths = append(layerPaths, path.Join(dir, "layer.tar"))
			if doneV1[dir] {
				continue
			}
			doneV1[dir] = true
			description, _ := json.Marshal(layer)
			// Docker dates a repeated layer's directory by the clock; the
			// image's own time keeps the archive reproducible.
			entries = append(entries,
				entry{name: dir, dir: true, mtime: img.created},
				entry{name: dir + "/VERSION", data: []byte("1.0"), mtime: img.created},
				entry{name: dir + "/json", data: description, mtime: img.created})
			if first, ok := layerFile[diffID]; ok {
				entries = append(entries, entry{name: dir + "/layer.tar", linkname: "../" + first, mtime: img.created})
				continue
			}
			layerFile[diffID] = dir + "/layer.tar"
			entries = append(entries, entry{name: dir + "/layer.tar", layer: staged[diffID], mtime: img.created})
		}
		entries = append(entries, entry{name: img.configID.Encoded() + ".json", data: img.rawConfig, mtime: img.created})
		repoTags := addRepositories(repositories, img)
		manifest = append(manifest, manifestItem{Config: img.configID.Encoded() + ".json", RepoTags: repoTags, Layers: layerPaths,
			Parent: savedParent(images, img)})
		saved = append(saved, Saved{ID: img.configID.String(), RepoTags: nonNil(repoTags)})
	}
	if len(repositories) > 0 {
		entries = append(entries, entry{name: "repositories", data: jsonLine(repositories), mtime: epoch()})
	}
	entries = append(entries, entry{name: "manifest.json", data: jsonLine(manifest), mtime: epoch()})
	return entries, saved
}

// ociBasedEntries lays images out as Docker 25 and later do: an OCI layout
// whose blobs are the uncompressed layers, the configs, the legacy v1
// descriptions and a manifest per image, plus manifest.json and
// repositories for older readers.
func ociBasedEntries(images []*dockerImage, staged map[digest.Digest]*stagedLayer, flavour dockerFlavour) ([]entry, []Saved, error) {
	blobs := map[digest.Digest]entry{}
	addBlob := func(d digest.Digest, e entry) {
		if _, ok := blobs[d]; !ok {
			e.name = "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
			blobs[d] = e
		}
	}
	var manifest []manifestItem
	var saved []Saved
	var index []imagespec.Descriptor
	repositories := map[string]map[string]string{}
	// Docker dates blobs/ by each image's creation time as it writes it:
	// the last one with a time wins.
	blobsDir := epoch()
	for _, img := range images {
		for _, layer := range img.v1 {
			description, _ := json.Marshal(layer)
			addBlob(digest.FromBytes(description), entry{data: description, mtime: img.created})
		}
		addBlob(img.configID, entry{data: img.rawConfig, mtime: img.created})
		if !img.config.Created.IsZero() {
			blobsDir = img.created
		}
		sources := map[digest.Digest]layerSource{}
		var layerPaths []string
		var layerDescs []imagespec.Descriptor
		for _, diffID := range img.config.RootFS.DiffIDs {
			s := staged[diffID]
			addBlob(diffID, entry{layer: s, mtime: img.created})
			sources[diffID] = layerSource{MediaType: imagespec.MediaTypeImageLayer, Size: s.size, Digest: diffID}
			layerDescs = append(layerDescs, imagespec.Descriptor{MediaType: imagespec.MediaTypeImageLayer, Digest: diffID, Size: s.size})
			layerPaths = append(layerPaths, "blobs/"+diffID.Algorithm().String()+"/"+diffID.Encoded())
		}
		var platform *imagespec.Platform
		if flavour.platform {
			platform = &imagespec.Platform{Architecture: img.config.Architecture, OS: img.config.OS,
				OSVersion: img.config.OSVersion, OSFeatures: img.config.OSFeatures, Variant: img.config.Variant}
		}
		config := imagespec.Descriptor{MediaType: imagespec.MediaTypeImageConfig, Digest: img.configID, Size: int64(len(img.rawConfig)), Platform: platform}
		m, err := json.Marshal(imagespec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imagespec.MediaTypeImageManifest,
			Config: config, Layers: layerDescs,
		})
		if err != nil {
			return nil, nil, err
		}
		manifestDigest := digest.FromBytes(m)
		addBlob(manifestDigest, entry{data: m, mtime: epoch()})
		repoTags := addRepositories(repositories, img)
		described := imagespec.Descriptor{MediaType: imagespec.MediaTypeImageManifest, Digest: manifestDigest, Size: int64(len(m)), Platform: platform}
		for _, t := range img.Tags {
			named := described
			named.Annotations = map[string]string{"io.containerd.image.name": fullName(t), imagespec.AnnotationRefName: t.TagStr()}
			index = append(index, named)
		}
		if len(index) == 0 && flavour.indexUntagged {
			index = append(index, described)
		}
		manifest = append(manifest, manifestItem{Config: "blobs/" + img.configID.Algorithm().String() + "/" + img.configID.Encoded(),
			RepoTags: repoTags, Layers: layerPaths, Parent: savedParent(images, img), LayerSources: sources})
		saved = append(saved, Saved{ID: img.configID.String(), RepoTags: nonNil(repoTags)})
	}
	indexJSON, err := json.Marshal(imagespec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imagespec.MediaTypeImageIndex, Manifests: index})
	if err != nil {
		return nil, nil, err
	}
	// Docker dates blobs/sha256/ and index.json by its clock as it writes
	// them; 1970 keeps the archive reproducible.
	entries := []entry{
		{name: "blobs", dir: true, mtime: blobsDir},
		{name: "blobs/sha256", dir: true, mtime: epoch()},
		{name: "oci-layout", data: []byte(`{"imageLayoutVersion": "1.0.0"}`), mtime: epoch()},
		{name: "index.json", data: indexJSON, mtime: epoch()},
		{name: "manifest.json", data: jsonLine(manifest), mtime: epoch()},
	}
	if len(repositories) > 0 {
		entries = append(entries, entry{name: "repositories", data: jsonLine(repositories), mtime: epoch()})
	}
	for _, e := range blobs {
		entries = append(entries, e)
	}
	return entries, saved, nil
}

// savedParent is img's parent when the archive holds it too, as docker
// save names it; otherwise "".
func savedParent(images []*dockerImage, img *dockerImage) string {
	for _, other := range images {
		if other != img && img.Parent != "" && other.configID.String() == img.Parent {
			return img.Parent
		}
	}
	return ""
}

// addRepositories records an image's tags in the legacy repositories file
// (repository, tag, top v1 layer ID) and returns them as docker prints them.
func addRepositories(repositories map[string]map[string]string, img *dockerImage) []string {
	top := img.v1[len(img.v1)-1].ID
	var repoTags []string
	for _, t := range img.Tags {
		repo := familiarName(t)
		if repositories[repo] == nil {
			repositories[repo] = map[string]string{}
		}
		repositories[repo][t.TagStr()] = top
		repoTags = append(repoTags, repo+":"+t.TagStr())
	}
	return repoTags
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// countCompressed wraps each layer so that reading its compressed bytes is
// reported as progress.
func countCompressed(layers map[digest.Digest]v1.Layer, add func(int64)) map[digest.Digest]v1.Layer {
	out := make(map[digest.Digest]v1.Layer, len(layers))
	for d, l := range layers {
		out[d] = countedLayer{Layer: l, add: add}
	}
	return out
}

type countedLayer struct {
	v1.Layer
	add func(int64)
}

func (c countedLayer) Compressed() (io.ReadCloser, error) {
	r, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: r, add: c.add}, nil
}

type countingReader struct {
	io.ReadCloser
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.add(int64(n))
	return n, err
}
