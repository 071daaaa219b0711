package changes

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/safego"
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

// The review's case 3: an image layer's symlink that a directory of the layer
// above hides must never be opened, even when the container's opaque
// directory makes the walk list the image's names there. Followed, a = the
// host directory would be listed and b = a host FIFO would hang the diff.
func TestHiddenImageSymlinksStayClosed(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "sentinel"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(host, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Should the walk block opening the FIFO, a writer lets it go.
	t.Cleanup(func() {
		if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	})
	l1, l2, upper := t.TempDir(), t.TempDir(), t.TempDir()
	mustSymlink(t, host, filepath.Join(l1, "a"))
	mustSymlink(t, fifo, filepath.Join(l1, "b"))
	for _, dir := range []string{"a", "b"} {
		mustMkdir(t, filepath.Join(l2, dir))
		if err := os.WriteFile(filepath.Join(l2, dir, "old"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// The container's rm -rf /dir; mkdir /dir.
		mustMkdir(t, filepath.Join(upper, dir))
		if err := os.WriteFile(filepath.Join(upper, dir, ".wh..wh..opq"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got := listWithin(t, upper, bundle.Stack{l2, l1}, time.Minute)
	want := []Change{{"/a", Modified}, {"/a/old", Deleted}, {"/b", Modified}, {"/b/old", Deleted}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// The review's case 4 without its race: a symlink the container put where
// a directory was is a changed entry, never a directory to walk into. The
// race itself (a directory swapped for the symlink after it was found to be
// a directory) is closed by walking on descriptors, not by this test.
func TestUpperSymlinkNotFollowed(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "sentinel"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lower, upper := t.TempDir(), t.TempDir()
	mustMkdir(t, filepath.Join(lower, "d"))
	mustSymlink(t, host, filepath.Join(upper, "d"))

	got := listWithin(t, upper, bundle.Stack{lower}, time.Minute)
	if want := []Change{{"/d", Modified}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// listWithin is List, failing the test if it has not returned by timeout.
func listWithin(t *testing.T, upper string, image bundle.Stack, timeout time.Duration) []Change {
	t.Helper()
	var got []Change
	done := make(chan error, 1)
	safego.Go(func() error {
		var err error
		got, err = List(context.Background(), upper, image)
		return err
	}, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		return got
	case <-time.After(timeout):
		t.Fatalf("List still running after %v: it opened a host FIFO", timeout)
		return nil
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
