package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzRead reads arbitrary manifests (index, image or schema 1, labelled
// with any media type) and configs. A digest cannot be guessed, so in the
// top manifest "sha256:CHILD" stands for the child manifest's digest and
// "sha256:CONFIG" (in either manifest) for the config's. Every failure must
// be one of the errors callers classify, and every success must be a
// result the engine can return: consistent layer lists and valid JSON.
func FuzzRead(f *testing.F) {
	oci := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:CONFIG","size":2},
		"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:CONFIG","size":-1,"annotations":{"a":"b"}}]}`
	config := `{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{"Env":["A=1"],"Labels":{"x":"y"}}}`
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:CHILD","size":1,
		"platform":{"os":"linux","architecture":"amd64"}}]}`
	schema1 := `{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:aa"},{"blobSum":"not a digest"}],
		"history":[{"v1Compatibility":"{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"B=2\"]}}"},{"v1Compatibility":"{}"}]}`
	manyLayers := `{"schemaVersion":2,"config":{"digest":"sha256:CONFIG"},"layers":[` +
		strings.TrimSuffix(strings.Repeat(`{"digest":"sha256:`+strings.Repeat("0", 64)+`","size":9223372036854775807},`, 1000), ",") + `]}`
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	seeds := []struct{ top, label, child, config, platform string }{
		{oci, "", "", config, ""},
		{strings.Replace(oci, "oci.image.manifest.v1", "docker.distribution.manifest.v2", 1), "", "", `{"os":"linux"}`, ""},
		{index, "", oci, config, "linux/amd64"},
		{index, string(types.DockerManifestList), oci, config, "linux/arm64/v8"},
		{index, "", index, config, "linux/amd64"},                                                            // an index whose child is an index
		{index, "", strings.Replace(oci, "sha256:CONFIG", "sha256:"+strings.Repeat("f", 64), 1), config, ""}, // a config digest that matches nothing
		{schema1, "", "", "", ""},
		{strings.Replace(schema1, `,{"v1Compatibility":"{}"}`, "", 1), string(types.DockerManifestSchema1Signed), "", "", ""}, // lengths differ
		{`{"schemaVersion":1,"fsLayers":[{}],"history":[{"v1Compatibility":"[1,2"}]}`, "", "", "", ""},
		{`{"schemaVersion":1,"fsLayers":[],"history":[]}`, "", "", "", ""},
		{manyLayers, "", "", config, ""},
		{deep, string(types.OCIManifestSchema1), "", "", ""},
		{oci, "", "", deep, ""},
		{oci, "", "", `{"created":"0000-00-00T00:00:00Z"}`, ""},
		{oci, "", "", `{"created":"9999-12-31T23:59:59.999999999+23:59"}`, ""},
		{oci, "", "", `{"config":{"Labels":{"\u0000":"\ud800"},"Env":[null,""]}}`, ""},
		{`{"mediaType":"text/plain","config":{},"manifests":[],"fsLayers":[]}`, "", "", "", ""},
		{`null`, string(types.OCIImageIndex), "", "", ""},
		{`{"manifests":null,"mediaType":""}`, "", "", "", "/"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.top), s.label, []byte(s.child), []byte(s.config), s.platform)
	}
	f.Fuzz(func(t *testing.T, top []byte, label string, child, config []byte, platform string) {
		m := &memSource{blobs: map[v1.Hash][]byte{}, types: map[v1.Hash]types.MediaType{}}
		configDigest := m.put(config, "")
		child = bytes.ReplaceAll(child, []byte("sha256:CONFIG"), []byte(configDigest.String()))
		childDigest := m.put(child, "")
		top = bytes.ReplaceAll(top, []byte("sha256:CONFIG"), []byte(configDigest.String()))
		top = bytes.ReplaceAll(top, []byte("sha256:CHILD"), []byte(childDigest.String()))
		m.top = m.put(top, types.MediaType(label))
		var p Platform
		parts := strings.SplitN(platform, "/", 3)
		p.OS = parts[0]
		if len(parts) > 1 {
			p.Architecture = parts[1]
		}
		if len(parts) > 2 {
			p.Variant = parts[2]
		}

		out, err := Read(context.Background(), m, p.Normalize())

		if err != nil {
			var ce *ContentError
			var pe *PlatformNotFoundError
			if !errors.As(err, &ce) && !errors.As(err, &pe) && err.Error() != "missing" {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		if out.Digest != m.top.String() || (out.PlatformDigest != m.top.String() && out.PlatformDigest != childDigest.String()) {
			t.Fatalf("digests %s, %s for top %s, child %s", out.Digest, out.PlatformDigest, m.top, childDigest)
		}
		if len(out.Layers) != len(out.LayersData) {
			t.Fatalf("%d layers, %d layer records", len(out.Layers), len(out.LayersData))
		}
		for i, l := range out.Layers {
			if out.LayersData[i].Digest != l {
				t.Fatalf("layer %d: %s and %s", i, l, out.LayersData[i].Digest)
			}
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("the result is not JSON: %v", err)
		}
	})
}
