package imagesrc

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/inspect"
)

// fixture is one random image written in each local format.
type fixture struct {
	img                          v1.Image
	layoutDir, ociTar, dockerTar string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := fixture{img: img, layoutDir: filepath.Join(dir, "layout"), ociTar: filepath.Join(dir, "oci.tar"), dockerTar: filepath.Join(dir, "docker.tar")}
	p, err := layout.Write(f.layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{imagespec.AnnotationRefName: "v1"})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, f.layoutDir, f.ociTar)
	tag, _ := name.NewTag("example.com/app:v1")
	if err := tarball.WriteToFile(f.dockerTar, tag, img); err != nil {
		t.Fatal(err)
	}
	return f
}

// tarDir writes dir's regular files into a tar at out, as oci-archive does.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(raw)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(raw)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sameImage checks that got is want: the same config, and layers whose
// bytes are those of want's, read through got.
func sameImage(t *testing.T, transport string, got, want v1.Image) {
	t.Helper()
	gotConfig, err := got.ConfigName()
	wantConfig, _ := want.ConfigName()
	if err != nil || gotConfig != wantConfig {
		t.Fatalf("%s: config %s (%v), want %s", transport, gotConfig, err, wantConfig)
	}
	gotLayers, err := got.Layers()
	wantLayers, _ := want.Layers()
	if err != nil || len(gotLayers) != len(wantLayers) {
		t.Fatalf("%s: %d layers (%v), want %d", transport, len(gotLayers), err, len(wantLayers))
	}
	for i, l := range gotLayers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatalf("%s: layer %d: %v", transport, i, err)
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		wantDiff, _ := wantLayers[i].DiffID()
		if err != nil || h != wantDiff {
			t.Errorf("%s: layer %d reads as %s (%v), want diff ID %s", transport, i, h, err, wantDiff)
		}
	}
}

// Each local transport opens the one image, read by Image (for pull, copy
// and save) and by Inspect.
func TestEveryLocalTransportOpensTheImage(t *testing.T) {
	f := newFixture(t)
	for _, loc := range []Location{
		{Transport: "oci", Path: f.layoutDir, RefName: "v1"},
		{Transport: "oci-archive", Path: f.ociTar, RefName: "v1"},
		{Transport: "docker-archive", Path: f.dockerTar, RefName: "example.com/app:v1"},
	} {
		src, err := Open(loc)
		if err != nil {
			t.Fatalf("%s: %v", loc.Transport, err)
		}
		img, err := src.Image(context.Background(), inspect.Platform{}.Normalize())
		if err != nil {
			t.Fatalf("%s: %v", loc.Transport, err)
		}
		sameImage(t, loc.Transport, img.Image, f.img)
		out, err := src.Inspect(context.Background(), inspect.New(), inspect.Platform{}.Normalize())
		if err != nil {
			t.Fatalf("%s: inspect: %v", loc.Transport, err)
		}
		if len(out.Layers) != 2 {
			t.Errorf("%s: inspect lists %d layers, want 2", loc.Transport, len(out.Layers))
		}
		if loc.Transport != "docker-archive" {
			// A layout's manifest is the image's own; a docker archive's
			// is generated (as skopeo does) and so has another digest.
			if d, _ := f.img.Digest(); out.Digest != d.String() {
				t.Errorf("%s: inspect digest %s, want %s", loc.Transport, out.Digest, d)
			}
		}
		src.Close()
	}
}

// An image that is not there is an *inspect.NotFoundError in every format.
func TestAMissingImageIsNotFound(t *testing.T) {
	f := newFixture(t)
	for _, loc := range []Location{
		{Transport: "oci", Path: f.layoutDir, RefName: "v2"},
		{Transport: "oci-archive", Path: f.ociTar, RefName: "v2"},
		{Transport: "docker-archive", Path: f.dockerTar, RefName: "example.com/app:v2"},
		{Transport: "oci", Path: filepath.Join(t.TempDir(), "nothing")},
		{Transport: "oci-archive", Path: filepath.Join(t.TempDir(), "nothing.tar")},
		{Transport: "docker-archive", Path: filepath.Join(t.TempDir(), "nothing.tar")},
	} {
		src, err := Open(loc)
		if err == nil {
			_, err = src.Image(context.Background(), inspect.Platform{}.Normalize())
			src.Close()
		}
		var notFound *inspect.NotFoundError
		if !errors.As(err, &notFound) {
			t.Errorf("%s %s:%s: %T %v, want a NotFoundError", loc.Transport, loc.Path, loc.RefName, err, err)
		}
	}
}

// A layout's index gives the platform asked for, or says which it has.
func TestALayoutIndexGivesThePlatform(t *testing.T) {
	amd, _ := random.Image(512, 1)
	arm, _ := random.Image(512, 1)
	index := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err == nil {
		err = p.AppendIndex(index)
	}
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(Location{Transport: "oci", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	img, err := src.Image(context.Background(), inspect.Platform{OS: "linux", Architecture: "arm64"}.Normalize())
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, "oci index", img.Image, arm)
	_, err = src.Image(context.Background(), inspect.Platform{OS: "linux", Architecture: "s390x"}.Normalize())
	var noPlatform *inspect.PlatformNotFoundError
	if !errors.As(err, &noPlatform) {
		t.Errorf("s390x: %v, want a PlatformNotFoundError", err)
	}
}

// OpenArchive lists every image of either kind of archive with its names;
// an OCI archive that lacks a layer is refused before anything is read.
func TestOpenArchiveListsTheImages(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path, name string
	}{{f.ociTar, ""}, {f.dockerTar, "example.com/app:v1"}} {
		a, err := OpenArchive(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if len(a.Images) != 1 || len(a.Parents) != 1 {
			t.Fatalf("%s: %d images, %d parents, want 1", c.path, len(a.Images), len(a.Parents))
		}
		sameImage(t, c.path, a.Images[0].Image, f.img)
		if c.name != "" && (len(a.Images[0].Names) != 1 || a.Images[0].Names[0] != c.name) {
			t.Errorf("%s: names %v, want %s", c.path, a.Images[0].Names, c.name)
		}
		a.Close()
	}

	layers, _ := f.img.Layers()
	gone, _ := layers[1].Digest()
	if err := os.Remove(filepath.Join(f.layoutDir, "blobs", gone.Algorithm, gone.Hex)); err != nil {
		t.Fatal(err)
	}
	lacking := filepath.Join(t.TempDir(), "lacking.tar")
	tarDir(t, f.layoutDir, lacking)
	_, err := OpenArchive(lacking)
	var bad *inspect.ContentError
	if !errors.As(err, &bad) {
		t.Errorf("an archive without a layer: %v, want a ContentError", err)
	}
}

// An OCI archive is read in place, so a member cut short must be found
// when the archive is opened, as a ContentError that says so.
func TestAnOCIArchiveCutShortIsRefused(t *testing.T) {
	f := newFixture(t)
	layers, _ := f.img.Layers()
	last, _ := layers[1].Digest()
	idx, err := archive.Open(f.ociTar)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.Stat(filepath.Join("blobs", last.Algorithm, last.Hex))
	idx.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(f.ociTar)
	cut := filepath.Join(t.TempDir(), "cut.tar")
	if err := os.WriteFile(cut, raw[:m.Offset+m.Size/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Location{Transport: "oci-archive", Path: cut, RefName: "v1"})
	var bad *inspect.ContentError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("an archive cut short: %v, want a ContentError saying it ends early", err)
	}
}
