package imagetar

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// The types below spell an image config the way Docker's daemon re-encodes
// it for the legacy `<v1 id>/json` files: the same field names, order, tags
// and types, so that encoding/json gives the same bytes Docker's does (field
// order, omitted and always-present fields, HTML escaping, time format) and
// fields Docker does not know are dropped as Docker drops them. The v1 IDs
// are hashes of these bytes, so one byte of difference changes every name in
// the archive.

// strSlice is a list of strings that also accepts a single string, as
// Docker's config parser does for Cmd, Entrypoint and Shell.
type strSlice []string

func (s *strSlice) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	list := make([]string, 0, 1)
	if err := json.Unmarshal(b, &list); err != nil {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		list = append(list, one)
	}
	*s = list
	return nil
}

type healthConfig struct {
	Test        []string      `json:",omitempty"`
	Interval    time.Duration `json:",omitempty"`
	Timeout     time.Duration `json:",omitempty"`
	StartPeriod time.Duration `json:",omitempty"`
	Retries     int           `json:",omitempty"`
}

// containerConfig is Docker's container configuration as images carry it.
type containerConfig struct {
	Hostname        string
	Domainname      string
	User            string
	AttachStdin     bool
	AttachStdout    bool
	AttachStderr    bool
	ExposedPorts    map[string]struct{} `json:",omitempty"`
	Tty             bool
	OpenStdin       bool
	StdinOnce       bool
	Env             []string
	Cmd             strSlice
	Healthcheck     *healthConfig `json:",omitempty"`
	ArgsEscaped     bool          `json:",omitempty"`
	Image           string
	Volumes         map[string]struct{}
	WorkingDir      string
	Entrypoint      strSlice
	NetworkDisabled bool   `json:",omitempty"`
	MacAddress      string `json:",omitempty"`
	OnBuild         []string
	Labels          map[string]string
	StopSignal      string   `json:",omitempty"`
	StopTimeout     *int     `json:",omitempty"`
	Shell           strSlice `json:",omitempty"`
}

// v1Image is the legacy per-layer image description.
type v1Image struct {
	ID              string           `json:"id,omitempty"`
	Parent          string           `json:"parent,omitempty"`
	Comment         string           `json:"comment,omitempty"`
	Created         time.Time        `json:"created"`
	Container       string           `json:"container,omitempty"`
	ContainerConfig containerConfig  `json:"container_config,omitempty"`
	DockerVersion   string           `json:"docker_version,omitempty"`
	Author          string           `json:"author,omitempty"`
	Config          *containerConfig `json:"config,omitempty"`
	Architecture    string           `json:"architecture,omitempty"`
	Variant         string           `json:"variant,omitempty"`
	OS              string           `json:"os,omitempty"`
	Size            int64            `json:",omitempty"`
}

// imageConfig is an image config as Docker reads it: the v1 fields, with
// the config's own "parent" (an image ID, not a v1 ID) kept apart from them.
type imageConfig struct {
	v1Image
	Parent string `json:"parent,omitempty"`
	// The rest of the platform Docker 25 puts in the manifests it writes.
	OSVersion  string   `json:"os.version,omitempty"`
	OSFeatures []string `json:"os.features,omitempty"`
	RootFS     *struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs,omitempty"`
}

// ContentError reports an image Docker could not save either.
type ContentError struct{ Reason string }

func (e *ContentError) Error() string { return e.Reason }

func parseConfig(raw []byte) (*imageConfig, error) {
	var cfg imageConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, &ContentError{"the image config cannot be read as Docker reads it: " + err.Error()}
	}
	if cfg.RootFS == nil || len(cfg.RootFS.DiffIDs) == 0 {
		return nil, &ContentError{"the image config lists no layers (rootfs.diff_ids)"}
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, &ContentError{fmt.Sprintf("the image config has an invalid diff ID %q: %v", d, err)}
		}
	}
	return &cfg, nil
}

// chainIDs returns the chain ID of each layer stack, base first:
// chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]).
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	chain := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			chain[i] = d
			continue
		}
		chain[i] = digest.FromString(chain[i-1].String() + " " + d.String())
	}
	return chain
}

// v1ID is the legacy layer ID Docker names a layer's directory by: the
// digest of the layer's v1 description (without its ID) with the chain ID
// as "layer_id" and the parent's full v1 digest as "parent", every key
// sorted as a JSON object of raw values.
func v1ID(img v1Image, chainID, parent digest.Digest) (digest.Digest, error) {
	img.ID = ""
	encoded, err := json.Marshal(img)
	if err != nil {
		return "", err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(encoded, &fields); err != nil {
		return "", err
	}
	fields["layer_id"], _ = json.Marshal(chainID)
	if parent != "" {
		fields["parent"], _ = json.Marshal(parent)
	}
	sorted, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	return digest.FromBytes(sorted), nil
}

// v1Layers describes each layer of an image as the legacy layout does: the
// top layer carries the image's own description, the ones below only the
// 1970 creation time Docker gives them; each gets its v1 ID and its parent's.
func v1Layers(cfg *imageConfig) ([]v1Image, error) {
	diffIDs := cfg.RootFS.DiffIDs
	chain := chainIDs(diffIDs)
	out := make([]v1Image, len(diffIDs))
	var parent digest.Digest
	for i := range diffIDs {
		layer := v1Image{Created: time.Unix(0, 0).UTC()}
		if i == len(diffIDs)-1 {
			layer = cfg.v1Image
		}
		id, err := v1ID(layer, chain[i], parent)
		if err != nil {
			return nil, err
		}
		layer.ID = id.Encoded()
		if parent != "" {
			layer.Parent = parent.Encoded()
		}
		layer.OS = cfg.OS
		out[i] = layer
		parent = id
	}
	return out, nil
}
