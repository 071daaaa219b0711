package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/treeops"
)

// The store-wide lock is a reader/writer flock on <root>/gc.lock. Whatever
// stages or adds content (pull, load, import, commit, create) and whatever
// reads content it has not pinned by a record (save, push) holds it shared
// for the whole operation; garbage collection takes it exclusive, and only
// when nobody holds it. So no writer's blob, layer or bundle is ever
// collected between the moment it appears and the moment an image or a
// container record refers to it, and everything under tmp/ is garbage
// whenever the collector runs. A flock is simpler than containerd-style
// leases, which would need records of their own to expire: the kernel drops
// a killed process's hold at once, so a crash never leaves the store locked.

// Hold is one operation's shared hold on the store-wide lock.
type Hold struct {
	s *Store
	f *os.File
}

func (s *Store) lockFile() (*os.File, error) {
	return os.OpenFile(filepath.Join(s.root, "gc.lock"), os.O_RDWR|os.O_CREATE, 0o600)
}

// Hold takes the store-wide lock shared, waiting only while a collection
// runs; Release must be called. Holds nest and are cheap.
func (s *Store) Hold() (*Hold, error) {
	f, err := s.lockFile()
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the store: %w", err)
	}
	s.holds.Add(1)
	return &Hold{s: s, f: f}, nil
}

// Release lets a collection run again; one that was put off while this
// hold was taken runs now, if no other hold is left.
func (h *Hold) Release() {
	if h == nil || h.f == nil {
		return
	}
	h.f.Close()
	h.f = nil
	h.s.holds.Add(-1)
	if _, err := os.Stat(h.s.pendingPath()); err == nil {
		h.s.Collect()
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

func (s *Store) pendingPath() string { return filepath.Join(s.root, "gc.pending") }

// Collect deletes what no record refers to, and records whose files are
// gone, if it can take the store-wide lock exclusive at once. When another
// operation holds it, the collection is put off (gc.pending) and the last
// hold to be released runs it. ran says whether it ran.
func (s *Store) Collect() (ran bool, err error) {
	f, err := s.lockFile()
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		// Put off. A holder that released the lock before the mark was
		// written did not see it: so try once more after writing it.
		if err := os.WriteFile(s.pendingPath(), nil, 0o600); err != nil {
			return false, err
		}
		err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
	}
	if err != nil {
		return false, err
	}
	if err := os.Remove(s.pendingPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, err
	}
	return true, s.collect()
}

// collect runs under the exclusive lock. Records go first, in one
// transaction, then the files no record names: a kill at any point leaves
// only files without records, which the next collection deletes.
func (s *Store) collect() error {
	if err := s.dropDeadRecords(); err != nil {
		return err
	}
	blobs, err := s.strings(`SELECT id FROM images UNION SELECT manifest_digest FROM images UNION SELECT blob_digest FROM layers
		UNION SELECT blob_digest FROM image_layers WHERE blob_digest != ''`)
	if err != nil {
		return err
	}
	layers, err := s.strings(`SELECT chain_id FROM layers`)
	if err != nil {
		return err
	}
	containers, err := s.strings(`SELECT id FROM containers`)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, d := range blobs {
		keep[s.BlobPath(d)] = true
	}
	for _, l := range layers {
		keep[s.LayerDir(l)] = true
	}
	for _, id := range containers {
		keep[s.BundleDir(id)] = true
	}
	var errs []error
	for _, dir := range []string{"blobs/sha256", "layers", "containers", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(s.root, dir))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			p := filepath.Join(s.root, dir, e.Name())
			if keep[p] {
				continue
			}
			if err := s.deleteTree(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	locks, err := os.ReadDir(filepath.Join(s.root, "locks"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range locks {
		if !keep[s.BundleDir(e.Name())] {
			errs = append(errs, s.dropLock(e.Name()))
		}
	}
	return errors.Join(errs...)
}

// dropLock deletes the lock file of container id, which has no record
// (its remover was killed before deleting it), unless someone holds it.
func (s *Store) dropLock(id string) error {
	f, err := s.TryLockContainer(id, false)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	return os.Remove(s.ContainerLockPath(id))
}

// dropDeadRecords deletes the layers no image uses, and the containers
// whose bundle is missing (made by a version that recorded a container
// before its bundle, and killed between the two).
func (s *Store) dropDeadRecords() error {
	tx, err := s.db.Begin()
	if err != nil {
		return dbErr(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)`); err != nil {
		return dbErr(err)
	}
	var containers []string
	ids, err := s.strings(`SELECT id FROM containers`)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := os.Stat(s.BundleDir(id)); errors.Is(err, os.ErrNotExist) {
			containers = append(containers, id)
		}
	}
	for _, id := range containers {
		if _, err := tx.Exec(`DELETE FROM containers WHERE id = ?`, id); err != nil {
			return dbErr(err)
		}
	}
	return dbErr(tx.Commit())
}

// RemoveBundle deletes the bundle of a container whose record is gone.
func (s *Store) RemoveBundle(id string) error { return s.deleteTree(s.BundleDir(id)) }

// deleteTree is the one place the store deletes content from disk. A tree
// with anything mounted under it (a bundle whose rootfs is still mounted)
// is left alone: deleting through a mount would reach files outside it.
func (s *Store) deleteTree(path string) error {
	if mounted, err := mountedUnder(path); err != nil || mounted {
		if err == nil {
			err = fmt.Errorf("%s is not deleted: something is mounted under it", path)
		}
		return err
	}
	// For an ordinary user the store's trees hold files owned by other ids
	// of its user namespace: treeops removes them from inside it.
	return treeops.RemoveAll(path)
}

// mountedUnder reports whether a mount point is path or lies below it.
func mountedUnder(path string) (bool, error) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountPath(fields[4])
		if point == path || strings.HasPrefix(point, path+"/") {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// errNoHold: staging is only safe from collection under a hold.
var errNoHold = errors.New("the store's staging area is used without a hold on the store")
