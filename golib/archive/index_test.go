package archive

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTar(t *testing.T, entries []tar.Header, bodies map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, h := range entries {
		h := h
		h.Size = int64(len(bodies[h.Name]))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(bodies[h.Name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestIndexReadsMembersAndFollowsLinks(t *testing.T) {
	long := strings.Repeat("d/", 80) + "file" // needs a PAX header
	p := writeTar(t, []tar.Header{
		{Name: "./manifest.json", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "abc/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "def/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../abc/layer.tar"},
		{Name: long, Typeflag: tar.TypeReg, Mode: 0o644},
	}, map[string]string{"./manifest.json": "[]", "abc/layer.tar": "LAYER", long: "deep"})
	idx, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	for name, want := range map[string]string{"manifest.json": "[]", "def/layer.tar": "LAYER", long: "deep"} {
		got, err := idx.ReadFile(name, 100)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := idx.ReadFile("abc/layer.tar", 2); err == nil {
		t.Error("a member over the limit was read")
	}
	if _, err := idx.ReadFile("missing", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing member: %v", err)
	}
}

func TestIndexRejectsNonTar(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(p, []byte(strings.Repeat("not a tar ", 100)), 0o644)
	if _, err := Open(p); err == nil {
		t.Fatal("a text file was indexed as a tar")
	}
}
