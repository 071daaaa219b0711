// Package inspect owns reading an image's metadata without its layers: it
// walks from a top-level manifest (an index or an image) to the chosen
// platform's manifest and config, whatever transport they come from, and
// shapes the result the way `skopeo inspect` does.
//
// Manifests and configs are immutable by digest, so results are kept per
// (repository, top-level digest, platform): a caller who has already resolved
// a tag or digest in a repository pays nothing more for a digest seen there
// before. What a result may not skip is asking the registry whether this
// caller may read it: see Cacheable.
package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source is where one image's manifests and configs are read from.
// Implementations verify every byte they return against its digest.
type Source interface {
	// Resolve returns the descriptor of the top-level manifest the caller's
	// reference names now.
	Resolve(ctx context.Context) (v1.Descriptor, error)
	// Manifest returns the manifest with digest d and its media type.
	Manifest(ctx context.Context, d v1.Hash) ([]byte, types.MediaType, error)
	// Config returns the config blob with digest d.
	Config(ctx context.Context, d v1.Hash) ([]byte, error)
}

// Cacheable is a Source whose results an Inspector may keep and serve again.
// Its Resolve must ask the source with the caller's credentials, even for a
// digest reference: that answer is the only proof that this caller may read
// what the cache holds.
type Cacheable interface {
	Source
	// Scope names the repository the source reads, and how (e.g. with or
	// without TLS verification). A result is served only to sources of the
	// scope it was read in: the same digest in another repository is another
	// question, which that repository must answer.
	Scope() string
}

// Output has the fields and meanings of `skopeo inspect`, plus PlatformDigest.
type Output struct {
	Name           string            `json:"Name,omitempty"`
	Digest         string            `json:"Digest"`
	PlatformDigest string            `json:"PlatformDigest"`
	RepoTags       []string          `json:"RepoTags"`
	Created        *time.Time        `json:"Created"`
	DockerVersion  string            `json:"DockerVersion"`
	Labels         map[string]string `json:"Labels"`
	Architecture   string            `json:"Architecture"`
	Variant        string            `json:"Variant,omitempty"`
	Os             string            `json:"Os"`
	Layers         []string          `json:"Layers"`
	LayersData     []LayerData       `json:"LayersData"`
	Env            []string          `json:"Env"`
}

// LayerData describes one layer blob as the manifest lists it.
type LayerData struct {
	MIMEType    string            `json:"MIMEType"`
	Digest      string            `json:"Digest"`
	Size        int64             `json:"Size"`
	Annotations map[string]string `json:"Annotations"`
}

// ContentError reports a manifest or config that cannot be read: malformed,
// of an unsupported media type, or not matching its digest.
type ContentError struct{ Reason string }

func (e *ContentError) Error() string { return e.Reason }

// PlatformNotFoundError reports an index with no image for the platform asked.
type PlatformNotFoundError struct {
	Want      Platform
	Available []string
}

func (e *PlatformNotFoundError) Error() string {
	return fmt.Sprintf("no image for platform %s in the index (it has %s)", e.Want, strings.Join(e.Available, ", "))
}

// Inspector inspects images and remembers what it read, by scope and digest.
type Inspector struct {
	mu      sync.Mutex
	results map[string]Output
	order   []string
}

// maxCached bounds the cache; an entry is a few KB.
const maxCached = 4096

// New returns an empty Inspector.
func New() *Inspector { return &Inspector{results: map[string]Output{}} }

// Inspect reads the image src names for platform, from the cache when its
// top-level digest was read before in the same scope, and only once src has
// resolved it for this caller. Name and RepoTags are the caller's to fill:
// they depend on how the image was named, not on its content.
//
// Only sources whose content cannot change under a digest belong here (a
// registry verifies nothing for us, but we verified it the first time);
// local files can be altered on disk, and are cheap to read again, so they
// go through Read.
func (in *Inspector) Inspect(ctx context.Context, src Cacheable, platform Platform) (Output, error) {
	top, err := src.Resolve(ctx)
	if err != nil {
		return Output{}, err
	}
	key := src.Scope() + " " + top.Digest.String() + " " + platform.String()
	if out, ok := in.lookup(key); ok {
		return out, nil
	}
	out, err := read(ctx, src, top.Digest, platform)
	if err != nil {
		return Output{}, err
	}
	in.store(key, out)
	return out, nil
}

// Read inspects without the cache, verifying every byte it reads.
func Read(ctx context.Context, src Source, platform Platform) (Output, error) {
	top, err := src.Resolve(ctx)
	if err != nil {
		return Output{}, err
	}
	return read(ctx, src, top.Digest, platform)
}

func (in *Inspector) lookup(key string) (Output, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	out, ok := in.results[key]
	return out, ok
}

func (in *Inspector) store(key string, out Output) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := in.results[key]; ok {
		return
	}
	if len(in.order) >= maxCached {
		delete(in.results, in.order[0])
		in.order = in.order[1:]
	}
	in.results[key] = out
	in.order = append(in.order, key)
}

func read(ctx context.Context, src Source, topDigest v1.Hash, platform Platform) (Output, error) {
	raw, mediaType, err := src.Manifest(ctx, topDigest)
	if err != nil {
		return Output{}, err
	}
	mediaType = effectiveMediaType(raw, mediaType)
	imageDigest := topDigest
	if mediaType.IsIndex() {
		index, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return Output{}, &ContentError{Reason: "malformed index: " + err.Error()}
		}
		chosen, err := ChoosePlatform(index, platform)
		if err != nil {
			return Output{}, err
		}
		imageDigest = chosen.Digest
		if raw, mediaType, err = src.Manifest(ctx, chosen.Digest); err != nil {
			return Output{}, err
		}
		mediaType = effectiveMediaType(raw, mediaType)
	}
	var out Output
	switch {
	case mediaType.IsSchema1():
		out, err = fromSchema1(raw)
	case mediaType.IsImage():
		out, err = fromImageManifest(ctx, src, raw, mediaType == types.DockerManifestSchema2)
	default:
		err = &ContentError{Reason: fmt.Sprintf("unsupported manifest media type %q", mediaType)}
	}
	if err != nil {
		return Output{}, err
	}
	out.Digest = topDigest.String()
	out.PlatformDigest = imageDigest.String()
	return out, nil
}

// effectiveMediaType trusts the manifest's own mediaType field over a
// transport's label, since static registries and hand-made layouts often
// label manifests wrongly or not at all.
func effectiveMediaType(raw []byte, labelled types.MediaType) types.MediaType {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return labelled
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case labelled.IsIndex() || labelled.IsImage() || labelled.IsSchema1():
		return labelled
	case probe.SchemaVersion == 1 && probe.FSLayers != nil:
		return types.DockerManifestSchema1
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	}
	return labelled
}

func fromImageManifest(ctx context.Context, src Source, raw []byte, docker bool) (Output, error) {
	manifest, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return Output{}, &ContentError{Reason: "malformed manifest: " + err.Error()}
	}
	configBytes, err := src.Config(ctx, manifest.Config.Digest)
	if err != nil {
		return Output{}, err
	}
	var config imageConfig
	if err := json.Unmarshal(configBytes, &config); err != nil {
		return Output{}, &ContentError{Reason: "malformed image config: " + err.Error()}
	}
	out := config.output(docker)
	out.Layers = []string{}
	out.LayersData = []LayerData{}
	for _, l := range manifest.Layers {
		annotations := l.Annotations
		if len(annotations) == 0 {
			annotations = nil
		}
		out.Layers = append(out.Layers, l.Digest.String())
		out.LayersData = append(out.LayersData, LayerData{
			MIMEType: string(l.MediaType), Digest: l.Digest.String(), Size: l.Size, Annotations: annotations,
		})
	}
	return out, nil
}

// imageConfig is the part of an OCI or Docker image config inspect reports.
// Created is a pointer so an OCI config without one reports null, as skopeo
// does; skopeo reports Docker configs without one as the zero time.
type imageConfig struct {
	Created       *time.Time `json:"created"`
	DockerVersion string     `json:"docker_version"`
	Architecture  string     `json:"architecture"`
	Variant       string     `json:"variant"`
	OS            string     `json:"os"`
	Config        *struct {
		Labels map[string]string `json:"Labels"`
		Env    []string          `json:"Env"`
	} `json:"config"`
}

func (c imageConfig) output(docker bool) Output {
	if c.Created == nil && docker {
		c.Created = &time.Time{}
	}
	out := Output{
		RepoTags: []string{}, Created: c.Created, DockerVersion: c.DockerVersion,
		Architecture: c.Architecture, Variant: c.Variant, Os: c.OS,
	}
	if c.Config != nil {
		out.Labels = c.Config.Labels
		out.Env = c.Config.Env
	}
	return out
}

// fromSchema1 reads a Docker schema 1 manifest the way skopeo does: the
// newest v1 history entry stands in for the config, layers are listed base
// first, and their sizes are unknown (-1).
func fromSchema1(raw []byte) (Output, error) {
	var m struct {
		FSLayers []struct {
			BlobSum string `json:"blobSum"`
		} `json:"fsLayers"`
		History []struct {
			V1Compatibility string `json:"v1Compatibility"`
		} `json:"history"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return Output{}, &ContentError{Reason: "malformed schema 1 manifest: " + err.Error()}
	}
	if len(m.History) == 0 || len(m.History) != len(m.FSLayers) {
		return Output{}, &ContentError{Reason: "malformed schema 1 manifest: history and fsLayers differ in length"}
	}
	var config imageConfig
	if err := json.Unmarshal([]byte(m.History[0].V1Compatibility), &config); err != nil {
		return Output{}, &ContentError{Reason: "malformed schema 1 v1Compatibility: " + err.Error()}
	}
	out := config.output(true)
	out.Layers = []string{}
	out.LayersData = []LayerData{}
	for i := len(m.FSLayers) - 1; i >= 0; i-- {
		d := m.FSLayers[i].BlobSum
		out.Layers = append(out.Layers, d)
		out.LayersData = append(out.LayersData, LayerData{Digest: d, Size: -1})
	}
	return out, nil
}

// NotFoundError reports a local layout or archive that has no such image.
type NotFoundError struct{ Reason string }

func (e *NotFoundError) Error() string { return e.Reason }
