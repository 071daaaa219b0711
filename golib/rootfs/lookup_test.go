package rootfs

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// lookupPath looks rel up through Dir, one component at a time.
func lookupPath(t *testing.T, fds []int, rel string) (*unix.Stat_t, int) {
	t.Helper()
	d, err := OpenDir(fds, false)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		sub, err := d.Open(name)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		d = sub
	}
	defer d.Close()
	st, layer, _, err := d.Lookup(parts[len(parts)-1])
	if err != nil {
		t.Fatal(err)
	}
	return st, layer
}

// A name looked up alone shows what the walk shows there, from the same
// layer, and what the walk does not show is not found: one set of rules.
func TestLookupAgreesWithTheWalk(t *testing.T) {
	s := ociStack(t)
	var fds []int
	for _, dir := range s {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	walked := map[string]string{}
	err := s.Walk(context.Background(), func(rel, layerDir string, _ fs.FileInfo) error {
		walked[rel] = layerDir
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, layerDir := range walked {
		st, layer := lookupPath(t, fds, rel)
		if st == nil || s[layer] != layerDir {
			t.Errorf("%s: the walk shows it from %s, Lookup from layer %d (%v)", rel, filepath.Base(layerDir), layer, st != nil)
		}
	}
	for _, rel := range []string{"etc/gone.conf", "opq/old", "fod/inner", "merge/c", "recreated/old", "gone-dir", "gone-dir/x/y",
		"never-was", ".wh.never-was", "etc/.wh.gone.conf", ".wh..wh.plnk/123"} {
		if st, layer := lookupPath(t, fds, rel); st != nil {
			t.Errorf("%s: Lookup finds it in layer %d, the walk does not show it", rel, layer)
		}
	}
}
