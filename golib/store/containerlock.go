package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// TryLockContainer takes the flock on container id's lock file
// (ContainerLockPath) if no one holds it, and returns the locked file, or
// nil when someone holds it. create makes the file when there is none;
// without it, no file is nil too. A lock is only taken on the file that is
// at the path once locked: the holder before may have deleted it (with its
// container), and a lock on a file no longer there locks nothing.
// Package lifecycle holds these locks; the collection (collect) deletes the
// files of containers without a record through it too.
func (s *Store) TryLockContainer(id string, create bool) (*os.File, error) {
	path := s.ContainerLockPath(id)
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
	}
	for {
		f, err := os.OpenFile(path, flags, 0o600)
		if !create && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("opening the container's lock: %w", err)
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("locking the container: %w", err)
		}
		if samePath(f, path) {
			return f, nil
		}
		f.Close()
	}
}

func samePath(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}
