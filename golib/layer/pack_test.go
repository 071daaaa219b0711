package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/safego"
)

// A container's upper directory in overlay format packs as an OCI layer,
// and that layer unpacks to the same changes.
func TestPackOverlayUpperDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("overlay whiteouts need root")
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc", "new.conf"), []byte("new"), 0o640))
	must(os.Link(filepath.Join(dir, "etc", "new.conf"), filepath.Join(dir, "etc", "same.conf")))
	must(unix.Mknod(filepath.Join(dir, "etc", "removed"), unix.S_IFCHR, 0))
	must(os.MkdirAll(filepath.Join(dir, "var", "cache"), 0o755))
	must(unix.Setxattr(filepath.Join(dir, "var", "cache"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.WriteFile(filepath.Join(dir, "var", "cache", "fresh"), []byte("f"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "proc"), 0o555)) // the runtime's mount point
	must(os.Symlink("new.conf", filepath.Join(dir, "etc", "link")))

	var buf bytes.Buffer
	must(Pack(context.Background(), dir, &buf, PackOptions{Skip: []string{"/proc"}}))
	var got []string
	types := map[string]byte{}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		got = append(got, hdr.Name)
		types[hdr.Name] = hdr.Typeflag
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s has owner names", hdr.Name)
		}
	}
	want := []string{"etc/", "etc/link", "etc/new.conf", "etc/.wh.removed", "etc/same.conf", "var/", "var/cache/", "var/cache/.wh..wh..opq", "var/cache/fresh"}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entries %q, want %q", got, want)
		}
	}
	if types["etc/same.conf"] != tar.TypeLink || types["etc/link"] != tar.TypeSymlink {
		t.Errorf("link types: %v", types)
	}

	out := t.TempDir()
	if _, err := Unpack(context.Background(), bytes.NewReader(buf.Bytes()), out, Options{Whiteouts: OverlayWhiteouts}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(out, "etc", "removed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Whiteout("removed", fi); !ok {
		t.Error("the deletion did not unpack as a whiteout")
	}
	if opaque, _ := Opaque(filepath.Join(out, "var", "cache")); !opaque {
		t.Error("the opaque directory did not unpack as opaque")
	}
}

// TestPackRefusesAFileSwappedForAFIFO is a running container renaming a
// FIFO over a regular file after the pack listed it: the member is refused
// at once rather than the open blocking for ever (or, for a device, the
// host's disk going into the layer).
func TestPackRefusesAFileSwappedForAFIFO(t *testing.T) {
	upper := t.TempDir()
	victim := filepath.Join(upper, "victim")
	if err := os.WriteFile(victim, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	parent, err := os.Open(upper)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	var listed unix.Stat_t
	if err := unix.Fstatat(int(parent.Fd()), "victim", &listed, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(victim, victim+".old"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	p := packer{ctx: context.Background(), root: upper, w: io.Discard, links: map[[2]uint64]string{}}
	done := make(chan error, 1)
	safego.Go(func() error {
		_, err := p.entry("victim", parent, newStatInfo("victim", &listed))
		return err
	}, func(err error) { done <- err })
	select {
	case err := <-done:
		if !errors.Is(err, fsat.ErrChanged) {
			t.Fatalf("pack of a swapped file: %v, want fsat.ErrChanged", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pack hangs opening the FIFO")
	}
}
