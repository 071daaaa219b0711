package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/archive/tartest"
)

// FuzzUnpack feeds arbitrary bytes, decompressed as a pull does, to Unpack
// with a lower layer beneath. Errors are expected; what must hold for every
// input is that nothing outside the layer directory changes (the lower
// layer's files may gain links, never new contents), no descriptor leaks,
// and nothing panics.
func FuzzUnpack(f *testing.F) {
	for _, c := range hostileCases {
		f.Add(tarBytes(f, c.ents("/")...), false)
		f.Add(tarBytes(f, c.ents("/")...), true)
	}
	for _, seed := range [][]byte{
		// Writing through a link into the lower layer, and through a
		// symlink made after a file of the same name.
		tarBytes(f, hard("keep2", "bin/keep"), reg("keep2", "replaced", 0o644)),
		tarBytes(f, reg("d", "x", 0o644), sym("d", "../../.."), reg("d/sentinel", "pwned", 0o644)),
		// Duplicated entries of every kind under one name.
		tarBytes(f, reg("a", "1", 0o644), dirEnt("a/", 0o755), reg("a/b", "2", 0o644), reg("a", "3", 0o644), sym("a", ".."), hard("a", "a")),
		// Whiteouts of the root, "." and "..", and an opaque marker above the root.
		tarBytes(f, reg(".wh..", "", 0), reg("x/.wh...", "", 0), reg(".wh..wh..opq", "", 0), reg("../.wh..wh..opq", "", 0)),
		tarBytes(f, reg(".", "root as a file", 0o644), sym(".", "/etc")),
		rawEntry("a\x00/../../escape", tar.TypeReg, "00000000001"),
		rawEntry("big", tar.TypeReg, "77777777777"),
		rawEntry("s", tar.TypeSymlink, "\x80\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff"),
		tartest.Gzip(f, tarBytes(f, sym("s", "/"), reg("s/etc/escape", "x", 0o644))),
		tartest.Gzip(f, tarBytes(f, reg("a", "x", 0o644)))[:30],                         // truncated gzip
		tartest.Gzip(f, tarBytes(f, reg("bomb", strings.Repeat("\x00", 8<<20), 0o644))), // 8 MiB from 8 KiB
		tartest.Gzip(f, tartest.Gzip(f, tarBytes(f, reg("a", "x", 0o644)))),             // gzip within gzip
		[]byte("\x28\xb5\x2f\xfd not zstd"),
		[]byte(strings.Repeat("/", 1024)),
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		format := MarkerWhiteouts
		if overlay && isRoot() {
			format = OverlayWhiteouts
		}
		top := t.TempDir()
		lower := filepath.Join(top, "lower")
		dir := filepath.Join(top, "a", "b", "layer")
		for _, d := range []string{lower, dir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for p, body := range map[string]string{"sentinel": "top", "a/b/sentinel": "beside", "lower/bin/keep": "k"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(top, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(top, p), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		before := outsideLayer(t, top, dir, lower)
		fds := openDescriptors(t)

		r, err := archive.Decompress(bytes.NewReader(data))
		if err == nil {
			Unpack(context.Background(), r, dir, Options{Whiteouts: format, Lower: []string{lower}, MaxEntries: 10_000, MaxBytes: 4 << 20})
			r.Close()
		}

		if after := outsideLayer(t, top, dir, lower); after != before {
			t.Fatalf("outside the layer changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if n := openDescriptors(t); n != fds {
			t.Fatalf("%d descriptors open before, %d after", fds, n)
		}
	})
}

// outsideLayer is the snapshot of top without the layer, except that files
// of the lower layer may gain hardlinks from it.
func outsideLayer(t *testing.T, top, layer, lower string) string {
	lines := strings.Split(snapshot(t, top, layer), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, lower+"/") {
			lines[i] = linkCount.ReplaceAllString(l, "")
		}
	}
	return strings.Join(lines, "\n")
}

var linkCount = regexp.MustCompile(` nlink=\d+`)

func openDescriptors(t *testing.T) int {
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func tarBytes(t testing.TB, ents ...ent) []byte {
	b, err := io.ReadAll(tarOf(t, ents...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawEntry is a one-entry ustar archive with fields archive/tar would not
// write: a name with a NUL in it, or any size field, which here comes with
// no contents at all.
func rawEntry(name string, typ byte, size string) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[124:136], size)
	copy(h[136:148], "00000000000\x00")
	h[156] = typ
	copy(h[257:265], "ustar\x0000")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return append(h, make([]byte, 1024)...)
}
