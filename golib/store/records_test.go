package store

import (
	"errors"
	"testing"
)

// storeWithContainer opens a store in a temp dir holding one created
// container, "c1", of an image with no layers.
func storeWithContainer(t *testing.T) *Store {
	t.Helper()
	s := openTestStore(t)
	img := Image{ID: "sha256:aa", ManifestDigest: "sha256:bb", ManifestMediaType: "m", Architecture: "amd64", OS: "linux"}
	if err := s.AddImage(img); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainer(Container{ID: "c1", Name: "one", ImageID: img.ID, ImageRef: "x", State: "created", Created: now(), Config: "{}"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantState(t *testing.T, s *Store, want string) {
	t.Helper()
	c, err := s.Container("c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != want {
		t.Fatalf("state is %q, want %q", c.State, want)
	}
}

// Each transition changes the state only from the states it expects, and
// says so (ErrStateChanged) when the state was another.
func TestTransitionsChangeOnlyTheExpectedState(t *testing.T) {
	s := storeWithContainer(t)
	steps := []struct {
		name   string
		change func() error
		ok     bool
		after  string
	}{
		{"pause a created container", func() error { return s.SetPaused("c1", true) }, false, "created"},
		{"start it", func() error { return s.SetRunning("c1", Run{Pid: 10, MonitorPid: 20}) }, true, "running"},
		{"start it again", func() error { return s.SetRunning("c1", Run{Pid: 11, MonitorPid: 21}) }, false, "running"},
		{"delete a running container", func() error { return s.DeleteContainer("c1") }, false, "running"},
		{"pause it", func() error { return s.SetPaused("c1", true) }, true, "paused"},
		{"pause it again", func() error { return s.SetPaused("c1", true) }, false, "paused"},
		{"end another run (monitor 99)", func() error { return s.SetExited("c1", 99, 1, now()) }, false, "paused"},
		{"end its run", func() error { return s.SetExited("c1", 20, 3, now()) }, true, "exited"},
		{"end it again", func() error { return s.SetExited("c1", 20, 4, now()) }, false, "exited"},
		{"unpause an exited container", func() error { return s.SetPaused("c1", false) }, false, "exited"},
		{"start it once more", func() error { return s.SetRunning("c1", Run{Pid: 12, MonitorPid: 22}) }, true, "running"},
		{"end the old run (monitor 20)", func() error { return s.SetExited("c1", 20, 5, now()) }, false, "running"},
		{"end the new run", func() error { return s.SetExited("c1", 22, 0, now()) }, true, "exited"},
	}
	for _, step := range steps {
		err := step.change()
		if step.ok && err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if !step.ok && !errors.Is(err, ErrStateChanged) {
			t.Fatalf("%s: got %v, want ErrStateChanged", step.name, err)
		}
		wantState(t, s, step.after)
	}
	c, _ := s.Container("c1")
	if c.Run.ExitCode != 0 || c.Run.MonitorPid != 22 {
		t.Fatalf("the last run's record is %+v, want exit 0 of monitor 22", c.Run)
	}
	if err := s.DeleteContainer("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainer("c1"); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("deleting twice: got %v, want ErrStateChanged", err)
	}
	if _, err := s.Container("c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted container: got %v, want ErrNotFound", err)
	}
}
