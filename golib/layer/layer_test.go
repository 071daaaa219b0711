package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/internal/testneed"
)

// ent is one entry of a test archive.
type ent struct {
	hdr  tar.Header
	body string
}

var (
	mtime = time.Date(2020, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	atime = time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
)

func reg(name, body string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: body}
}
func dirEnt(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}
func sym(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}
func hard(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

// linkTo is a hardlink entry to e as tar writes one: with the metadata of
// the inode it shares.
func linkTo(e ent, name string) ent {
	h := e.hdr
	h.Typeflag, h.Name, h.Linkname = tar.TypeLink, name, e.hdr.Name
	return ent{hdr: h}
}
func dev(typ byte, name string, major, minor int64) ent {
	return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o640, Devmajor: major, Devminor: minor}}
}

// tarOf builds an archive in memory, PAX so that xattrs and atimes survive.
func tarOf(t testing.TB, ents ...ent) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Format = tar.FormatPAX
		h.Size = int64(len(e.body))
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func unpack(t *testing.T, dir string, opts Options, ents ...ent) Stats {
	t.Helper()
	st, err := Unpack(context.Background(), tarOf(t, ents...), dir, opts)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return st
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isRoot() bool { return os.Geteuid() == 0 }

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := reg("etc/app.conf", "hello", 0o4751)
	file.hdr.Uid, file.hdr.Gid = 1000, 1001
	file.hdr.AccessTime = atime
	file.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k3": "1"}
	sticky := dirEnt("tmp/", 0o1777)
	sticky.hdr.Uid, sticky.hdr.Gid = 7, 8
	sticky.hdr.ModTime = mtime.Add(time.Hour)
	abs := sym("abs", "/etc/passwd")
	abs.hdr.Uid = 42
	ents := []ent{
		dirEnt("etc/", 0o755), file,
		sticky, reg("tmp/inside", "x", 0o600), // written after its directory: times must hold
		abs, sym("dangling", "../../nowhere"),
		linkTo(file, "etc/app.link"),
		reg("implicit/deep/file", "y", 0o644),
		dev(tar.TypeChar, "dev/null", 1, 3), dev(tar.TypeBlock, "dev/loop0", 7, 0), dev(tar.TypeFifo, "run/fifo", 0, 0),
	}
	st := unpack(t, dir, Options{}, ents...)
	if st.Entries != int64(len(ents)) || st.Bytes != 7 {
		t.Errorf("stats = %+v", st)
	}

	p := filepath.Join(dir, "etc/app.conf")
	fi, _ := os.Lstat(p)
	if fi.Mode() != fs.ModeSetuid|0o751 {
		t.Errorf("mode = %v", fi.Mode())
	}
	s := lstat(t, p)
	if isRoot() && (s.Uid != 1000 || s.Gid != 1001) {
		t.Errorf("owner = %d:%d", s.Uid, s.Gid)
	}
	if !fi.ModTime().Equal(mtime) || time.Unix(s.Atim.Unix()).UTC() != atime {
		t.Errorf("times = %v / %v", fi.ModTime(), time.Unix(s.Atim.Unix()))
	}
	if got := readFile(t, p); got != "hello" { // after the atime check: reading moves it
		t.Errorf("content = %q", got)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(p, "user.k3", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("xattr user.k3 = %q, %v", buf[:n], err)
	}

	fi, _ = os.Lstat(filepath.Join(dir, "tmp"))
	if fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 || !fi.ModTime().Equal(mtime.Add(time.Hour)) {
		t.Errorf("tmp: mode %v, mtime %v", fi.Mode(), fi.ModTime())
	}
	if s := lstat(t, filepath.Join(dir, "tmp")); isRoot() && (s.Uid != 7 || s.Gid != 8) {
		t.Errorf("tmp owner = %d:%d", s.Uid, s.Gid)
	}

	for name, want := range map[string]string{"abs": "/etc/passwd", "dangling": "../../nowhere"} {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %q", name, got, err, want)
		}
	}
	if s := lstat(t, filepath.Join(dir, "abs")); isRoot() && s.Uid != 42 {
		t.Errorf("symlink owner = %d", s.Uid)
	}

	if a, b := lstat(t, p), lstat(t, filepath.Join(dir, "etc/app.link")); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlink: inodes %d, %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}

	for _, d := range []string{"implicit", "implicit/deep"} {
		fi, _ := os.Lstat(filepath.Join(dir, d))
		if s := lstat(t, filepath.Join(dir, d)); fi.Mode() != fs.ModeDir|0o755 || s.Uid != 0 && isRoot() {
			t.Errorf("%s: mode %v, uid %d", d, fi.Mode(), s.Uid)
		}
	}

	if s := lstat(t, filepath.Join(dir, "run/fifo")); s.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("fifo mode = %o", s.Mode)
	}
	if !isRoot() {
		return
	}
	for name, want := range map[string]uint32{"dev/null": unix.S_IFCHR, "dev/loop0": unix.S_IFBLK} {
		s := lstat(t, filepath.Join(dir, name))
		if s.Mode != want|0o640 {
			t.Errorf("%s mode = %o", name, s.Mode)
		}
		if name == "dev/null" && (unix.Major(s.Rdev) != 1 || unix.Minor(s.Rdev) != 3) {
			t.Errorf("%s rdev = %d:%d", name, unix.Major(s.Rdev), unix.Minor(s.Rdev))
		}
	}
}

func TestRootEntryAndSparseNames(t *testing.T) {
	dir := t.TempDir()
	root := dirEnt("./", 0o750)
	unpack(t, dir, Options{}, root, reg("./a", "1", 0o644), reg("/b", "2", 0o644))
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(mtime) {
		t.Errorf("root: %v %v", fi.Mode(), fi.ModTime())
	}
	if readFile(t, filepath.Join(dir, "a")) != "1" || readFile(t, filepath.Join(dir, "b")) != "2" {
		t.Error("contents")
	}
	_, err := Unpack(context.Background(), tarOf(t, reg(".", "x", 0o644)), dir, Options{})
	if !errors.Is(err, ErrUnsafePath) {
		t.Errorf("a file replacing the root: %v", err)
	}
}

func TestWhiteoutFormats(t *testing.T) {
	ents := []ent{
		dirEnt("a/", 0o755),
		reg("a/.wh..wh..opq", "", 0),
		reg("a/.wh.gone", "", 0),
		reg(".wh.top", "", 0),
		reg("b/.wh..wh..opq", "", 0), // implicit parent
		reg(".wh..wh.plnk", "", 0),   // AUFS bookkeeping, dropped
	}
	t.Run("markers", func(t *testing.T) {
		dir := t.TempDir()
		unpack(t, dir, Options{Whiteouts: MarkerWhiteouts}, ents...)
		for _, m := range []struct{ dir, name, deleted string }{{"a", ".wh.gone", "gone"}, {".", ".wh.top", "top"}} {
			fi, err := os.Lstat(filepath.Join(dir, m.dir, m.name))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0 || fi.Size() != 0 {
				t.Errorf("%s: %v size %d", m.name, fi.Mode(), fi.Size())
			}
			if d, ok := Whiteout(m.name, fi); !ok || d != m.deleted {
				t.Errorf("Whiteout(%s) = %q, %v", m.name, d, ok)
			}
		}
		checkOpaque(t, dir, map[string]bool{"a": true, "b": true, ".": false})
		if _, err := os.Lstat(filepath.Join(dir, ".wh..wh.plnk")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("AUFS marker kept: %v", err)
		}
		if !IsOpaqueMarker(".wh..wh..opq") || IsOpaqueMarker(".wh.x") {
			t.Error("IsOpaqueMarker")
		}
		if _, ok := Whiteout(".wh..wh..opq", nil); ok {
			t.Error("the opaque marker is not a whiteout of a name")
		}
	})
	t.Run("overlay", func(t *testing.T) {
		if !isRoot() {
			testneed.Missing(t, "overlay whiteouts need root")
		}
		if NativeWhiteouts() != OverlayWhiteouts {
			t.Error("NativeWhiteouts as root")
		}
		dir := t.TempDir()
		unpack(t, dir, Options{Whiteouts: OverlayWhiteouts}, ents...)
		for _, p := range []string{"a/gone", "top"} {
			fi, err := os.Lstat(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := Whiteout(filepath.Base(p), fi); !ok || d != filepath.Base(p) {
				t.Errorf("Whiteout(%s) = %q, %v (mode %v)", p, d, ok, fi.Mode())
			}
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*", ".wh.*")); len(m) != 0 {
			t.Errorf("markers left in overlay format: %v", m)
		}
		checkOpaque(t, dir, map[string]bool{"a": true, "b": true, ".": false})
	})
	t.Run("ordinary entries are not whiteouts", func(t *testing.T) {
		dir := t.TempDir()
		unpack(t, dir, Options{}, reg("f", "", 0o644), dev(tar.TypeFifo, "p", 0, 0))
		for _, n := range []string{"f", "p"} {
			fi, _ := os.Lstat(filepath.Join(dir, n))
			if _, ok := Whiteout(n, fi); ok {
				t.Errorf("%s taken for a whiteout", n)
			}
		}
	})
}

func checkOpaque(t *testing.T, dir string, want map[string]bool) {
	t.Helper()
	for d, w := range want {
		if got, err := Opaque(filepath.Join(dir, d)); err != nil || got != w {
			t.Errorf("Opaque(%s) = %v, %v; want %v", d, got, err, w)
		}
	}
}

// A whiteout and an entry of the same name in one layer: the whiteout only
// deletes from lower layers, so this layer's entry stays.
func TestOverlayWhiteoutBesideOwnEntry(t *testing.T) {
	if !isRoot() {
		testneed.Missing(t, "overlay whiteouts need root")
	}
	dir := t.TempDir()
	unpack(t, dir, Options{Whiteouts: OverlayWhiteouts},
		reg("f", "kept", 0o644), reg(".wh.f", "", 0),
		dirEnt("d/", 0o755), reg("d/x", "1", 0o644), reg(".wh.d", "", 0),
		reg(".wh.e", "", 0), dirEnt("e/", 0o755),
	)
	if readFile(t, filepath.Join(dir, "f")) != "kept" || readFile(t, filepath.Join(dir, "d/x")) != "1" {
		t.Error("this layer's entries were deleted")
	}
	checkOpaque(t, dir, map[string]bool{"d": true, "e": true})
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	unpack(t, dir, Options{},
		reg("f", "first", 0o644), reg("f", "second", 0o600), // file over file
		dirEnt("d/", 0o755), reg("d/inner", "x", 0o644), dirEnt("d/sub/", 0o755), reg("d", "file now", 0o644), // file over dir
		dirEnt("k/", 0o700), reg("k/kept", "x", 0o644), dirEnt("k/", 0o751), // dir over dir
		reg("r", "x", 0o644), dirEnt("r/", 0o755), reg("r/in", "y", 0o644), // dir over file
		dirEnt("s/", 0o755), reg("s/x", "x", 0o644), sym("s", "target"), // symlink over dir
	)
	if readFile(t, filepath.Join(dir, "f")) != "second" {
		t.Error("file over file")
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("file over file: mode %v", fi.Mode())
	}
	if readFile(t, filepath.Join(dir, "d")) != "file now" {
		t.Error("file over dir")
	}
	if readFile(t, filepath.Join(dir, "k/kept")) != "x" {
		t.Error("dir over dir lost its contents")
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "k")); fi.Mode().Perm() != 0o751 {
		t.Errorf("dir over dir: mode %v", fi.Mode())
	}
	if readFile(t, filepath.Join(dir, "r/in")) != "y" {
		t.Error("dir over file")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "s")); l != "target" {
		t.Error("symlink over dir")
	}
}

func TestLimits(t *testing.T) {
	ents := []ent{reg("a", "0123456789", 0o644), reg("b", "0123456789", 0o644), reg("c", "", 0o644)}
	for name, opts := range map[string]Options{
		"entries": {MaxEntries: 2},
		"bytes":   {MaxBytes: 15},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Unpack(context.Background(), tarOf(t, ents...), t.TempDir(), opts)
			if !errors.Is(err, ErrLimit) {
				t.Errorf("err = %v, want ErrLimit", err)
			}
		})
	}
	if _, err := Unpack(context.Background(), tarOf(t, ents...), t.TempDir(), Options{MaxEntries: 3, MaxBytes: 20}); err != nil {
		t.Errorf("at the limits exactly: %v", err)
	}
}

func TestLowerHardlink(t *testing.T) {
	top := t.TempDir()
	lower, mid, dir := filepath.Join(top, "lower"), filepath.Join(top, "mid"), filepath.Join(top, "upper")
	for _, d := range []string{lower, mid, dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tool, keep := reg("bin/tool", "lower tool", 0o755), reg("bin/keep", "k", 0o644)
	keep.hdr.Name = "/bin/keep"
	unpack(t, lower, Options{}, tool, reg("bin/gone", "x", 0o755), keep)
	unpack(t, mid, Options{}, reg("bin/.wh.gone", "", 0))
	unpack(t, dir, Options{Lower: []string{mid, lower}},
		linkTo(tool, "usr/bin/tool"),
		linkTo(keep, "keep2"), reg("keep2", "replaced", 0o644), // replacing the link must not touch the lower file
	)
	a, b := lstat(t, filepath.Join(lower, "bin/tool")), lstat(t, filepath.Join(dir, "usr/bin/tool"))
	if a.Ino != b.Ino {
		t.Errorf("lower hardlink: inodes %d and %d", a.Ino, b.Ino)
	}
	if readFile(t, filepath.Join(lower, "bin/keep")) != "k" {
		t.Error("overwriting a link changed the lower file")
	}
	_, err := Unpack(context.Background(), tarOf(t, hard("g", "bin/gone")), dir, Options{Lower: []string{mid, lower}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a link to a file a nearer layer deleted: %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Unpack(ctx, tarOf(t, reg("a", "x", 0o644)), t.TempDir(), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestProgressAndLargeFile(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
	var calls []int64
	dir := t.TempDir()
	st := unpack(t, dir, Options{Progress: func(n int64) { calls = append(calls, n) }}, reg("big", body, 0o644))
	if st.Bytes != int64(len(body)) || len(calls) < 2 || calls[len(calls)-1] != st.Bytes {
		t.Errorf("stats %+v, progress %v", st, calls)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "big")); fi.Size() != int64(len(body)) {
		t.Errorf("size %d", fi.Size())
	}
}

func TestTruncatedArchive(t *testing.T) {
	b, _ := io.ReadAll(tarOf(t, reg("a", strings.Repeat("x", 4096), 0o644)))
	_, err := Unpack(context.Background(), bytes.NewReader(b[:1500]), t.TempDir(), Options{})
	if err == nil {
		t.Error("a truncated archive unpacked without error")
	}
}

func TestNoDescriptorLeak(t *testing.T) {
	count := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := count()
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		Unpack(context.Background(), tarOf(t, reg("a/b/c", "x", 0o644), sym("s", ".."), hard("h", "a/b/c"),
			dirEnt("a/", 0o755), reg("a", "x", 0o644), reg("../bad", "", 0o644)), dir, Options{})
	}
	if after := count(); after != before {
		t.Errorf("descriptors: %d before, %d after", before, after)
	}
}

// TestUnprivileged runs its checks as nobody, in a copy of the test binary.
func TestUnprivileged(t *testing.T) {
	if os.Getenv("K3_LAYER_UNPRIVILEGED") == "" && isRoot() {
		bin := filepath.Join(t.TempDir(), "layer.test")
		for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
			if err := os.Chmod(d, 0o755); err != nil { // TempDir makes them 0700
				t.Fatal(err)
			}
		}
		if err := copyFile(bin, os.Args[0]); err != nil {
			testneed.Missing(t, "cannot copy the test binary: "+err.Error())
		}
		cmd := exec.Command(bin, "-test.run=^TestUnprivileged$", "-test.v")
		cmd.Env = append(os.Environ(), "K3_LAYER_UNPRIVILEGED=1")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	if NativeWhiteouts() != MarkerWhiteouts {
		t.Error("NativeWhiteouts unprivileged")
	}
	dir := t.TempDir()
	t.Cleanup(func() { // read-only directories would defeat TempDir's cleanup
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	file := reg("ro/file", "x", 0o644)
	file.hdr.Uid = 1234
	file.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.x": "1", "SCHILY.xattr.user.k3": "1"}
	st := unpack(t, dir, Options{},
		dirEnt("ro/", 0o555), file, dirEnt("ro/sub/", 0o500), reg("ro/sub/f", "y", 0o400),
		dev(tar.TypeChar, "dev/null", 1, 3), dev(tar.TypeFifo, "fifo", 0, 0),
		reg("ro/.wh.x", "", 0),
	)
	if st.Skipped != 1 {
		t.Errorf("Skipped = %d, want 1", st.Skipped)
	}
	if _, err := os.Lstat(filepath.Join(dir, "fifo")); err != nil {
		t.Error("the fifo was not made")
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "ro")); fi.Mode().Perm() != 0o555 {
		t.Errorf("ro: %v", fi.Mode())
	}
	if s := lstat(t, filepath.Join(dir, "ro/file")); s.Uid != uint32(os.Geteuid()) {
		t.Errorf("owner %d", s.Uid)
	}
	if readFile(t, filepath.Join(dir, "ro/sub/f")) != "y" {
		t.Error("contents")
	}
	// Linux 5.8+ lets anyone make the 0/0 whiteout device; the trusted
	// opaque xattr still needs privilege.
	_, err := Unpack(context.Background(), tarOf(t, reg("o/.wh..wh..opq", "", 0)), dir, Options{Whiteouts: OverlayWhiteouts})
	if err == nil {
		t.Error("an overlay opaque directory unprivileged should fail")
	}
}

func copyFile(dst, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// TestHardlinkMetadata: a hardlink entry's owner, mode, times and xattrs
// go to the inode it links to, so every name of it shows them, as Docker
// and podman unpack. A lower layer's inode is never changed: when the
// entry changes it, the target is copied up into this layer first.
func TestHardlinkMetadata(t *testing.T) {
	top := t.TempDir()
	lower, dir := filepath.Join(top, "lower"), filepath.Join(top, "upper")
	for _, d := range []string{lower, dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	older, newer := mtime.Add(-time.Hour), mtime.Add(time.Hour)
	owned := func(e ent, uid int, mode int64, when time.Time) ent {
		e.hdr.Uid, e.hdr.Gid, e.hdr.Mode, e.hdr.ModTime = uid, uid, mode, when
		return e
	}
	etc := dirEnt("etc/", 0o750)
	etc.hdr.ModTime = older
	unpack(t, lower, Options{},
		etc, owned(reg("etc/owned", "o", 0), 1000, 0o600, older), owned(sym("etc/sym", "owned"), 1000, 0o777, older),
		owned(reg("bin/tool", "tool", 0), 0, 0o755, mtime))
	unpack(t, dir, Options{Lower: []string{lower}},
		owned(hard("owned-link", "etc/owned"), 0, 0o644, newer),
		owned(hard("etc/sym-link", "etc/sym"), 0, 0o600, newer),
		owned(hard("tool2", "bin/tool"), 0, 0o755, mtime), // the same metadata: the lower inode is shared
		owned(hard("tool3", "tool2"), 0, 0o700, mtime),    // a link to that shared inode that changes it
		owned(reg("same", "s", 0), 1000, 0o600, older), owned(hard("same-link", "same"), 0, 0o644, newer),
	)
	check := func(name string, uid uint32, mode uint32, when time.Time) *syscall.Stat_t {
		t.Helper()
		s := lstat(t, name)
		if isRoot() && s.Uid != uid || s.Mode&0o7777 != mode || s.Mtim.Sec != when.Unix() || s.Mtim.Nsec != int64(when.Nanosecond()) {
			t.Errorf("%s: uid %d mode %o mtime %v; want %d %o %v", name, s.Uid, s.Mode&0o7777, time.Unix(s.Mtim.Unix()).UTC(), uid, mode, when)
		}
		return s
	}
	sameInode := func(a, b *syscall.Stat_t, what string) {
		t.Helper()
		if a.Ino != b.Ino {
			t.Errorf("%s: inodes %d and %d", what, a.Ino, b.Ino)
		}
	}
	in := func(layer, name string) string { return filepath.Join(layer, name) }

	sameInode(check(in(dir, "etc/owned"), 0, 0o644, newer), check(in(dir, "owned-link"), 0, 0o644, newer), "owned and its link")
	if readFile(t, in(dir, "etc/owned")) != "o" {
		t.Error("the copied-up file lost its contents")
	}
	check(in(lower, "etc/owned"), 1000, 0o600, older)
	check(in(dir, "etc"), 0, 0o750, older) // made as the lower directory it stands over

	// A symlink has no mode or times of its own to set: only its owner changes.
	sameInode(check(in(dir, "etc/sym"), 0, 0o777, older), check(in(dir, "etc/sym-link"), 0, 0o777, older), "sym and its link")
	check(in(lower, "etc/sym"), 1000, 0o777, older)
	if got, _ := os.Readlink(in(dir, "etc/sym")); got != "owned" {
		t.Errorf("copied-up symlink -> %q", got)
	}

	sameInode(check(in(dir, "tool2"), 0, 0o700, mtime), check(in(dir, "tool3"), 0, 0o700, mtime), "tool2 and tool3")
	if lstat(t, in(dir, "tool2")).Ino == check(in(lower, "bin/tool"), 0, 0o755, mtime).Ino {
		t.Error("tool3's metadata changed the lower layer's inode")
	}

	sameInode(check(in(dir, "same"), 0, 0o644, newer), check(in(dir, "same-link"), 0, 0o644, newer), "same and its link")
}
