package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Each hostile case unpacks into top/a/b/layer, with files beside it and
// above it, and must either fail or keep its writes inside the layer;
// either way nothing under top outside the layer may change. Absolute
// names and symlinks aim at top's real path, so an escape would land in the
// snapshot.
type hostileCase struct {
	name string
	ents func(top string) []ent
	// want is ErrUnsafePath or fs.ErrNotExist for a refusal, nil for an
	// archive that unpacks with its writes contained.
	want error
	// inside lists paths, relative to the layer (top's path substituted
	// for TOP), that must exist afterwards when want is nil.
	inside []string
}

var hostileCases = []hostileCase{
	{name: "dotdot", ents: one(reg("../escape", "x", 0o644)), want: ErrUnsafePath},
	{name: "dotdot deep", ents: one(reg("a/../../escape", "x", 0o644)), want: ErrUnsafePath},
	{name: "dotdot after slash", ents: one(reg("/../escape", "x", 0o644)), want: ErrUnsafePath},
	{name: "dotdot dir", ents: one(dirEnt("../../", 0o777)), want: ErrUnsafePath},
	{name: "dotdot whiteout", ents: one(reg("../.wh.sentinel", "", 0)), want: ErrUnsafePath},
	{name: "absolute", ents: func(top string) []ent {
		return []ent{reg(top+"/escape", "x", 0o644)}
	}, inside: []string{"TOP/escape"}},
	{name: "symlink to root", ents: func(top string) []ent {
		return []ent{sym("s", "/"), reg("s"+top+"/escape", "x", 0o644)}
	}, inside: []string{"TOP/escape"}},
	{name: "symlink up", ents: func(string) []ent {
		return []ent{sym("s", "../.."), reg("s/escape", "x", 0o644)}
	}, inside: []string{"escape"}},
	{name: "nested symlink up", ents: func(string) []ent {
		return []ent{sym("sub/s", "../../../.."), reg("sub/s/escape", "x", 0o644)}
	}, inside: []string{"escape"}},
	{name: "symlink chain", ents: func(string) []ent {
		return []ent{sym("c1", "c2"), sym("c2", "../.."), reg("c1/escape", "x", 0o644)}
	}, inside: []string{"escape"}},
	{name: "symlink to outside dir", ents: func(top string) []ent {
		return []ent{sym("evil", top+"/a/b"), reg("evil/sentinel", "pwned", 0o644)}
	}, want: fs.ErrNotExist}, // dangling inside the layer: refused
	{name: "hardlink up", ents: one(hard("h", "../../outside-file")), want: ErrUnsafePath},
	{name: "hardlink absolute", ents: func(top string) []ent {
		return []ent{hard("h", top+"/a/outside-file")}
	}, want: fs.ErrNotExist},
	{name: "hardlink via symlink", ents: func(string) []ent {
		return []ent{sym("s", "../.."), hard("h", "s/outside-file")}
	}, want: fs.ErrNotExist},
	{name: "hardlink via absolute symlink", ents: func(top string) []ent {
		return []ent{sym("s", top+"/a"), hard("h", "s/outside-file")}
	}, want: fs.ErrNotExist},
	{name: "symlink replaces dir", ents: func(string) []ent {
		return []ent{dirEnt("d/", 0o755), reg("d/x", "x", 0o644), sym("d", "../.."), reg("d/escape", "x", 0o644)}
	}, inside: []string{"escape", "d"}},
	{name: "dir over outward symlink", ents: func(string) []ent {
		d := dirEnt("s/", 0o777)
		d.hdr.Uid = 4242
		return []ent{sym("s", "../.."), d}
	}, inside: []string{"s/"}},
	{name: "metadata on outward symlink", ents: func(string) []ent {
		s := sym("s", "../../outside-file")
		s.hdr.Uid, s.hdr.Gid = 4242, 4242
		s.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.evil": "1", "SCHILY.xattr.trusted.evil": "1"}
		return []ent{s}
	}, inside: []string{"s"}},
	{name: "file over outward symlink", ents: func(string) []ent {
		return []ent{sym("f", "../sentinel"), reg("f", "pwned", 0o644)}
	}, inside: []string{"f"}},
	{name: "device through symlink", ents: func(string) []ent {
		return []ent{sym("s", "../.."), dev(tar.TypeFifo, "s/fifo", 0, 0)}
	}, inside: []string{"fifo"}},
	{name: "whiteouts through symlink", ents: func(string) []ent {
		return []ent{sym("s", "../.."), reg("s/.wh.sentinel", "", 0), reg("s/.wh..wh..opq", "", 0)}
	}},
	{name: "overlay xattrs from the archive", ents: func(string) []ent {
		d := dirEnt("d/", 0o755)
		d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}
		return []ent{d}
	}, inside: []string{"d/"}},
}

func one(e ent) func(string) []ent { return func(string) []ent { return []ent{e} } }

func TestHostileArchives(t *testing.T) {
	formats := []WhiteoutFormat{MarkerWhiteouts}
	if isRoot() {
		formats = append(formats, OverlayWhiteouts)
	}
	for _, f := range formats {
		for _, c := range hostileCases {
			t.Run(fmt.Sprintf("%s/format%d", c.name, f), func(t *testing.T) { runHostile(t, c, f) })
		}
	}
}

func runHostile(t *testing.T, c hostileCase, format WhiteoutFormat) {
	top := t.TempDir()
	dir := filepath.Join(top, "a", "b", "layer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string]string{"sentinel": "top", "a/outside-file": "keep", "a/b/sentinel": "beside"} {
		if err := os.WriteFile(filepath.Join(top, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, top, dir)

	_, err := Unpack(context.Background(), tarOf(t, c.ents(top)...), dir, Options{Whiteouts: format})

	if after := snapshot(t, top, dir); after != before {
		t.Fatalf("outside the layer changed (err %v):\nbefore:\n%s\nafter:\n%s", err, before, after)
	}
	if c.want != nil {
		if !errors.Is(err, c.want) {
			t.Fatalf("err = %v, want %v", err, c.want)
		}
		return
	}
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	for _, p := range c.inside {
		p = strings.Replace(p, "TOP", top, 1)
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Errorf("%s not made inside the layer: %v", p, err)
		} else if strings.HasSuffix(p, "/") != fi.IsDir() {
			t.Errorf("%s: mode %v", p, fi.Mode())
		}
	}
}

// snapshot describes everything under top except the layer directory's
// contents: type, mode, owner, size, mtime, links, xattrs and contents.
func snapshot(t *testing.T, top, layer string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == layer {
			// The layer directory is inside by definition: Unpack may change
			// its times, links and xattrs. Its name stays listed.
			lines = append(lines, p)
			return fs.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d size=%d mtime=%d nlink=%d", p, fi.Mode(), s.Uid, s.Gid, s.Size, s.Mtim.Nano(), s.Nlink)
		line += " xattrs=" + xattrs(p)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return fmt.Sprint(err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		v := make([]byte, 256)
		k, _ := unix.Lgetxattr(p, name, v)
		fmt.Fprintf(&out, "%s=%q,", name, v[:max(k, 0)])
	}
	return out.String()
}
