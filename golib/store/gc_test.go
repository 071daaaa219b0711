package store

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// recordImage stores an image of one layer the way a pull does: blobs and
// directory first, then the records.
func recordImage(t *testing.T, s *Store, id, layerBlob, chainID string) {
	t.Helper()
	hold, err := s.Hold()
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()
	for _, d := range []string{id, id + "m", layerBlob} {
		if err := s.PutBlob(d, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := s.TempDir("layer-")
	if err != nil {
		t.Fatal(err)
	}
	l := Layer{ChainID: chainID, DiffID: chainID, BlobDigest: layerBlob, MediaType: "tar"}
	if err := s.PlaceLayer(l, dir); err != nil {
		t.Fatal(err)
	}
	if err := s.AddImage(Image{ID: id, ManifestDigest: id + "m", Layers: []Layer{l}}); err != nil {
		t.Fatal(err)
	}
}

func TestCollectDeletesOnlyWhatNoRecordNames(t *testing.T) {
	s := openTestStore(t)
	recordImage(t, s, "sha256:aa", "sha256:bb", "sha256:cc")
	// What a killed process leaves: staging, a blob, a layer directory and
	// a bundle that no record names, and a container record without its bundle.
	for _, dir := range []string{"tmp/layer-1/etc", "layers/dd/etc", "containers/c1/diff"} {
		if err := os.MkdirAll(filepath.Join(s.Root(), dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.BlobPath("sha256:ee"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainer(Container{ID: "c2", Name: "two", ImageID: "sha256:aa", State: "created"}); err != nil {
		t.Fatal(err)
	}
	if ran, err := s.Collect(); err != nil || !ran {
		t.Fatalf("Collect: ran %v, %v", ran, err)
	}
	for _, p := range []string{"tmp/layer-1", "layers/dd", "containers/c1", "blobs/sha256/ee"} {
		if exists(filepath.Join(s.Root(), p)) {
			t.Errorf("%s is still there", p)
		}
	}
	for _, p := range []string{s.BlobPath("sha256:aa"), s.BlobPath("sha256:aam"), s.BlobPath("sha256:bb"), s.LayerDir("sha256:cc")} {
		if !exists(p) {
			t.Errorf("%s was deleted, but a record names it", p)
		}
	}
	if found, _ := s.FindContainers("c2", false); len(found) != 0 {
		t.Errorf("the container record without a bundle is still there")
	}
}

func TestCollectDropsTheLocksOfContainersWithoutRecordsThatNoOneHolds(t *testing.T) {
	s := openTestStore(t)
	recordImage(t, s, "sha256:aa", "sha256:bb", "sha256:cc")
	if err := os.MkdirAll(filepath.Join(s.BundleDir("kept"), "diff"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainer(Container{ID: "kept", Name: "kept", ImageID: "sha256:aa", State: "created"}); err != nil {
		t.Fatal(err)
	}
	// "removed": its remover was killed after deleting the record; "held":
	// a lock someone holds on a container not recorded yet.
	if err := os.MkdirAll(filepath.Join(s.Root(), "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"kept", "removed", "held"} {
		if err := os.WriteFile(s.ContainerLockPath(id), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	held, err := os.Open(s.ContainerLockPath("held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if ran, err := s.Collect(); err != nil || !ran {
		t.Fatalf("Collect: ran %v, %v", ran, err)
	}
	if exists(s.ContainerLockPath("removed")) {
		t.Error("the lock of a removed container is still there")
	}
	for _, id := range []string{"kept", "held"} {
		if !exists(s.ContainerLockPath(id)) {
			t.Errorf("the lock of %s was deleted", id)
		}
	}
}

func TestCollectWaitsForTheLastHold(t *testing.T) {
	s := openTestStore(t)
	recordImage(t, s, "sha256:aa", "sha256:bb", "sha256:cc")
	hold, err := s.Hold()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RemoveImage("sha256:aa", false); err != nil {
		t.Fatal(err)
	}
	if ran, err := s.Collect(); err != nil || ran {
		t.Fatalf("Collect under a hold: ran %v, %v", ran, err)
	}
	if !exists(s.LayerDir("sha256:cc")) || !exists(s.BlobPath("sha256:bb")) {
		t.Fatal("a collection ran while an operation held the store")
	}
	hold.Release()
	if exists(s.LayerDir("sha256:cc")) || exists(s.BlobPath("sha256:bb")) || exists(s.BlobPath("sha256:aa")) {
		t.Fatal("the collection put off did not run when the hold was released")
	}
	if have, _ := s.HasLayer("sha256:cc"); have {
		t.Fatal("the unused layer's record is still there")
	}
}

func TestStagingNeedsAHold(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.TempDir("x-"); err != errNoHold {
		t.Fatalf("TempDir without a hold: %v", err)
	}
}
