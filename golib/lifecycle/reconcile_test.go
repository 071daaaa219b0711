package lifecycle

import (
	"os"
	"testing"

	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
)

// storeWithContainer is a new store holding one created container, c1.
func storeWithContainer(t *testing.T) (*store.Store, store.Container) {
	t.Helper()
	st := openStore(t)
	if err := st.AddImage(store.Image{ID: "sha256:aa", ManifestDigest: "sha256:bb", ManifestMediaType: "m", Architecture: "amd64", OS: "linux"}); err != nil {
		t.Fatal(err)
	}
	c := store.Container{ID: "c1", Name: "one", ImageID: "sha256:aa", ImageRef: "x", State: "created", Created: "now", Config: "{}"}
	if err := st.CreateContainer(c); err != nil {
		t.Fatal(err)
	}
	return st, c
}

// A starter killed after its monitor started the container, and before it
// recorded the run, left a record that says created; the monitor's run
// record names the run, and here its exit too. Reconcile records both, and
// a run the record already knows is left alone.
func TestReconcileRecordsARunItsStarterDidNot(t *testing.T) {
	st, c := storeWithContainer(t)
	bundle := st.BundleDir(c.ID)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	run := ociruntime.RunRecord{MonitorPid: 1 << 22, BootID: ociruntime.BootID(), Runtime: "runc", Started: true, Pid: 0, StartedAt: "then"}
	if err := ociruntime.WriteRun(bundle, run); err != nil {
		t.Fatal(err)
	}
	if err := ociruntime.WriteJSON(bundle, "exit.json", ociruntime.Exit{ExitCode: 3, FinishedAt: "later"}); err != nil {
		t.Fatal(err)
	}

	shown, err := Reconcile(st, c)
	if err != nil || shown.State != "exited" || shown.Run.ExitCode != 3 || shown.Run.StartedAt != "then" {
		t.Fatalf("Reconcile of an unrecorded run that ended: %+v, %v; want exited 3, started then", shown, err)
	}
	recorded, _ := st.Container(c.ID)
	if recorded.State != "exited" || recorded.Run.ExitCode != 3 || recorded.Run.MonitorPid != run.MonitorPid {
		t.Fatalf("the record after Reconcile: %+v", recorded)
	}
	if again, err := Reconcile(st, recorded); err != nil || again != recorded {
		t.Fatalf("Reconcile of a recorded run changed it: %+v, %v", again, err)
	}
}

// A run record or exit a host crash left torn (written, renamed, and never
// flushed: an empty file) names no run: the container is shown, and can be
// started and removed, rather than every read of it, and every listing of
// the store, failing.
func TestReconcileTakesATornRecordForNone(t *testing.T) {
	st, c := storeWithContainer(t)
	bundle := st.BundleDir(c.ID)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"run.json", "exit.json"} {
		if err := os.WriteFile(bundle+"/"+name, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if shown, err := Reconcile(st, c); err != nil || shown.State != "created" {
		t.Fatalf("Reconcile of a created container with a torn run record: %+v, %v; want created", shown, err)
	}
	// A run recorded in an earlier boot whose exit is torn: it ended unseen.
	if err := st.SetRunning(c.ID, store.Run{Pid: 1 << 22, MonitorPid: 1 << 22, BootID: "an earlier boot"}); err != nil {
		t.Fatal(err)
	}
	running, _ := st.Container(c.ID)
	if shown, err := Reconcile(st, running); err != nil || shown.State != "exited" || shown.Run.ExitCode != exitUnknown {
		t.Fatalf("Reconcile of a run of an earlier boot with a torn exit: %+v, %v; want exited %d", shown, err, exitUnknown)
	}
}
