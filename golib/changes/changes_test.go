package changes

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/k3-core/k3-core/golib/bundle"
)

// A writable layer in the OCI marker format (as an unprivileged process
// keeps it): .wh. files for deletions, .wh..wh..opq for opaque directories.
// Overlayfs's own format is covered against Docker in test/import.test.js.
func TestMarkerWhiteouts(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	then := time.Unix(1700000000, 0)
	write := func(root, rel, body string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, then, then); err != nil {
			t.Fatal(err)
		}
	}
	for rel, body := range map[string]string{"a/keep": "k", "a/meta": "m", "a/gone": "g", "a/opaque/old": "o",
		"a/opaque/same": "s", "a/file-to-dir": "f", "b/untouched": "u", "a/deleted-dir/x": "x"} {
		write(lower, rel, body, 0o644)
	}
	write(upper, "a/meta", "m", 0o600)           // metadata only
	write(upper, "a/.wh.gone", "", 0o644)        // a deletion
	write(upper, "a/.wh.deleted-dir", "", 0o644) // a deleted directory is one entry
	write(upper, "a/opaque/.wh..wh..opq", "", 0o644)
	write(upper, "a/opaque/same", "s", 0o644) // as it was: no change
	write(upper, "a/opaque/new", "n", 0o644)
	write(upper, "a/.wh.file-to-dir", "", 0o644)
	write(upper, "a/file-to-dir/child", "c", 0o644)
	write(upper, "c/added", "c", 0o644)
	// Directories copied up with the lower's metadata are not changes themselves.
	for _, dir := range []string{"a", "a/opaque"} {
		fi, err := os.Stat(filepath.Join(lower, dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(upper, dir), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}

	got, err := List(context.Background(), upper, bundle.Stack{lower})
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"/a", Modified},
		{"/a/deleted-dir", Deleted},
		{"/a/file-to-dir", Modified},
		{"/a/file-to-dir/child", Added},
		{"/a/gone", Deleted},
		{"/a/meta", Modified},
		{"/a/opaque", Modified},
		{"/a/opaque/new", Added},
		{"/a/opaque/old", Deleted},
		{"/c", Added},
		{"/c/added", Added},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}
