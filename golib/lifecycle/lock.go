package lifecycle

import (
	"context"
	"os"
	"time"

	"github.com/k3-core/k3-core/golib/store"
)

// Lock is one container's lock, held by one caller in one process at a
// time, across every process using the store: an flock(2) on
// store.ContainerLockPath. The kernel drops it when its holder dies, so a
// killed process never leaves a container locked.
//
// Every change of a container's state or files is made under its lock;
// reads (list, inspect, logs, wait, exec) take none. Whoever holds the lock
// reads the record again before acting on it. Containers.Create holds it
// from before the bundle is made until the record names it; what a killed
// create left (a bundle no record names) the store's collection deletes,
// which runs only while no operation holds the store (store.Hold), so never
// during a create.
type Lock struct {
	file *os.File
	path string
}

// pollLock is how often a waiter tries again: flock has no timeout of its
// own, and a wait must end when its context does.
const pollLock = 5 * time.Millisecond

// Acquire waits for container id's lock and takes it. Only ctx ends the
// wait (its error is returned).
func Acquire(ctx context.Context, st *store.Store, id string) (*Lock, error) {
	for {
		l, err := TryAcquire(st, id)
		if l != nil || err != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollLock):
		}
	}
}

// TryAcquire takes container id's lock if no one holds it, else returns
// nil and no error.
func TryAcquire(st *store.Store, id string) (*Lock, error) {
	f, err := st.TryLockContainer(id, true)
	if f == nil || err != nil {
		return nil, err
	}
	return &Lock{file: f, path: st.ContainerLockPath(id)}, nil
}

// Release lets the next waiter have the lock; releasing twice is harmless.
func (l *Lock) Release() {
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
}

// Discard removes the lock file and releases the lock: for the holder that
// removed the container (or found it gone), so that no lock file outlives
// its container. A waiter then locks a fresh file, finds no record, and
// discards that one too.
func (l *Lock) Discard() {
	if l.file != nil {
		os.Remove(l.path)
	}
	l.Release()
}
