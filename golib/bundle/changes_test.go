package bundle

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/rootfs"
)

const hostBytes = "host file: must never change\n"

// hostFiles makes a file and a directory outside every layer, standing for
// the host a container's symlinks point at.
func hostFiles(t *testing.T) (file, dir string) {
	t.Helper()
	base := t.TempDir()
	file, dir = filepath.Join(base, "host-file"), filepath.Join(base, "host-dir")
	must(t, os.WriteFile(file, []byte(hostBytes), 0o644))
	must(t, os.Mkdir(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "victim"), []byte(hostBytes), 0o644))
	return file, dir
}

func checkHost(t *testing.T, file, dir string) {
	t.Helper()
	if b, err := os.ReadFile(file); err != nil || string(b) != hostBytes {
		t.Fatalf("host file is now %q, %v", b, err)
	}
	names, err := os.ReadDir(dir)
	if err != nil || len(names) != 1 || names[0].Name() != "victim" {
		t.Fatalf("host directory now holds %v, %v", names, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "victim")); err != nil || string(b) != hostBytes {
		t.Fatalf("host victim is now %q, %v", b, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// files writes files (content), directories (names ending in "/") and
// symlinks ("-> target") under dir.
func files(t *testing.T, dir string, entries ...string) string {
	t.Helper()
	for _, e := range entries {
		name, target, isLink := strings.Cut(e, " -> ")
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case isLink:
			must(t, os.Symlink(target, p))
		case strings.HasSuffix(name, "/"):
			must(t, os.MkdirAll(p, 0o755))
		default:
			must(t, os.WriteFile(p, []byte("new "+name), 0o644))
		}
	}
	return dir
}

// merged lists the stack's merged view as overlayfs would show it:
// "name" for files (with their content), "name/" for directories,
// "name -> target" for symlinks.
func merged(t *testing.T, layers Stack) []string {
	t.Helper()
	var out []string
	err := rootfs.Stack(layers).Walk(context.Background(), func(rel, dir string, fi fs.FileInfo) error {
		p := filepath.Join(dir, rel)
		switch {
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	must(t, err)
	sort.Strings(out)
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("merged view:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCopyInReplacesTheContainersSymlinksInsteadOfFollowingThem(t *testing.T) {
	hostFile, hostDir := hostFiles(t)
	up := strings.Repeat("../", 12)
	for _, mounted := range []bool{false, true} {
		upper := files(t, t.TempDir(), "d/x -> "+hostFile, "d/rel -> "+up+hostFile[1:], "e -> "+hostDir, "f/", "f/g -> /d")
		lower := files(t, t.TempDir(), "bin/")
		root := Root{Layers: Stack{upper, lower}}
		if mounted {
			files(t, upper, "bin/")
			root = Root{Mounted: upper}
		}
		src := files(t, t.TempDir(), "d/x", "d/rel", "e/victim", "f/g/x")
		written, err := root.CopyIn(context.Background(), src+"/.", "/")
		must(t, err)
		if written != "/" {
			t.Errorf("written %q, want /", written)
		}
		checkHost(t, hostFile, hostDir)
		want := []string{"bin/", "d/", "d/x=new d/x", "d/rel=new d/rel", "e/", "e/victim=new e/victim", "f/", "f/g/", "f/g/x=new f/g/x"}
		equal(t, merged(t, root.layers()), want)
	}
}

func TestCopyInFollowsTheDestinationInsideTheRoot(t *testing.T) {
	hostFile, hostDir := hostFiles(t)
	upper := t.TempDir()
	lower := files(t, t.TempDir(), "inside/", "inside/keep", "to-inside -> /inside", "rel -> ../../../../inside",
		"to-host -> "+hostDir, "file-link -> /inside/keep", "loop -> /loop/x")
	root := Root{Layers: Stack{upper, lower}}
	src := files(t, t.TempDir(), "payload")
	for dest, want := range map[string]string{
		"/to-inside/":      "/inside/payload",
		"/rel/renamed":     "/inside/renamed",
		"/file-link":       "/inside/keep",
		"to-inside/../new": "/new",
	} {
		got, err := root.CopyIn(context.Background(), filepath.Join(src, "payload"), dest)
		if err != nil || got != want {
			t.Errorf("CopyIn to %s = %q, %v; want %q", dest, got, err, want)
		}
	}
	for _, dest := range []string{"/to-host/payload", "/to-host/", "/loop/y", "/inside/keep/x"} {
		if got, err := root.CopyIn(context.Background(), filepath.Join(src, "payload"), dest); !errors.Is(err, ErrDestinationNotFound) {
			t.Errorf("CopyIn to %s = %q, %v; want ErrDestinationNotFound", dest, got, err)
		}
	}
	checkHost(t, hostFile, hostDir)
	equal(t, merged(t, root.Layers), []string{"inside/", "inside/keep=new payload", "inside/payload=new payload",
		"inside/renamed=new payload", "new=new payload", "to-inside -> /inside", "rel -> ../../../../inside",
		"to-host -> " + hostDir, "file-link -> /inside/keep", "loop -> /loop/x"})
}

func TestRemoveResolvesParentsInsideTheRoot(t *testing.T) {
	hostFile, hostDir := hostFiles(t)
	for _, mounted := range []bool{false, true} {
		upper := files(t, t.TempDir(), "rm -> "+hostDir, "rm-rel -> "+strings.Repeat("../", 12)+hostDir[1:], "x -> "+hostFile)
		lower := files(t, t.TempDir(), "inside/", "inside/old", "inside/keep", "to-inside -> /inside")
		root := Root{Layers: Stack{upper, lower}}
		if mounted {
			files(t, upper, "inside/", "inside/old", "inside/keep", "to-inside -> /inside")
			root = Root{Mounted: upper}
		}
		for _, p := range []string{"/rm/victim", "/rm-rel/victim", "/rm/"} {
			if got, err := root.Remove(p); !errors.Is(err, ErrPathNotFound) {
				t.Errorf("Remove(%s) = %q, %v; want ErrPathNotFound", p, got, err)
			}
		}
		for p, want := range map[string]string{"/to-inside/old": "/inside/old", "/rm": "/rm", "/x": "/x"} {
			if got, err := root.Remove(p); err != nil || got != want {
				t.Errorf("Remove(%s) = %q, %v; want %q", p, got, err, want)
			}
		}
		checkHost(t, hostFile, hostDir)
		equal(t, merged(t, root.layers()), []string{"inside/", "inside/keep=new inside/keep", "rm-rel -> " + strings.Repeat("../", 12) + hostDir[1:], "to-inside -> /inside"})
	}
}

func TestCopyInOverDeletedOrCoveredDirectoryHidesItsLowerContents(t *testing.T) {
	format := layer.NativeWhiteouts()
	upper := files(t, t.TempDir(), "covered")
	lower := files(t, t.TempDir(), "gone/", "gone/old", "covered/", "covered/old", "kept/", "kept/old", "sub/", "sub/gone/", "sub/gone/old")
	root := Root{Layers: Stack{upper, lower}}
	for _, p := range []string{"/gone", "/sub/gone"} {
		_, err := root.Remove(p)
		must(t, err)
	}
	// A whiteout left in the upper layer's own copy of sub, as a deletion
	// nested inside a copied tree meets it.
	src := files(t, t.TempDir(), "gone/new", "covered/new", "kept/new", "sub/gone/new")
	_, err := root.CopyIn(context.Background(), src+"/.", "/")
	must(t, err)
	equal(t, merged(t, root.Layers), []string{"gone/", "gone/new=new gone/new", "covered/", "covered/new=new covered/new",
		"kept/", "kept/old=new kept/old", "kept/new=new kept/new", "sub/", "sub/gone/", "sub/gone/new=new sub/gone/new"})
	if format == layer.MarkerWhiteouts {
		if _, err := os.Lstat(filepath.Join(upper, ".wh.gone")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the marker of the deleted directory is still there: %v", err)
		}
	}
}

func TestRootErrors(t *testing.T) {
	upper, lower := t.TempDir(), files(t, t.TempDir(), "etc/")
	root := Root{Layers: Stack{upper, lower}}
	src := files(t, t.TempDir(), "f")
	if _, err := root.CopyIn(context.Background(), filepath.Join(src, "missing"), "/etc"); !errors.Is(err, ErrSourceNotFound) {
		t.Errorf("missing source: %v", err)
	}
	if _, err := root.CopyIn(context.Background(), filepath.Join(src, "f"), "/"); err != nil {
		t.Errorf("a file into /: %v", err)
	}
	if _, err := root.Remove("/"); !errors.Is(err, ErrPathNotFound) {
		t.Errorf("removing the root: %v", err)
	}
	if _, err := root.Remove("/etc/none"); !errors.Is(err, ErrPathNotFound) {
		t.Errorf("removing what is not there: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "f"), &st); err != nil || st.Uid != 0 && os.Geteuid() == 0 {
		t.Errorf("copied file: uid %d, %v", st.Uid, err)
	}
}

func (r Root) layers() Stack {
	if r.Mounted != "" {
		return Stack{r.Mounted}
	}
	return r.Layers
}
