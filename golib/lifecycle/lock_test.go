package lifecycle

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/k3-core/k3-core/golib/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// holdInOtherProcess has flock(1), another process, take the container's
// lock and keep it until the returned process group ends.
func holdInOtherProcess(t *testing.T, st *store.Store, id string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatal("flock (util-linux) is not installed")
	}
	os.MkdirAll(st.Root()+"/locks", 0o700)
	cmd := exec.Command("flock", st.ContainerLockPath(id), "sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		l, err := TryAcquire(st, id)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			return cmd
		}
		l.Release()
	}
	t.Fatal("the other process never took the lock")
	return nil
}

func TestLockIsHeldAcrossProcessesAndFreedWhenTheHolderDies(t *testing.T) {
	st := openStore(t)
	holder := holdInOtherProcess(t, st, "c1")

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if l, err := Acquire(short, st, "c1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire while another process holds the lock: got %v, %v; want the context's deadline", l, err)
	}
	if l, _ := TryAcquire(st, "c2"); l == nil {
		t.Fatal("another container's lock is free")
	} else {
		l.Release()
	}

	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), st, "c1")
		if l != nil {
			l.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned (%v) while the other process held the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	syscall.Kill(-holder.Process.Pid, syscall.SIGKILL) // flock and the sleep that shares its lock
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the lock of a killed holder was never freed")
	}
}

func TestLockExcludesWithinOneProcess(t *testing.T) {
	st := openStore(t)
	l, err := TryAcquire(st, "c1")
	if err != nil || l == nil {
		t.Fatalf("TryAcquire of a free lock: %v, %v", l, err)
	}
	if again, _ := TryAcquire(st, "c1"); again != nil {
		t.Fatal("a second caller in the same process took a held lock")
	}
	l.Release()
	l.Release() // twice is harmless
	again, _ := TryAcquire(st, "c1")
	if again == nil {
		t.Fatal("a released lock is still held")
	}
	again.Release()
}

// A waiter whose holder discards the lock (it removed the container) must
// not hold a lock on the discarded file while a newcomer locks a new one.
func TestWaiterOfADiscardedLockLocksTheNewFile(t *testing.T) {
	st := openStore(t)
	first, _ := TryAcquire(st, "c1")
	if first == nil {
		t.Fatal("free lock not taken")
	}
	got := make(chan *Lock, 1)
	go func() {
		l, _ := Acquire(context.Background(), st, "c1")
		got <- l
	}()
	time.Sleep(30 * time.Millisecond)
	first.Discard()
	waiter := <-got
	if waiter == nil {
		t.Fatal("the waiter got no lock")
	}
	defer waiter.Release()
	if _, err := os.Stat(st.ContainerLockPath("c1")); err != nil {
		t.Fatalf("the waiter's lock file is not at the lock path: %v", err)
	}
	if newcomer, _ := TryAcquire(st, "c1"); newcomer != nil {
		newcomer.Release()
		t.Fatal("a newcomer took the lock the waiter holds")
	}
}

// Reconcile shows a dead run as exited to everyone, but only a caller that
// can take the container's lock records it: the lock's holder is changing
// the container and records what it finds itself.
func TestReconcileWritesOnlyAsOwner(t *testing.T) {
	st, c := storeWithContainer(t)
	// A run whose monitor (pid 0) is not alive: its end was never seen.
	if err := st.SetRunning("c1", store.Run{Pid: 1, MonitorPid: 0, BootID: "old boot"}); err != nil {
		t.Fatal(err)
	}
	c, _ = st.Container("c1")

	owner, _ := TryAcquire(st, "c1")
	shown, err := Reconcile(st, c)
	if err != nil || shown.State != "exited" || shown.Run.ExitCode != exitUnknown {
		t.Fatalf("Reconcile of a dead run: %+v, %v; want exited %d", shown, err, exitUnknown)
	}
	if recorded, _ := st.Container("c1"); recorded.State != "running" {
		t.Fatalf("Reconcile wrote %q while another caller held the lock", recorded.State)
	}
	owner.Release()

	if _, err := Reconcile(st, c); err != nil {
		t.Fatal(err)
	}
	if recorded, _ := st.Container("c1"); recorded.State != "exited" || recorded.Run.ExitCode != exitUnknown {
		t.Fatalf("Reconcile as owner left the record %+v", recorded)
	}
}
