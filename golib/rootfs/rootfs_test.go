package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/internal/testneed"
	"github.com/k3-core/k3-core/golib/safego"
)

// tree builds a layer directory by hand.
type tree struct {
	t    *testing.T
	root string
}

func newTree(t *testing.T, root string) *tree {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &tree{t, root}
}

func (tr *tree) path(rel string) string {
	p := filepath.Join(tr.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	return p
}

func (tr *tree) must(err error) {
	tr.t.Helper()
	if err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) file(rel, data string, perm os.FileMode) *tree {
	tr.t.Helper()
	p := tr.path(rel)
	tr.must(os.WriteFile(p, []byte(data), 0o600))
	tr.must(unix.Chmod(p, uint32(perm))) // past the umask; 0o4000 is setuid
	return tr
}

func (tr *tree) dir(rel string, perm os.FileMode) *tree {
	tr.t.Helper()
	p := tr.path(rel)
	tr.must(os.MkdirAll(p, 0o700))
	tr.must(unix.Chmod(p, uint32(perm)))
	return tr
}

func (tr *tree) symlink(rel, target string) *tree {
	tr.t.Helper()
	tr.must(os.Symlink(target, tr.path(rel)))
	return tr
}

func (tr *tree) link(rel, existing string) *tree {
	tr.t.Helper()
	tr.must(os.Link(existing, tr.path(rel)))
	return tr
}

func (tr *tree) node(rel string, mode uint32, major, minor uint32) *tree {
	tr.t.Helper()
	p := tr.path(rel)
	tr.must(unix.Mknod(p, mode, int(unix.Mkdev(major, minor))))
	tr.must(unix.Chmod(p, mode&0o7777))
	return tr
}

func (tr *tree) whiteout(rel string) *tree { return tr.node(rel, unix.S_IFCHR, 0, 0) }

func (tr *tree) xattr(rel, name, value string) *tree {
	tr.t.Helper()
	tr.must(unix.Lsetxattr(filepath.Join(tr.root, rel), name, []byte(value), 0))
	return tr
}

func (tr *tree) chown(rel string, uid, gid int) *tree {
	tr.t.Helper()
	tr.must(os.Lchown(filepath.Join(tr.root, rel), uid, gid))
	return tr
}

var stamp = time.Unix(1700000000, 123456789)

// settle gives every path the same mtime, with nanoseconds to be truncated.
func settle(t *testing.T, roots ...string) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(stamp.UnixNano()), unix.NsecToTimespec(stamp.UnixNano())}
	for _, root := range roots {
		filepath.Walk(root, func(p string, _ fs.FileInfo, err error) error {
			if err == nil {
				err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
			}
			if err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		testneed.Missing(t, "needs root: device nodes, chown and trusted.* xattrs")
	}
}

// want is one expected tar entry; body is the contents of a regular file
// or the target of a link.
type want struct {
	name string
	typ  byte
	mode int64
	body string
}

type readEntry struct {
	*tar.Header
	body []byte
}

func readTar(t *testing.T, data []byte) []readEntry {
	t.Helper()
	var out []readEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", h.Name, err)
		}
		out = append(out, readEntry{h, body})
	}
}

func checkEntries(t *testing.T, got []readEntry, wants []want) {
	t.Helper()
	var gotNames, wantNames []string
	for _, e := range got {
		gotNames = append(gotNames, e.Name)
	}
	for _, w := range wants {
		wantNames = append(wantNames, w.name)
	}
	if !slices.Equal(gotNames, wantNames) {
		t.Fatalf("entries:\n got %q\nwant %q", gotNames, wantNames)
	}
	for i, w := range wants {
		e := got[i]
		if e.Typeflag != w.typ || e.Mode != w.mode {
			t.Errorf("%s: type %q mode %o, want %q %o", w.name, e.Typeflag, e.Mode, w.typ, w.mode)
		}
		body := e.Linkname
		if e.Typeflag == tar.TypeReg {
			body = string(e.body)
		}
		if body != w.body {
			t.Errorf("%s: body %.40q, want %.40q", w.name, body, w.body)
		}
		if e.Uname != "" || e.Gname != "" || !e.AccessTime.IsZero() || !e.ChangeTime.IsZero() {
			t.Errorf("%s: names %q/%q, atime %v, ctime %v", w.name, e.Uname, e.Gname, e.AccessTime, e.ChangeTime)
		}
		if !e.ModTime.Equal(stamp.Truncate(time.Second)) {
			t.Errorf("%s: mtime %v, want %v", w.name, e.ModTime, stamp.Truncate(time.Second))
		}
	}
}

// export writes the stack both to memory and to a file (which takes the
// copy_file_range path), checks they agree with each other and with
// Measure, and returns the bytes.
func export(t *testing.T, s Stack) []byte {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	st, err := s.WriteTar(ctx, &buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var progressed int64
	fst, err := s.WriteTar(ctx, f, Options{Progress: func(b, _ int64) { progressed = b }})
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, buf.Bytes()) {
		t.Fatalf("the file output (%d bytes) differs from the buffered one (%d)", len(onDisk), buf.Len())
	}
	m, err := s.Measure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m != st || fst != st || st.TarBytes != int64(buf.Len()) || progressed != st.Bytes {
		t.Fatalf("stats: measured %+v, wrote %+v and %+v, %d bytes, progress %d", m, st, fst, buf.Len(), progressed)
	}
	return buf.Bytes()
}

// ociStack has only OCI markers, which anyone may create.
func ociStack(t *testing.T) Stack {
	base := t.TempDir()
	top, mid, low := newTree(t, filepath.Join(base, "top")), newTree(t, filepath.Join(base, "mid")), newTree(t, filepath.Join(base, "low"))
	low.file("etc/passwd", "low", 0o644).file("etc/gone.conf", "x", 0o644)
	mid.file("etc/passwd", "mid", 0o600).file("etc/.wh.gone.conf", "", 0o644)
	low.file("opq/old", "old", 0o644)
	mid.file("opq/.wh..wh..opq", "", 0o644).file("opq/new", "new", 0o644)
	low.file("fod/inner", "x", 0o644)
	mid.file("fod", "file over dir", 0o644)
	low.file("dof", "x", 0o644)
	mid.file("dof/inner", "dir over file", 0o644)
	low.dir("merge", 0o755).file("merge/a", "a-low", 0o644).file("merge/b", "b-low", 0o644).file("merge/c", "c-low", 0o644)
	mid.dir("merge", 0o750).file("merge/b", "b-mid", 0o644).file("merge/sub/x", "x", 0o644)
	top.dir("merge", 0o700).file("merge/.wh.c", "", 0o644).file("merge/d", "d-top", 0o644)
	low.file("recreated/old", "old", 0o644)
	mid.file(".wh.recreated", "", 0o644).file("recreated/new", "new", 0o644)
	low.file("gone-dir/x/y", "y", 0o644)
	top.file(".wh.gone-dir", "", 0o644)
	low.file(".wh..wh.plnk/123", "aufs", 0o644)
	top.file(".wh.never-was", "", 0o644)
	settle(t, top.root, mid.root, low.root)
	return Stack{top.root, mid.root, low.root}
}

func ociWants() []want {
	return []want{
		{"dof/", tar.TypeDir, 0o755, ""},
		{"dof/inner", tar.TypeReg, 0o644, "dir over file"},
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/passwd", tar.TypeReg, 0o600, "mid"},
		{"fod", tar.TypeReg, 0o644, "file over dir"},
		{"merge/", tar.TypeDir, 0o700, ""},
		{"merge/a", tar.TypeReg, 0o644, "a-low"},
		{"merge/b", tar.TypeReg, 0o644, "b-mid"},
		{"merge/d", tar.TypeReg, 0o644, "d-top"},
		{"merge/sub/", tar.TypeDir, 0o755, ""},
		{"merge/sub/x", tar.TypeReg, 0o644, "x"},
		{"opq/", tar.TypeDir, 0o755, ""},
		{"opq/new", tar.TypeReg, 0o644, "new"},
		{"recreated/", tar.TypeDir, 0o755, ""},
		{"recreated/new", tar.TypeReg, 0o644, "new"},
	}
}

func TestOCIWhiteouts(t *testing.T) {
	s := ociStack(t)
	checkEntries(t, readTar(t, export(t, s)), ociWants())
}

func TestWalkReportsLayers(t *testing.T) {
	s := ociStack(t)
	got := map[string]string{}
	err := s.Walk(context.Background(), func(rel, layerDir string, fi fs.FileInfo) error {
		if fi.Name() != filepath.Base(rel) {
			t.Errorf("%s: Name %q", rel, fi.Name())
		}
		if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
			t.Errorf("%s: Sys is %T", rel, fi.Sys())
		}
		got[rel] = filepath.Base(layerDir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, layer := range map[string]string{
		"merge": "top", "merge/a": "low", "merge/b": "mid", "merge/d": "top", "etc": "mid", "fod": "mid", "opq/new": "mid",
	} {
		if got[rel] != layer {
			t.Errorf("%s comes from %q, want %q", rel, got[rel], layer)
		}
	}
}

func TestWalkSkips(t *testing.T) {
	s := ociStack(t)
	var seen []string
	err := s.Walk(context.Background(), func(rel, _ string, fi fs.FileInfo) error {
		seen = append(seen, rel)
		switch rel {
		case "etc":
			return fs.SkipDir
		case "merge/a":
			return fs.SkipDir // the rest of merge/
		case "opq/new":
			return fs.SkipAll
		}
		return nil
	})
	want := []string{"dof", "dof/inner", "etc", "fod", "merge", "merge/a", "opq", "opq/new"}
	if err != nil || !slices.Equal(seen, want) {
		t.Fatalf("saw %q (%v), want %q", seen, err, want)
	}
}

// fullStack has everything, both whiteout formats, devices and owners.
func fullStack(t *testing.T) (Stack, []want) {
	needRoot(t)
	base := t.TempDir()
	top, mid, low := newTree(t, filepath.Join(base, "top")), newTree(t, filepath.Join(base, "mid")), newTree(t, filepath.Join(base, "low"))

	big := make([]byte, 3<<20+11)
	rand.Read(big)
	medium := strings.Repeat("m", 100<<10+7)
	longDir := "long/" + strings.Repeat("d", 120)
	longFile := "long/" + strings.Repeat("f", 110)
	longTarget := strings.Repeat("t/", 75)

	low.file("bin/busybox", "busybox", 0o755).link("bin/ls", filepath.Join(low.root, "bin/busybox")).file("bin/su", "su", 0o4755)
	low.file("etc/passwd", "low", 0o644).file("etc/shadow", "shadow", 0o640).chown("etc/shadow", 0, 42)
	low.file("etc/gone.conf", "x", 0o644).file("etc/gone-dev.conf", "x", 0o644)
	mid.file("etc/passwd", "root:x:0:0", 0o644).file("etc/.wh.gone.conf", "", 0o644)
	top.whiteout("etc/gone-dev.conf")
	low.file("opq-oci/old", "old", 0o644)
	mid.file("opq-oci/.wh..wh..opq", "", 0o644).file("opq-oci/new", "new", 0o644)
	low.file("opq-ovl/old", "old", 0o644)
	top.file("opq-ovl/new", "new", 0o644).xattr("opq-ovl", "trusted.overlay.opaque", "y")
	low.file("fod/inner", "x", 0o644)
	mid.file("fod", "file over dir", 0o644)
	low.file("dof", "x", 0o644)
	mid.file("dof/inner", "dir over file", 0o644)
	low.dir("merge", 0o755).file("merge/a", "a-low", 0o644).file("merge/b", "b-low", 0o644).file("merge/c", "c-low", 0o644)
	mid.dir("merge", 0o750).file("merge/b", "b-mid", 0o644).file("merge/sub/x", "x", 0o644)
	top.dir("merge", 0o700).whiteout("merge/c").file("merge/d", "d-top", 0o644)
	low.file("recreated/old", "old", 0o644)
	mid.file(".wh.recreated", "", 0o644).file("recreated/new", "new", 0o644)
	low.file("gone-dir/x/y", "y", 0o644)
	top.whiteout("gone-dir")
	low.file(longFile, "long", 0o644).file(longDir+"/file", "deep", 0o644)
	low.file(".wh..wh.plnk/123", "aufs", 0o644)
	low.node("dev/null", unix.S_IFCHR|0o666, 1, 3).node("dev/loop0", unix.S_IFBLK|0o660, 7, 0)
	low.node("dev/fifo", unix.S_IFIFO|0o600, 0, 0).node("dev/sock", unix.S_IFSOCK|0o755, 0, 0)
	low.dir("tmp", 0o1777)
	low.file("empty", "", 0o644).file("big", string(big), 0o644).file("medium", medium, 0o644)
	low.symlink("lnk", "etc/passwd").symlink("abs", "/etc/passwd").symlink("longlink", longTarget)
	low.file("bigid", "id", 0o644).chown("bigid", 3000000, 3000001)
	low.file("xattr", "x", 0o644).xattr("xattr", "user.k3", "1").xattr("xattr", "trusted.overlay.origin", "o")
	low.file("zzz/target", "shared", 0o644)
	top.link("aaa-first", filepath.Join(low.root, "zzz/target"))
	top.link("hl-top", filepath.Join(low.root, "bin/busybox"))
	settle(t, top.root, mid.root, low.root)

	wants := []want{
		{"aaa-first", tar.TypeReg, 0o644, "shared"},
		{"abs", tar.TypeSymlink, 0o777, "/etc/passwd"},
		{"big", tar.TypeReg, 0o644, string(big)},
		{"bigid", tar.TypeReg, 0o644, "id"},
		{"bin/", tar.TypeDir, 0o755, ""},
		{"bin/busybox", tar.TypeReg, 0o755, "busybox"},
		{"bin/ls", tar.TypeLink, 0o755, "bin/busybox"},
		{"bin/su", tar.TypeReg, 0o4755, "su"},
		{"dev/", tar.TypeDir, 0o755, ""},
		{"dev/fifo", tar.TypeFifo, 0o600, ""},
		{"dev/loop0", tar.TypeBlock, 0o660, ""},
		{"dev/null", tar.TypeChar, 0o666, ""},
		{"dof/", tar.TypeDir, 0o755, ""},
		{"dof/inner", tar.TypeReg, 0o644, "dir over file"},
		{"empty", tar.TypeReg, 0o644, ""},
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/passwd", tar.TypeReg, 0o644, "root:x:0:0"},
		{"etc/shadow", tar.TypeReg, 0o640, "shadow"},
		{"fod", tar.TypeReg, 0o644, "file over dir"},
		{"hl-top", tar.TypeLink, 0o755, "bin/busybox"},
		{"lnk", tar.TypeSymlink, 0o777, "etc/passwd"},
		{"long/", tar.TypeDir, 0o755, ""},
		{longDir + "/", tar.TypeDir, 0o755, ""},
		{longDir + "/file", tar.TypeReg, 0o644, "deep"},
		{longFile, tar.TypeReg, 0o644, "long"},
		{"longlink", tar.TypeSymlink, 0o777, longTarget},
		{"medium", tar.TypeReg, 0o644, medium},
		{"merge/", tar.TypeDir, 0o700, ""},
		{"merge/a", tar.TypeReg, 0o644, "a-low"},
		{"merge/b", tar.TypeReg, 0o644, "b-mid"},
		{"merge/d", tar.TypeReg, 0o644, "d-top"},
		{"merge/sub/", tar.TypeDir, 0o755, ""},
		{"merge/sub/x", tar.TypeReg, 0o644, "x"},
		{"opq-oci/", tar.TypeDir, 0o755, ""},
		{"opq-oci/new", tar.TypeReg, 0o644, "new"},
		{"opq-ovl/", tar.TypeDir, 0o755, ""},
		{"opq-ovl/new", tar.TypeReg, 0o644, "new"},
		{"recreated/", tar.TypeDir, 0o755, ""},
		{"recreated/new", tar.TypeReg, 0o644, "new"},
		{"tmp/", tar.TypeDir, 0o1777, ""},
		{"xattr", tar.TypeReg, 0o644, "x"},
		{"zzz/", tar.TypeDir, 0o755, ""},
		{"zzz/target", tar.TypeLink, 0o644, "aaa-first"},
	}
	return Stack{top.root, mid.root, low.root}, wants
}

func TestExport(t *testing.T) {
	s, wants := fullStack(t)
	data := export(t, s)
	got := readTar(t, data)
	checkEntries(t, got, wants)

	byName := map[string]readEntry{}
	for _, e := range got {
		byName[e.Name] = e
	}
	if e := byName["etc/shadow"]; e.Uid != 0 || e.Gid != 42 {
		t.Errorf("etc/shadow owned by %d:%d", e.Uid, e.Gid)
	}
	if e := byName["bigid"]; e.Uid != 3000000 || e.Gid != 3000001 || e.PAXRecords["uid"] != "3000000" {
		t.Errorf("bigid owned by %d:%d, PAX %v", e.Uid, e.Gid, e.PAXRecords)
	}
	if e := byName["dev/null"]; e.Devmajor != 1 || e.Devminor != 3 {
		t.Errorf("dev/null is %d,%d", e.Devmajor, e.Devminor)
	}
	if e := byName["dev/loop0"]; e.Devmajor != 7 || e.Devminor != 0 {
		t.Errorf("dev/loop0 is %d,%d", e.Devmajor, e.Devminor)
	}
	if x := byName["xattr"].PAXRecords; len(x) != 1 || x["SCHILY.xattr.user.k3"] != "1" {
		t.Errorf("xattr records %v, want only user.k3=1", x)
	}
	// PAX only where a field needs it, as docker export writes; a long
	// path that splits into USTAR's prefix and name fields needs none.
	for _, e := range got {
		needsPAX := strings.HasSuffix(e.Name, "fff") || e.Name == "longlink" || e.Name == "bigid" || e.Name == "xattr" ||
			e.Name == "long/"+strings.Repeat("d", 120)+"/"
		if want := map[bool]tar.Format{true: tar.FormatPAX, false: tar.FormatUSTAR}[needsPAX]; e.Format != want {
			t.Errorf("%s: format %v, want %v", e.Name, e.Format, want)
		}
	}
	for _, e := range got {
		if e.Name == "opq-ovl/" && len(e.PAXRecords) != 0 {
			t.Errorf("opq-ovl/ carries %v", e.PAXRecords)
		}
	}
	checkGNUTar(t, s, data)
}

// checkGNUTar has GNU tar list the export cleanly and unpack it into a tree
// with the same contents, owners, modes, links and xattrs.
func checkGNUTar(t *testing.T, s Stack, data []byte) {
	t.Helper()
	dir := t.TempDir()
	archive := filepath.Join(dir, "export.tar")
	if err := os.WriteFile(archive, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gnutar(t, "-tvf", archive)
	out := filepath.Join(dir, "x")
	os.Mkdir(out, 0o755)
	gnutar(t, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", archive, "-C", out)

	err := s.Walk(context.Background(), func(rel, layerDir string, fi fs.FileInfo) error {
		st := fi.Sys().(*syscall.Stat_t)
		var got unix.Stat_t
		err := unix.Lstat(filepath.Join(out, rel), &got)
		if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			if err == nil {
				t.Errorf("%s: a socket was archived", rel)
			}
			return nil
		}
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if got.Mode != st.Mode || got.Uid != st.Uid || got.Gid != st.Gid || got.Rdev != st.Rdev || got.Size != st.Size {
			t.Errorf("%s: unpacked as mode %o %d:%d rdev %x size %d, is %o %d:%d %x %d",
				rel, got.Mode, got.Uid, got.Gid, got.Rdev, got.Size, st.Mode, st.Uid, st.Gid, st.Rdev, st.Size)
		}
		if fi.Mode().IsRegular() {
			want, _ := os.ReadFile(filepath.Join(layerDir, rel))
			have, _ := os.ReadFile(filepath.Join(out, rel))
			if !bytes.Equal(have, want) {
				t.Errorf("%s: contents differ", rel)
			}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			want, _ := os.Readlink(filepath.Join(layerDir, rel))
			have, _ := os.Readlink(filepath.Join(out, rel))
			if have != want {
				t.Errorf("%s: links to %q, want %q", rel, have, want)
			}
		}
		if !fi.IsDir() && got.Mtim.Sec != stamp.Unix() {
			t.Errorf("%s: mtime %d", rel, got.Mtim.Sec)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool {
		var sa, sb unix.Stat_t
		return unix.Lstat(filepath.Join(out, a), &sa) == nil && unix.Lstat(filepath.Join(out, b), &sb) == nil && sa.Ino == sb.Ino
	}
	if !same("bin/busybox", "bin/ls") || !same("bin/busybox", "hl-top") || !same("aaa-first", "zzz/target") {
		t.Error("hardlinks were not unpacked as hardlinks")
	}
	v := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(out, "xattr"), "user.k3", v); err != nil || string(v[:n]) != "1" {
		t.Errorf("user.k3 unpacked as %q (%v)", v[:n], err)
	}
}

func gnutar(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("tar"); err != nil {
		testneed.Missing(t, "GNU tar is not installed")
	}
	cmd := exec.Command("tar", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("tar %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func TestHardlinkAcrossLayers(t *testing.T) {
	base := t.TempDir()
	top, low := newTree(t, filepath.Join(base, "top")), newTree(t, filepath.Join(base, "low"))
	low.file("a/one", "1", 0o644).file("b/two", "2", 0o644)
	top.link("a/uno", filepath.Join(low.root, "a/one"))
	top.link("0-two", filepath.Join(low.root, "b/two"))
	// A copy-up breaks the link: the upper file is a different inode.
	low.file("c/orig", "old", 0o644).link("c/peer", filepath.Join(low.root, "c/orig"))
	top.file("c/orig", "new", 0o644)
	// The first path of an inode may be deleted; the next one carries it.
	low.file("d/first", "d", 0o644).link("d/second", filepath.Join(low.root, "d/first"))
	top.file("d/.wh.first", "", 0o644)
	settle(t, top.root, low.root)

	got := readTar(t, export(t, Stack{top.root, low.root}))
	checkEntries(t, got, []want{
		{"0-two", tar.TypeReg, 0o644, "2"},
		{"a/", tar.TypeDir, 0o755, ""},
		{"a/one", tar.TypeReg, 0o644, "1"},
		{"a/uno", tar.TypeLink, 0o644, "a/one"},
		{"b/", tar.TypeDir, 0o755, ""},
		{"b/two", tar.TypeLink, 0o644, "0-two"},
		{"c/", tar.TypeDir, 0o755, ""},
		{"c/orig", tar.TypeReg, 0o644, "new"},
		{"c/peer", tar.TypeReg, 0o644, "old"},
		{"d/", tar.TypeDir, 0o755, ""},
		{"d/second", tar.TypeReg, 0o644, "d"},
	})
}

func TestEmptyStack(t *testing.T) {
	data := export(t, Stack{t.TempDir()})
	if len(data) != 1024 || !bytes.Equal(data, make([]byte, 1024)) {
		t.Fatalf("empty tree exported as %d bytes", len(data))
	}
}

func TestOpaqueRoot(t *testing.T) {
	base := t.TempDir()
	top, low := newTree(t, filepath.Join(base, "top")), newTree(t, filepath.Join(base, "low"))
	top.file(".wh..wh..opq", "", 0o644).file("kept", "k", 0o644)
	low.file("hidden", "h", 0o644)
	settle(t, top.root, low.root)
	checkEntries(t, readTar(t, export(t, Stack{top.root, low.root})), []want{{"kept", tar.TypeReg, 0o644, "k"}})
}

func TestMissingLayer(t *testing.T) {
	_, err := Stack{filepath.Join(t.TempDir(), "nope")}.Measure(context.Background())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestCancel(t *testing.T) {
	s := ociStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := s.Walk(ctx, func(string, string, fs.FileInfo) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("walk went on to %d entries and returned %v", n, err)
	}
	if _, err := s.WriteTar(ctx, io.Discard, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteTar after cancel: %v", err)
	}
	if _, err := s.Measure(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Measure after cancel: %v", err)
	}
}

// TestKernelOverlay compares the export of an overlay-format stack with GNU
// tar's archive of the same stack mounted by the kernel's overlayfs, entry by
// entry: the kernel is the reference for what the merged tree shows.
func TestKernelOverlay(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	top, mid, low := newTree(t, filepath.Join(base, "top")), newTree(t, filepath.Join(base, "mid")), newTree(t, filepath.Join(base, "low"))
	low.file("bin/sh", "sh", 0o755).link("bin/ash", filepath.Join(low.root, "bin/sh")).file("bin/su", "su", 0o4755)
	low.file("etc/a", "a", 0o644).file("etc/b", "b", 0o600).chown("etc/b", 7, 8).file("etc/c", "c", 0o644)
	mid.file("etc/b", "b2", 0o640).whiteout("etc/c").file("etc/d", "d", 0o644)
	top.dir("etc", 0o700).whiteout("etc/a").file("etc/e", strings.Repeat("e", 70000), 0o644)
	low.file("opq/x", "x", 0o644).file("opq/sub/y", "y", 0o644)
	mid.dir("opq", 0o755).xattr("opq", "trusted.overlay.opaque", "y").file("opq/z", "z", 0o644)
	low.file("fod/x", "x", 0o644)
	mid.file("fod", "f", 0o644)
	low.file("dof", "x", 0o644)
	mid.dir("dof", 0o755).xattr("dof", "trusted.overlay.opaque", "y").file("dof/y", "y", 0o644)
	low.symlink("lnk", "bin/sh").node("dev/null", unix.S_IFCHR|0o666, 1, 3).node("dev/fifo", unix.S_IFIFO|0o644, 0, 0)
	low.file("x", "x", 0o644).xattr("x", "user.k3", "1")
	low.dir("tmp", 0o1777).file(strings.Repeat("n", 101), "long", 0o644)
	top.link("hl", filepath.Join(low.root, "bin/sh"))
	settle(t, top.root, mid.root, low.root)

	merged := filepath.Join(base, "merged")
	os.Mkdir(merged, 0o755)
	// All three as lower layers: a read-only mount that leaves them as they are.
	opts := "lowerdir=" + top.root + ":" + mid.root + ":" + low.root
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, opts); err != nil {
		testneed.Missing(t, "cannot mount overlayfs: "+err.Error())
	}
	defer unix.Unmount(merged, 0)

	ours := readTar(t, export(t, Stack{top.root, mid.root, low.root}))
	theirs := gnuArchive(t, merged)
	compareEntries(t, ours, theirs)
}

// gnuArchive is GNU tar's archive of dir, with names and times normalised
// the way docker export writes them.
func gnuArchive(t *testing.T, dir string) []readEntry {
	archive := filepath.Join(t.TempDir(), "gnu.tar")
	gnutar(t, "--numeric-owner", "--sort=name", "--xattrs", "--xattrs-include=*", "-cf", archive, "-C", dir, ".")
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	var out []readEntry
	for _, e := range readTar(t, data) {
		e.Name = strings.TrimPrefix(e.Name, "./")
		e.Linkname = strings.TrimPrefix(e.Linkname, "./")
		if e.Name != "" {
			out = append(out, e)
		}
	}
	return out
}

func compareEntries(t *testing.T, ours, theirs []readEntry) {
	t.Helper()
	if len(ours) != len(theirs) {
		t.Errorf("%d entries, GNU tar has %d", len(ours), len(theirs))
	}
	for i := range min(len(ours), len(theirs)) {
		a, b := ours[i], theirs[i]
		if a.Name != b.Name || a.Typeflag != b.Typeflag || a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid ||
			a.Linkname != b.Linkname || !bytes.Equal(a.body, b.body) || a.Devmajor != b.Devmajor || a.Devminor != b.Devminor ||
			!a.ModTime.Equal(b.ModTime.Truncate(time.Second)) || !xattrsEqual(a.PAXRecords, b.PAXRecords) {
			t.Errorf("entry %d:\n ours %s %q mode %o %d:%d link %q dev %d,%d mtime %v pax %v\n  gnu %s %q mode %o %d:%d link %q dev %d,%d mtime %v pax %v",
				i, a.Name, a.Typeflag, a.Mode, a.Uid, a.Gid, a.Linkname, a.Devmajor, a.Devminor, a.ModTime, a.PAXRecords,
				b.Name, b.Typeflag, b.Mode, b.Uid, b.Gid, b.Linkname, b.Devmajor, b.Devminor, b.ModTime, b.PAXRecords)
		}
	}
}

func xattrsEqual(a, b map[string]string) bool {
	pick := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				out[k] = v
			}
		}
		return out
	}
	pa, pb := pick(a), pick(b)
	if len(pa) != len(pb) {
		return false
	}
	for k, v := range pa {
		if pb[k] != v {
			return false
		}
	}
	return true
}

func TestLeftOutXattrs(t *testing.T) {
	needRoot(t)
	low := newTree(t, t.TempDir())
	low.file("f", "f", 0o644).xattr("f", "user.kept", "v").xattr("f", "trusted.overlay.origin", "o")
	if err := unix.Lsetxattr(filepath.Join(low.root, "f"), "security.selinux", []byte("system_u:object_r:etc_t:s0"), 0); err != nil {
		t.Logf("no security.selinux here (%v); checking the rest", err)
	}
	settle(t, low.root)
	got := readTar(t, export(t, Stack{low.root}))
	if x := got[0].PAXRecords; len(x) != 1 || x["SCHILY.xattr.user.kept"] != "v" {
		t.Fatalf("records %v, want only user.kept", x)
	}
}

func TestOverlayFeaturesRefused(t *testing.T) {
	needRoot(t)
	for _, name := range []string{"trusted.overlay.metacopy", "trusted.overlay.redirect"} {
		low := newTree(t, t.TempDir())
		low.file("f", "", 0o644).xattr("f", name, "")
		if _, err := (Stack{low.root}).WriteTar(context.Background(), io.Discard, Options{}); !errors.Is(err, errOverlayFeature) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// TestPodmanExport compares the export with `podman export` of a container
// made from it, entry by entry. It changes podman's storage, so it runs only
// when named: go test -run TestPodmanExport ./golib/rootfs/
//
// podman (containers/storage) differs from docker in two fields, which are
// set aside: it puts the file type bits in the mode field and fills Uname
// from the host's passwd. Names, order, owners, modes, sizes, times, link
// targets, device numbers and xattr records must agree.
func TestPodmanExport(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "Podman") {
		t.Skip("changes podman's storage; run it with -run TestPodmanExport")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		testneed.Missing(t, "podman is not installed")
	}
	s, _ := fullStack(t)
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.tar")
	if err := os.WriteFile(ours, export(t, s), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) string {
		out, err := exec.Command("podman", args...).Output()
		if err != nil {
			t.Fatalf("podman %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	image := podman("import", "-q", ours)
	defer podman("rmi", "-f", image)
	ctr := podman("create", image, "/bin/sh")
	defer podman("rm", "-f", ctr)
	theirs := filepath.Join(dir, "podman.tar")
	podman("export", "-o", theirs, ctr)

	data, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	exported := readTar(t, data)
	for _, e := range exported {
		e.Mode &= 0o7777
		e.Uname = ""
	}
	mine, _ := os.ReadFile(ours)
	compareEntries(t, readTar(t, mine), exported)
}

// TestExportRefusesAFileSwappedForAFIFO is a running container renaming a
// FIFO over a regular file between the walk's lstat and the export's open:
// opening the FIFO would block for ever, and a device there would put the
// host's disk in the tar. The export fails at once instead.
func TestExportRefusesAFileSwappedForAFIFO(t *testing.T) {
	upper := t.TempDir()
	newTree(t, upper).file("a", "kept", 0o644).file("victim", "data", 0o644)
	s := Stack{upper}
	x := &exporter{ctx: context.Background(), layers: s, out: newSink(io.Discard), links: map[fileID]string{}}
	swapThenAdd := func(e *entry) error {
		if e.rel == "victim" {
			victim := filepath.Join(upper, "victim")
			if err := os.Rename(victim, victim+".old"); err != nil {
				return err
			}
			if err := unix.Mkfifo(victim, 0o644); err != nil {
				return err
			}
		}
		return x.add(e)
	}
	done := make(chan error, 1)
	safego.Go(func() error { return s.walk(context.Background(), swapThenAdd) }, func(err error) { done <- err })
	select {
	case err := <-done:
		if !errors.Is(err, fsat.ErrChanged) {
			t.Fatalf("export of a swapped file: %v, want fsat.ErrChanged", err)
		}
		if !strings.Contains(err.Error(), "victim") {
			t.Errorf("the error %q does not name the file", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the export hangs opening the FIFO")
	}
}
