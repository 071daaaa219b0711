package imagetar

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/safego"
)

func TestConfigReencodedAsDockerDoes(t *testing.T) {
	// A string Cmd becomes a list, unknown fields go, HTML is escaped, the
	// config's own "parent" (an image ID) does not leak into the v1 fields.
	raw := []byte(`{"parent":"sha256:aaaa","created":"2020-01-02T03:04:05.10+01:00","config":{"Cmd":"run me","Labels":{"a":"<&>"},"Extra":1},"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}`)
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(cfg.Config)
	want := `{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["run me"],"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"a":"\u003c\u0026\u003e"}}`
	if string(got) != want {
		t.Errorf("config re-encoded as\n%s\nwant\n%s", got, want)
	}
	if cfg.v1Image.Parent != "" {
		t.Errorf("the image parent leaked into the v1 parent: %q", cfg.v1Image.Parent)
	}
	layers, err := v1Layers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if created, _ := json.Marshal(layers[0].Created); string(created) != `"2020-01-02T03:04:05.1+01:00"` {
		t.Errorf("created re-encoded as %s", created)
	}
}

func TestBadConfigsAreContentErrors(t *testing.T) {
	for _, raw := range []string{`{`, `{"rootfs":{"diff_ids":[]}}`, `{"rootfs":{"diff_ids":["nope"]}}`, `{"created":"yesterday","rootfs":{"diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}`} {
		if _, err := parseConfig([]byte(raw)); err == nil {
			t.Errorf("%s: accepted", raw)
		} else if _, ok := err.(*ContentError); !ok {
			t.Errorf("%s: %T %v", raw, err, err)
		}
	}
}

func TestDockerVersions(t *testing.T) {
	cases := map[string]dockerFlavour{
		"":                {style: headerStyle{typeBits: true}},
		"19.03.5":         {style: headerStyle{ownerNames: true, typeBits: true}},
		"20.10.24+dfsg1":  {style: headerStyle{ownerNames: true, typeBits: true}},
		"23.0.6":          {style: headerStyle{typeBits: true}},
		"24.0.7-0ubuntu4": {},
		"25":              {ociBased: true, platform: true},
		"25.0.2":          {ociBased: true, platform: true},
		"25.0.3":          {ociBased: true, indexUntagged: true, platform: true},
		"25.0.6":          {ociBased: true, indexUntagged: true},
		"26.0.0":          {ociBased: true, indexUntagged: true, platform: true},
		"26.0.1":          {ociBased: true, indexUntagged: true},
		"27.5.1":          {ociBased: true, indexUntagged: true},
	}
	for v, want := range cases {
		got, err := ParseDockerVersion(v)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", v, got, err, want)
		}
	}
	for _, bad := range []string{"latest", "v20", "x.1", "20.10 beta"} {
		if _, err := ParseDockerVersion(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWalkOrderIsComponentWise(t *testing.T) {
	entries := []entry{{name: "a.json"}, {name: "a/b"}, {name: "a"}, {name: "B"}, {name: "a/VERSION"}}
	walkOrder(entries)
	var got []string
	for _, e := range entries {
		got = append(got, e.name)
	}
	want := []string{"B", "a", "a/VERSION", "a/b", "a.json"}
	if len(got) != len(want) {
		t.Fatal(got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walk order %v, want %v", got, want)
		}
	}
}

// Staging and writing run concurrently; whatever the order layers finish
// in, each layer.tar is its layer, and a failing layer fails the archive
// with its own error, not the others' cancellation.
func TestWriteStagesAndFails(t *testing.T) {
	img, err := random.Image(300000, 5)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Write(context.Background(), &out, []Image{{Image: img}}, Options{StagingDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	members := tarMembers(t, &out)
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(members["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v %s", err, members["manifest.json"])
	}
	for i, name := range manifest[0].Layers {
		if got := digest.FromBytes(members[name]).String(); got != cfg.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: %s, want %s", i, got, cfg.RootFS.DiffIDs[i])
		}
	}

	broken := errors.New("the registry went away")
	layers, _ := img.Layers()
	failing, err := mutate.Append(empty.Image, append(layerAdds(layers[:4]), mutate.Addendum{Layer: failingLayer{Layer: layers[4], err: broken}})...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), io.Discard, []Image{{Image: failing}}, Options{StagingDir: t.TempDir()}); !errors.Is(err, broken) {
		t.Fatalf("got %v, want the failing layer's error", err)
	}
}

// tarMembers reads an archive into name -> contents.
func tarMembers(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	members := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return members
		}
		if err != nil {
			t.Fatal(err)
		}
		members[h.Name], _ = io.ReadAll(tr)
	}
}

func layerAdds(layers []v1.Layer) []mutate.Addendum {
	var out []mutate.Addendum
	for _, l := range layers {
		out = append(out, mutate.Addendum{Layer: l})
	}
	return out
}

type failingLayer struct {
	v1.Layer
	err error
}

func (f failingLayer) Compressed() (io.ReadCloser, error) { return nil, f.err }

// A layer whose reader panics on a staging goroutine fails the archive
// with the panic as its error; the process goes on.
func TestAPanicWhileStagingIsTheArchivesError(t *testing.T) {
	img, err := random.Image(100000, 3)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	panicking, err := mutate.Append(empty.Image, append(layerAdds(layers[:2]), mutate.Addendum{Layer: panickingLayer{Layer: layers[2]}})...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Write(context.Background(), io.Discard, []Image{{Image: panicking}}, Options{StagingDir: t.TempDir()})
	var perr *safego.PanicError
	if !errors.As(err, &perr) || perr.Message() != "the layer reader broke" {
		t.Fatalf("got %v, want the layer's panic", err)
	}
}

type panickingLayer struct{ v1.Layer }

func (panickingLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(panickingReader{}), nil
}

type panickingReader struct{}

func (panickingReader) Read([]byte) (int, error) { panic("the layer reader broke") }

// Docker's OCI-based writer changed within 25 and 26: which of its patch
// releases lists an untagged image in index.json, and which put the
// platform (all of it, os.version included) in the manifests.
func TestDocker25Patches(t *testing.T) {
	base, err := random.Image(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := base.ConfigFile()
	cfg.Architecture, cfg.OS, cfg.OSVersion, cfg.Variant = "amd64", "linux", "10.0", "v2"
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const platform = `"platform":{"architecture":"amd64","os":"linux","os.version":"10.0","variant":"v2"}`
	cases := []struct {
		version           string
		listed, platforms bool
	}{{"25", false, true}, {"25.0.3", true, true}, {"25.0.6", true, false}, {"26.0.0", true, true}, {"27", true, false}}
	for _, c := range cases {
		var out bytes.Buffer
		if _, err := Write(context.Background(), &out, []Image{{Image: img}}, Options{DockerVersion: c.version, StagingDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		members := map[string]string{}
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			members[h.Name] = string(b)
		}
		var index struct {
			Manifests []struct{ Digest digest.Digest }
		}
		if err := json.Unmarshal([]byte(members["index.json"]), &index); err != nil {
			t.Fatal(err)
		}
		if got := len(index.Manifests) == 1; got != c.listed {
			t.Errorf("%s: index.json %s", c.version, members["index.json"])
		}
		if !c.listed {
			continue
		}
		manifest := members["blobs/sha256/"+index.Manifests[0].Digest.Encoded()]
		for what, doc := range map[string]string{"index.json": members["index.json"], "manifest": manifest} {
			if got := strings.Contains(doc, platform); got != c.platforms {
				t.Errorf("%s: %s has the platform: %v: %s", c.version, what, got, doc)
			}
		}
	}
}
