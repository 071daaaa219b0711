package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// memSource is an inspect.Cacheable over a map, counting reads; a non-nil
// denied is what its Resolve answers.
type memSource struct {
	scope    string
	denied   error
	top      v1.Hash
	blobs    map[v1.Hash][]byte
	types    map[v1.Hash]types.MediaType
	reads    int
	resolves int
}

func (m *memSource) put(raw []byte, mt types.MediaType) v1.Hash {
	h, _ := v1.NewHash(digest.FromBytes(raw).String())
	m.blobs[h] = raw
	m.types[h] = mt
	return h
}

func (m *memSource) Resolve(context.Context) (v1.Descriptor, error) {
	m.resolves++
	if m.denied != nil {
		return v1.Descriptor{}, m.denied
	}
	return v1.Descriptor{Digest: m.top}, nil
}

func (m *memSource) Scope() string { return m.scope }

func (m *memSource) Manifest(_ context.Context, d v1.Hash) ([]byte, types.MediaType, error) {
	m.reads++
	raw, ok := m.blobs[d]
	if !ok {
		return nil, "", errors.New("missing")
	}
	return raw, m.types[d], nil
}

func (m *memSource) Config(_ context.Context, d v1.Hash) ([]byte, error) {
	m.reads++
	return m.blobs[d], nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func newImage(m *memSource, arch, variant string) v1.Hash {
	cfg := m.put(mustJSON(map[string]any{"architecture": arch, "variant": variant, "os": "linux", "created": "2024-05-06T07:08:09Z",
		"config": map[string]any{"Env": []string{"ARCH=" + arch}}}), types.OCIConfigJSON)
	layer, _ := v1.NewHash(digest.FromString(arch).String())
	manifest := map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": map[string]any{"mediaType": types.OCIConfigJSON, "digest": cfg.String(), "size": 1},
		"layers": []any{map[string]any{"mediaType": types.OCILayer, "digest": layer.String(), "size": 42}}}
	return m.put(mustJSON(manifest), types.OCIManifestSchema1)
}

func newIndexSource() (*memSource, map[string]v1.Hash) {
	m := &memSource{blobs: map[v1.Hash][]byte{}, types: map[v1.Hash]types.MediaType{}}
	imgs := map[string]v1.Hash{"amd64": newImage(m, "amd64", ""), "arm64": newImage(m, "arm64", "v8"), "arm": newImage(m, "arm", "v7")}
	var manifests []any
	for _, arch := range []string{"amd64", "arm64", "arm"} {
		p := map[string]any{"os": "linux", "architecture": arch}
		if arch == "arm" {
			p["variant"] = "v7"
		}
		manifests = append(manifests, map[string]any{"mediaType": types.OCIManifestSchema1, "digest": imgs[arch].String(), "size": 1, "platform": p})
	}
	// An attestation entry, as BuildKit writes: never chosen.
	manifests = append(manifests, map[string]any{"mediaType": types.OCIManifestSchema1, "digest": imgs["amd64"].String(), "size": 1, "platform": map[string]any{"os": "unknown", "architecture": "unknown"}})
	m.top = m.put(mustJSON(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex, "manifests": manifests}), types.OCIImageIndex)
	return m, imgs
}

func TestPlatformChoice(t *testing.T) {
	m, imgs := newIndexSource()
	cases := []struct {
		want Platform
		arch string
	}{
		{Platform{OS: "linux", Architecture: "arm64"}, "arm64"},
		{Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64"},
		{Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "arm"},
		{Platform{OS: "linux", Architecture: "x86_64"}.Normalize(), "amd64"},
	}
	for _, c := range cases {
		out, err := New().Inspect(context.Background(), m, c.want)
		if err != nil {
			t.Fatalf("%v: %v", c.want, err)
		}
		if out.PlatformDigest != imgs[c.arch].String() || out.Architecture != c.arch || out.Digest != m.top.String() {
			t.Errorf("%v chose %s (%s)", c.want, out.Architecture, out.PlatformDigest)
		}
	}
	_, err := New().Inspect(context.Background(), m, Platform{OS: "linux", Architecture: "arm", Variant: "v6"})
	var nf *PlatformNotFoundError
	if !errors.As(err, &nf) || len(nf.Available) != 3 {
		t.Fatalf("want PlatformNotFoundError listing 3 platforms, got %v", err)
	}
}

func TestDefaultPlatformIsTheHost(t *testing.T) {
	p := Platform{}.Normalize()
	if p != HostPlatform() {
		t.Fatalf("empty platform normalised to %v, host is %v", p, HostPlatform())
	}
}

func TestResultsAreCachedByDigest(t *testing.T) {
	m, _ := newIndexSource()
	in := New()
	plat := Platform{OS: "linux", Architecture: "amd64"}
	first, err := in.Inspect(context.Background(), m, plat)
	if err != nil {
		t.Fatal(err)
	}
	reads := m.reads
	second, err := in.Inspect(context.Background(), m, plat)
	if err != nil {
		t.Fatal(err)
	}
	if m.reads != reads || m.resolves != 2 {
		t.Fatalf("a digest seen before was read again (%d reads, %d resolves)", m.reads-reads, m.resolves)
	}
	if first.PlatformDigest != second.PlatformDigest {
		t.Fatal("cached result differs")
	}
	// Another platform of the same index is a different entry.
	if _, err := in.Inspect(context.Background(), m, Platform{OS: "linux", Architecture: "arm64"}); err != nil || m.reads == reads {
		t.Fatalf("another platform came from the cache: %v", err)
	}
}

func TestCachedResultsStayInTheirScopeAndBehindResolve(t *testing.T) {
	m, _ := newIndexSource()
	m.scope = "registry/private"
	in := New()
	plat := Platform{OS: "linux", Architecture: "amd64"}
	if _, err := in.Inspect(context.Background(), m, plat); err != nil {
		t.Fatal(err)
	}

	// The same digest named in another repository is read there, not served.
	elsewhere := *m
	elsewhere.scope = "registry/other"
	elsewhere.blobs = map[v1.Hash][]byte{}
	if out, err := in.Inspect(context.Background(), &elsewhere, plat); err == nil {
		t.Fatalf("another scope was served the cached result %s", out.Digest)
	}

	// A caller the source turns away gets the refusal, not the cached result.
	refusal := errors.New("unauthorized")
	m.denied = refusal
	if out, err := in.Inspect(context.Background(), m, plat); !errors.Is(err, refusal) {
		t.Fatalf("a refused Resolve was answered from the cache: %v, %v", out.Digest, err)
	}
}

func TestMalformedContentIsContentError(t *testing.T) {
	m := &memSource{blobs: map[v1.Hash][]byte{}, types: map[v1.Hash]types.MediaType{}}
	m.top = m.put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`), types.OCIManifestSchema1)
	_, err := New().Inspect(context.Background(), m, HostPlatform())
	var ce *ContentError
	if !errors.As(err, &ce) {
		t.Fatalf("want ContentError, got %v", err)
	}
}

func TestUnlabelledManifestsAreRecognised(t *testing.T) {
	if got := effectiveMediaType([]byte(`{"schemaVersion":2,"manifests":[]}`), ""); got != types.OCIImageIndex {
		t.Errorf("index without mediaType read as %q", got)
	}
	if got := effectiveMediaType([]byte(`{"schemaVersion":1,"fsLayers":[]}`), "application/json"); got != types.DockerManifestSchema1 {
		t.Errorf("schema 1 read as %q", got)
	}
	if got := effectiveMediaType([]byte(`{"schemaVersion":2,"config":{}}`), "text/plain"); got != types.OCIManifestSchema1 {
		t.Errorf("image manifest read as %q", got)
	}
}
