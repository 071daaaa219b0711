// Package imagetar owns writing images as tarballs: the `docker save`
// layouts, byte for byte as Docker writes them (the legacy one of Docker up
// to 24, with its v1 layer IDs, and the OCI layout plus manifest.json of
// Docker 25 and later), and OCI archives as skopeo's `oci-archive:` reads
// them. Images come in as go-containerregistry v1.Images, so a registry
// image and a store image are written by the same code.
package imagetar

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// Format is the kind of archive.
type Format string

const (
	DockerArchive Format = "docker-archive"
	OCIArchive    Format = "oci-archive"
)

// Image is one image to save and the names it is saved under.
type Image struct {
	Image v1.Image
	Tags  []name.Tag
	// Parent is the ID of the image this one was made from, if known. A
	// docker-archive names it, as docker save does, when it holds that
	// image too.
	Parent string
}

// Event reports progress: "layers" while layers are fetched and inflated,
// "write" while the archive is written.
type Event struct {
	Phase   string `json:"phase"`
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
}

// Options shape an archive.
type Options struct {
	Format Format
	// DockerVersion picks which Docker's `docker save` a docker-archive
	// matches byte for byte: "20.10" (and older), "23", "24", or "25" and
	// later for the OCI-based layout. The default is "23", the last legacy
	// writer that keeps type bits in modes and leaves owner names out.
	DockerVersion string
	// StagingDir holds the inflated layers of a docker-archive while it is
	// written (as unnamed files); the output's own directory is a good choice.
	StagingDir string
	Progress   func(Event)
}

// Saved describes one image written.
type Saved struct {
	ID       string   `json:"Id"`
	RepoTags []string `json:"RepoTags"`
}

// dockerFlavour is what a Docker version changes in its archives.
type dockerFlavour struct {
	style    headerStyle
	ociBased bool // Docker 25+: OCI layout plus manifest.json
	// Docker 25.0.3 and later list an image saved without a tag in
	// index.json, when it lists nothing else; 25.0.0 to 25.0.2 do not.
	indexUntagged bool
	// Up to 25.0.5 (and in 26.0.0) the OCI manifest's config descriptor and
	// index.json's descriptors carry the image's platform.
	platform bool
}

// ParseDockerVersion reads a version such as "20.10.24", "23", "24.0" or "27".
func ParseDockerVersion(version string) (dockerFlavour, error) {
	if version == "" {
		version = "23"
	}
	// Distributions add build metadata: "20.10.24+dfsg1", "24.0.7-0ubuntu4".
	release, _, _ := strings.Cut(strings.SplitN(version, "+", 2)[0], "-")
	major, rest, _ := strings.Cut(release, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 1 || strings.ContainsFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }) {
		return dockerFlavour{}, fmt.Errorf("dockerVersion %q is not a Docker version such as \"20.10\", \"23\", \"24\" or \"25\"", version)
	}
	switch {
	case n < 23: // 1.x through 20.10 (there was no 21 or 22)
		return dockerFlavour{style: headerStyle{ownerNames: true, typeBits: true}}, nil
	case n == 23:
		return dockerFlavour{style: headerStyle{typeBits: true}}, nil
	case n == 24:
		return dockerFlavour{}, nil
	}
	// A missing minor or patch is 0: "25" is 25.0.0.
	var minor, patch int
	if parts := strings.Split(rest, "."); rest != "" {
		minor, _ = strconv.Atoi(parts[0])
		if len(parts) > 1 {
			patch, _ = strconv.Atoi(parts[1])
		}
	}
	return dockerFlavour{ociBased: true,
		indexUntagged: n > 25 || minor > 0 || patch >= 3,
		platform:      n == 25 && minor == 0 && patch <= 5 || n == 26 && minor == 0 && patch == 0,
	}, nil
}

// Write writes images to w as one archive.
func Write(ctx context.Context, w io.Writer, images []Image, opts Options) ([]Saved, error) {
	images, err := mergeSameImages(images)
	if err != nil {
		return nil, err
	}
	switch opts.Format {
	case OCIArchive:
		return writeOCIArchive(ctx, w, images, opts)
	case DockerArchive, "":
		flavour, err := ParseDockerVersion(opts.DockerVersion)
		if err != nil {
			return nil, err
		}
		return writeDockerArchive(ctx, w, images, flavour, opts)
	}
	return nil, fmt.Errorf("unknown archive format %q; use docker-archive or oci-archive", opts.Format)
}

// mergeSameImages keeps one entry per image (by config digest), with the
// tags of every entry for it, in the order first given, as docker save does.
func mergeSameImages(images []Image) ([]Image, error) {
	var out []Image
	seen := map[v1.Hash]int{}
	for _, img := range images {
		id, err := img.Image.ConfigName()
		if err != nil {
			return nil, err
		}
		if i, ok := seen[id]; ok {
			out[i].Tags = appendNewTags(out[i].Tags, img.Tags)
			continue
		}
		seen[id] = len(out)
		out = append(out, Image{Image: img.Image, Tags: appendNewTags(nil, img.Tags), Parent: img.Parent})
	}
	return out, nil
}

func appendNewTags(tags, more []name.Tag) []name.Tag {
	for _, t := range more {
		dup := false
		for _, have := range tags {
			dup = dup || have.String() == t.String()
		}
		if !dup {
			tags = append(tags, t)
		}
	}
	return tags
}

// familiarName is a repository as docker prints it: "ubuntu", "me/app",
// "127.0.0.1:5000/app".
func familiarName(t name.Tag) string {
	reg, repo := t.RegistryStr(), t.RepositoryStr()
	if reg == name.DefaultRegistry || reg == "docker.io" {
		if rest, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(rest, "/") {
			return rest
		}
		return repo
	}
	return reg + "/" + repo
}

// fullName is a tag fully spelled, as containerd names images.
func fullName(t name.Tag) string {
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + t.RepositoryStr() + ":" + t.TagStr()
}

// createdTime is when Docker dates an image's files: its config's creation
// time, or 1970 for none (Docker's Chtimes refuses times before 1970).
func createdTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) {
		return time.Unix(0, 0)
	}
	return t
}

func epoch() time.Time { return time.Unix(0, 0) }

// imageLayers pairs the config's diff IDs with the manifest's layers, one for one.
func imageLayers(img v1.Image, cfg *imageConfig) (map[digest.Digest]v1.Layer, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, &ContentError{fmt.Sprintf("the manifest has %d layers but the config lists %d diff IDs", len(layers), len(cfg.RootFS.DiffIDs))}
	}
	out := map[digest.Digest]v1.Layer{}
	for i, l := range layers {
		out[cfg.RootFS.DiffIDs[i]] = l
	}
	return out, nil
}
