package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1001:app:/home/app:/bin/sh\n" +
		"lone:x:1002:1002::/home/lone:/bin/sh\n"
	testGroup = "root:x:0:\n" +
		"wheel:x:10:root,app\n" +
		"app:x:1001:\n" +
		"staff:x:50:app\n"
)

// userBundle is a bundle whose rootfs holds etc/ only. It sits in a
// directory of its own so that files can be placed beside it, outside the
// container.
func userBundle(t *testing.T) (top, dir, rootfs string) {
	t.Helper()
	top = t.TempDir()
	dir = filepath.Join(top, "bundle")
	rootfs = filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(&specs.Spec{Process: &specs.Process{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return top, dir, rootfs
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// resolve runs ResolveUser and reads back the process it configured. A
// resolution that does not finish within a minute (a read blocked on a FIFO)
// fails the test rather than hanging it.
func resolve(t *testing.T, dir, userSpec string) (*specs.Process, error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ResolveUser(dir, userSpec) }()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-time.After(time.Minute):
		t.Fatalf("resolving %q did not finish", userSpec)
	}
	spec, err := ReadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	return spec.Process, nil
}

func TestResolveUserAsDocker(t *testing.T) {
	cases := []struct {
		spec string
		want specs.User
	}{
		{"", specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{"root", specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{"app", specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 10, 50}}},
		{"1000", specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 10, 50}}},
		{"lone", specs.User{UID: 1002, GID: 1002, AdditionalGids: []uint32{1002}}},
		// An explicit group replaces the passwd one and drops the
		// supplementary groups, as docker does.
		{"app:staff", specs.User{UID: 1000, GID: 50, AdditionalGids: []uint32{50}}},
		{"app:4343", specs.User{UID: 1000, GID: 4343, AdditionalGids: []uint32{4343}}},
		{"1000:wheel", specs.User{UID: 1000, GID: 10, AdditionalGids: []uint32{10}}},
		// A uid passwd does not list runs in group 0, not a group of its
		// own number.
		{"4242", specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{"4242:4343", specs.User{UID: 4242, GID: 4343, AdditionalGids: []uint32{4343}}},
		{"4242:staff", specs.User{UID: 4242, GID: 50, AdditionalGids: []uint32{50}}},
	}
	for _, c := range cases {
		_, dir, rootfs := userBundle(t)
		writeFile(t, filepath.Join(rootfs, "etc/passwd"), testPasswd)
		writeFile(t, filepath.Join(rootfs, "etc/group"), testGroup)
		p, err := resolve(t, dir, c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if !reflect.DeepEqual(p.User, c.want) {
			t.Errorf("%q: user %+v, want %+v", c.spec, p.User, c.want)
		}
	}
}

func TestResolveUserUnknownNamesAreErrors(t *testing.T) {
	cases := map[string]string{
		"ghost":       "unable to find user ghost: no matching entries in passwd file",
		"app:nogroup": "unable to find group nogroup: no matching entries in group file",
		"4242:nobody": "unable to find group nobody: no matching entries in group file",
	}
	for spec, want := range cases {
		_, dir, rootfs := userBundle(t)
		writeFile(t, filepath.Join(rootfs, "etc/passwd"), testPasswd)
		writeFile(t, filepath.Join(rootfs, "etc/group"), testGroup)
		if _, err := resolve(t, dir, spec); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", spec, err, want)
		}
	}
}

// Without passwd and group files, numbers are taken as they are and names
// are unknown, as in docker.
func TestResolveUserWithoutFiles(t *testing.T) {
	_, dir, _ := userBundle(t)
	for spec, want := range map[string]specs.User{
		"":          {UID: 0, GID: 0, AdditionalGids: []uint32{0}},
		"4242":      {UID: 4242, GID: 0, AdditionalGids: []uint32{0}},
		"4242:4343": {UID: 4242, GID: 4343, AdditionalGids: []uint32{4343}},
	} {
		p, err := resolve(t, dir, spec)
		if err != nil {
			t.Errorf("%q: %v", spec, err)
		} else if !reflect.DeepEqual(p.User, want) {
			t.Errorf("%q: user %+v, want %+v", spec, p.User, want)
		}
	}
	if _, err := resolve(t, dir, "app"); err == nil {
		t.Error("a name with no passwd file resolved")
	}
}

// The files are read as the container sees them. Links that point at host
// files, absolutely or by climbing with "..", resolve inside the rootfs, so
// a user listed only in the host file is never found.
func TestResolveUserNeverReadsHostFiles(t *testing.T) {
	const intruder = "intruder:x:4711:4712::/intruder:/bin/sh\n"
	const intruders = "intruders:x:4713:app\n"
	cases := []struct {
		name  string
		links func(top, rootfs string) (passwd, group string)
	}{
		{"absolute", func(top, _ string) (string, string) {
			return filepath.Join(top, "host-passwd"), filepath.Join(top, "host-group")
		}},
		{"climbing", func(top, rootfs string) (string, string) {
			up := strings.Repeat("../", strings.Count(rootfs, "/")+1)
			return up + strings.TrimPrefix(top, "/") + "/host-passwd", up + strings.TrimPrefix(top, "/") + "/host-group"
		}},
		{"climbing a directory link", func(top, rootfs string) (string, string) {
			symlink(t, "../../..", filepath.Join(rootfs, "etc/up"))
			return "up/host-passwd", "up/host-group"
		}},
	}
	for _, c := range cases {
		top, dir, rootfs := userBundle(t)
		writeFile(t, filepath.Join(top, "host-passwd"), testPasswd+intruder)
		writeFile(t, filepath.Join(top, "host-group"), testGroup+intruders)
		passwd, group := c.links(top, rootfs)
		symlink(t, passwd, filepath.Join(rootfs, "etc/passwd"))
		symlink(t, group, filepath.Join(rootfs, "etc/group"))
		if p, err := resolve(t, dir, "intruder"); err == nil {
			t.Errorf("%s: the host's user was found: %+v", c.name, p.User)
		}
		p, err := resolve(t, dir, "4242:intruders")
		if err == nil {
			t.Errorf("%s: the host's group was found: %+v", c.name, p.User)
		}
		if p, err := resolve(t, dir, "1000"); err != nil || !reflect.DeepEqual(p.User, specs.User{UID: 1000, AdditionalGids: []uint32{0}}) {
			t.Errorf("%s: a uid took its group from the host's passwd: %+v, %v", c.name, p, err)
		}
	}
}

// A link is followed inside the rootfs: an absolute one to a file the
// container has is read, as the container would read it.
func TestResolveUserFollowsLinksInsideTheRootfs(t *testing.T) {
	top, dir, rootfs := userBundle(t)
	writeFile(t, filepath.Join(top, "shared/passwd"), "app:x:1:1::/host:/bin/sh\n")
	writeFile(t, filepath.Join(rootfs, top, "shared/passwd"), testPasswd)
	symlink(t, filepath.Join(top, "shared/passwd"), filepath.Join(rootfs, "etc/passwd"))
	writeFile(t, filepath.Join(rootfs, "usr/lib/group"), testGroup)
	symlink(t, "../../../../usr/lib/group", filepath.Join(rootfs, "etc/group"))
	p, err := resolve(t, dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := (specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 10, 50}}); !reflect.DeepEqual(p.User, want) {
		t.Errorf("user %+v, want %+v", p.User, want)
	}
}

// A FIFO, a device, a socket or a directory where passwd should be is
// refused at once, never waited on, opened for reading or read.
func TestResolveUserRefusesSpecialFiles(t *testing.T) {
	makers := map[string]func(path string) error{
		"FIFO":      func(path string) error { return unix.Mkfifo(path, 0o644) },
		"device":    func(path string) error { return unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))) },
		"directory": func(path string) error { return os.Mkdir(path, 0o755) },
		"socket": func(path string) error {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Bind(fd, &unix.SockaddrUnix{Name: path})
		},
	}
	for kind, mk := range makers {
		_, dir, rootfs := userBundle(t)
		if err := mk(filepath.Join(rootfs, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		_, err := resolve(t, dir, "4242")
		want := "cannot read /etc/passwd in the container: it is a " + kind + ", not a regular file"
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", kind, err, want)
		}
	}
}
