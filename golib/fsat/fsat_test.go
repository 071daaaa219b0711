package fsat

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
)

// setup makes a root with a directory and a file inside, a directory and a
// file outside it, and symlinks in the root pointing at both.
func setup(t *testing.T) (root int, rootDir, outside string) {
	t.Helper()
	base := t.TempDir()
	rootDir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{rootDir + "/inside", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{rootDir + "/inside/file", outside + "/file"} {
		if err := os.WriteFile(f, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs": outside, "climb": "../../../../" + outside[1:], "to-inside": "/inside", "file-link": outside + "/file",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(rootDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, rootDir, outside
}

func TestOpenInRootResolvesSymlinksAsIfTheRootWereSlash(t *testing.T) {
	root, rootDir, _ := setup(t)
	for _, rel := range []string{"to-inside/file", "to-inside/../to-inside/file", "inside/../../to-inside/file", "../../inside/file"} {
		fd, err := Open(root, rel, unix.O_RDONLY, InRoot)
		if err != nil {
			t.Errorf("Open(%s): %v", rel, err)
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		if !sameFile(t, &st, rootDir+"/inside/file") {
			t.Errorf("Open(%s) opened another file", rel)
		}
		unix.Close(fd)
	}
	// The targets exist outside the root only: inside, they are missing.
	for _, rel := range []string{"abs/file", "climb/file", "file-link"} {
		if fd, err := Open(root, rel, unix.O_RDONLY, InRoot); !errors.Is(err, unix.ENOENT) {
			unix.Close(fd)
			t.Errorf("Open(%s) = %v, want ENOENT", rel, err)
		}
	}
}

func TestNoSymlinksAndOpenDirRefuseEverySymlink(t *testing.T) {
	root, _, _ := setup(t)
	if fd, err := Open(root, "to-inside/file", unix.O_RDONLY, NoSymlinks); err != unix.ELOOP {
		unix.Close(fd)
		t.Errorf("Open with NoSymlinks through a symlink: %v, want ELOOP", err)
	}
	for _, name := range []string{"to-inside", "abs"} {
		if fd, err := OpenDir(root, name); err != unix.ELOOP && err != unix.ENOTDIR {
			unix.Close(fd)
			t.Errorf("OpenDir(%s): %v, want ELOOP or ENOTDIR", name, err)
		}
	}
}

func TestRemoveAllAndChmodNeverReachThroughSymlinks(t *testing.T) {
	root, rootDir, outside := setup(t)
	if err := os.Symlink(outside, rootDir+"/inside/abs"); err != nil {
		t.Fatal(err)
	}
	if err := Chmod(root, "file-link", 0o600); err == nil {
		t.Error("Chmod of a symlink succeeded")
	}
	if err := RemoveAll(root, "inside"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAll(root, "abs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(rootDir + "/inside"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inside is still there: %v", err)
	}
	fi, err := os.Stat(outside + "/file")
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the file outside changed: %v, %v", fi, err)
	}
}

func TestPathLooksUpOnlyTheLastComponent(t *testing.T) {
	root, rootDir, _ := setup(t)
	dir, err := OpenDir(root, "inside")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	// Renaming the directory away and putting a symlink in its place does
	// not change what the descriptor path names.
	if err := os.Rename(rootDir+"/inside", rootDir+"/moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("abs", rootDir+"/inside"); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(Path(dir, "file"), &st); err != nil {
		t.Fatal(err)
	}
	if !sameFile(t, &st, rootDir+"/moved/file") {
		t.Error("Path named a file other than the one in the open directory")
	}
}

func sameFile(t *testing.T, st *unix.Stat_t, path string) bool {
	t.Helper()
	var b unix.Stat_t
	if err := unix.Stat(path, &b); err != nil {
		t.Fatal(err)
	}
	return st.Dev == b.Dev && st.Ino == b.Ino
}

// lstat is what a walk saw of name in dir.
func lstat(t *testing.T, dir int, name string) *unix.Stat_t {
	t.Helper()
	st, err := Lstat(dir, name)
	if err != nil || st == nil {
		t.Fatalf("lstat %s: %v", name, err)
	}
	return st
}

func TestOpenRegularReadsTheFileTheWalkSawInBlockingMode(t *testing.T) {
	root, rootDir, _ := setup(t)
	fd, err := OpenRegular(root, "inside/file", lstat(t, root, "inside/file"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 || flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("flags %#o: want read-only and blocking", flags)
	}
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil || string(buf[:n]) != rootDir+"/inside/file" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
}

// TestOpenRegularRefusesWhatWasSwappedIn puts, after the walk's lstat of a
// regular file, a FIFO (whose open would block for ever), a host device
// (whose contents would leak), a symlink and another regular file at its
// name: each is refused at once.
func TestOpenRegularRefusesWhatWasSwappedIn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mknod of a character device needs root")
	}
	root, rootDir, outside := setup(t)
	seen := lstat(t, root, "inside/file")
	dir, err := OpenDir(root, "inside")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	swaps := map[string]func(path string) error{
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"device":  func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) },
		"symlink": func(p string) error { return os.Symlink(outside+"/file", p) },
		"file":    func(p string) error { return os.WriteFile(p, []byte("another inode"), 0o644) },
	}
	for name, swap := range swaps {
		// Moved aside, not removed, so no new file can reuse the inode.
		path := rootDir + "/inside/file"
		if err := os.Rename(path, path+"-before-"+name); err != nil {
			t.Fatal(err)
		}
		if err := swap(path); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		safego.Go(func() error {
			fd, err := OpenRegular(dir, "file", seen)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, func(err error) { done <- err })
		select {
		case err := <-done:
			if !errors.Is(err, ErrChanged) {
				t.Errorf("%s at the name: %v, want ErrChanged", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s at the name: OpenRegular hangs", name)
		}
	}
}

func TestChmodPinnedRefusesASymlinkAndSetsAFilesMode(t *testing.T) {
	root, rootDir, outside := setup(t)
	if err := chmodPinned(root, "file-link", 0o600); err != unix.ELOOP {
		t.Errorf("chmodPinned of a symlink: %v, want ELOOP", err)
	}
	if fi, err := os.Stat(outside + "/file"); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the file outside changed: %v, %v", fi, err)
	}
	dir, err := OpenDir(root, "inside")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	if err := chmodPinned(dir, "file", 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(rootDir + "/inside/file"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after chmodPinned: %v, %v", fi, err)
	}
}
