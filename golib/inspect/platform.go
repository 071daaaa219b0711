package inspect

import (
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platform selects one image from a multi-arch index.
type Platform struct {
	OS           string
	Architecture string
	Variant      string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform is the platform of the machine we run on. go-containerregistry
// defaults to linux/amd64 everywhere; users of docker and skopeo expect the host.
func HostPlatform() Platform {
	p := Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// Normalize fills what the caller left out from the host and maps common
// aliases (x86_64, aarch64) onto the names images use.
func (p Platform) Normalize() Platform {
	host := HostPlatform()
	if p.OS == "" {
		p.OS = host.OS
	}
	if p.Architecture == "" {
		p.Architecture = host.Architecture
		if p.Variant == "" {
			p.Variant = host.Variant
		}
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	}
	return p
}

// variantMatches treats arm64's "" and "v8" as one, as the OCI spec allows.
func variantMatches(want, have, arch string) bool {
	if want == "" {
		return true
	}
	if arch == "arm64" {
		if want == "v8" && have == "" {
			return true
		}
	}
	return want == have
}

// ChoosePlatform picks the descriptor of index that matches want.
func ChoosePlatform(index *v1.IndexManifest, want Platform) (v1.Descriptor, error) {
	var available []string
	for _, d := range index.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestations and other non-image entries
		}
		have := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
		available = append(available, have.String())
		if have.OS == want.OS && have.Architecture == want.Architecture && variantMatches(want.Variant, have.Variant, have.Architecture) {
			return d, nil
		}
	}
	return v1.Descriptor{}, &PlatformNotFoundError{Want: want, Available: available}
}
