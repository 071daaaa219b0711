package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/truemeta"
)

// writeLayer writes dir as a layer both to memory and through a
// content.FileWriter (the kernel-copy path a commit takes), checks the two
// agree, and returns the bytes.
func writeLayer(t *testing.T, dir string, opts LayerOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := WriteLayer(context.Background(), dir, &buf, opts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "layer.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fw := content.NewFileWriter(f)
	_, werr := WriteLayer(context.Background(), dir, fw, opts)
	if _, _, err := fw.Close(); werr != nil || err != nil {
		t.Fatal(werr, err)
	}
	onDisk, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, buf.Bytes()) {
		t.Fatalf("the FileWriter output (%d bytes) differs from the buffered one (%d)", len(onDisk), buf.Len())
	}
	return buf.Bytes()
}

// A container's upper directory in overlay format is written as an OCI
// layer, and that layer unpacks to the same changes.
func TestWriteLayerOverlayUpperDir(t *testing.T) {
	needRoot(t)
	up := newTree(t, t.TempDir())
	up.file("etc/new.conf", "new", 0o640).link("etc/same.conf", filepath.Join(up.root, "etc/new.conf")).whiteout("etc/removed").
		symlink("etc/link", "new.conf").dir("var/cache", 0o755).xattr("var/cache", "trusted.overlay.opaque", "y").
		file("var/cache/fresh", "f", 0o644).dir("proc", 0o555).file("big", string(bytes.Repeat([]byte("b"), 300<<10)), 0o644)
	settle(t, up.root)
	data := writeLayer(t, up.root, LayerOptions{Skip: []string{"/proc"}})
	var names []string
	types := map[string]byte{}
	for _, e := range readTar(t, data) {
		names = append(names, e.Name)
		types[e.Name] = e.Typeflag
	}
	wantNames := []string{"big", "etc/", "etc/link", "etc/new.conf", "etc/.wh.removed", "etc/same.conf",
		"var/", "var/cache/", "var/cache/.wh..wh..opq", "var/cache/fresh"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("entries\n got %q\nwant %q", names, wantNames)
	}
	if types["etc/same.conf"] != tar.TypeLink || types["etc/link"] != tar.TypeSymlink {
		t.Errorf("link types: %v", types)
	}

	out := t.TempDir()
	if _, err := layer.Unpack(context.Background(), bytes.NewReader(data), out, layer.Options{Whiteouts: layer.OverlayWhiteouts}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(out, "etc", "removed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := layer.Whiteout("removed", fi); !ok {
		t.Error("the deletion did not unpack as a whiteout")
	}
	if opaque, _ := layer.Opaque(filepath.Join(out, "var", "cache")); !opaque {
		t.Error("the opaque directory did not unpack as opaque")
	}
	// Written again from what it unpacked to, the layer is the same.
	if again := writeLayer(t, out, LayerOptions{}); !bytes.Equal(again, data) {
		t.Error("the unpacked layer writes different bytes")
	}
}

// What an unpack in a user namespace records in place of what the disk
// cannot hold is what the archive shows, and no internal attribute leaks.
func TestTrueMetadataRead(t *testing.T) {
	low := newTree(t, t.TempDir())
	truth := func(s truemeta.Stat) string { return s.Encode() }
	low.file("etc/shadow", "x", 0o600).xattr("etc/shadow", truemeta.StatXattr, truth(truemeta.Stat{Uid: 0, Gid: 42, Mode: 0o640})).
		file("bin/su", "su", 0o755).xattr("bin/su", truemeta.StatXattr, truth(truemeta.Stat{Uid: 0, Gid: 0, Mode: 0o4755})).
		file("dev/null", "", 0o600).xattr("dev/null", truemeta.StatXattr, truth(truemeta.Stat{Mode: 0o666, Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3})).
		file("dev/sda", "", 0o600).xattr("dev/sda", truemeta.StatXattr, truth(truemeta.Stat{Uid: 0, Gid: 6, Mode: 0o660, Typeflag: tar.TypeBlock, Devmajor: 8})).
		file("home/far", "far", 0o644).xattr("home/far", truemeta.StatXattr, truth(truemeta.Stat{Uid: 200000, Gid: 300000, Mode: 0o644})).
		xattr("home/far", "user.k3.trusted.mark", "t").xattr("home/far", "user.overlay.origin", "o").xattr("home/far", "user.kept", "k")
	settle(t, low.root)
	byName := map[string]readEntry{}
	for _, e := range readTar(t, export(t, Stack{low.root})) {
		byName[e.Name] = e
	}
	check := func(name string, typ byte, uid, gid int, mode int64, major, minor int64) {
		t.Helper()
		e := byName[name]
		if e.Header == nil {
			t.Fatalf("%s is missing", name)
		}
		if e.Typeflag != typ || e.Uid != uid || e.Gid != gid || e.Mode != mode || e.Devmajor != major || e.Devminor != minor {
			t.Errorf("%s: type %q %d:%d %o dev %d,%d; want %q %d:%d %o dev %d,%d", name, e.Typeflag, e.Uid, e.Gid, e.Mode,
				e.Devmajor, e.Devminor, typ, uid, gid, mode, major, minor)
		}
	}
	check("etc/shadow", tar.TypeReg, 0, 42, 0o640, 0, 0)
	check("bin/su", tar.TypeReg, 0, 0, 0o4755, 0, 0)
	check("dev/null", tar.TypeChar, 0, 0, 0o666, 1, 3)
	check("dev/sda", tar.TypeBlock, 0, 6, 0o660, 8, 0)
	check("home/far", tar.TypeReg, 200000, 300000, 0o644, 0, 0)
	if x := byName["home/far"].PAXRecords; len(x) != 2 || x["SCHILY.xattr.trusted.mark"] != "t" || x["SCHILY.xattr.user.kept"] != "k" {
		t.Errorf("home/far records %v, want trusted.mark and user.kept only", x)
	}
	for name, e := range byName {
		if len(e.PAXRecords) > 0 && name != "home/far" {
			t.Errorf("%s has records %v", name, e.PAXRecords)
		}
	}
}
