package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// ResolveUser sets the config's process user from the user string the image
// or the caller gave ("name", "uid", "name:group", "uid:gid", "uid:group";
// "" is root), as docker does when the container starts: from the
// container's own /etc/passwd and /etc/group in its mounted rootfs. The
// process gets the user's passwd gid (0 for a uid passwd does not list) and
// its primary and /etc/group supplementary groups. An unknown name is an
// error: running as root instead would be a silent privilege escalation.
// HOME is left to the runtime, which sets it from the same passwd at every
// start when the environment has none (runc and crun both do, and docker
// relies on it), so a home changed in the container is not frozen here.
func ResolveUser(bundleDir, userSpec string) error {
	processUser, err := ProcessUser(filepath.Join(bundleDir, "rootfs"), userSpec)
	if err != nil {
		return err
	}
	return UpdateSpec(bundleDir, func(spec *specs.Spec) { spec.Process.User = processUser })
}

// UpdateSpec rewrites the bundle's config.json with change made to it.
func UpdateSpec(bundleDir string, change func(*specs.Spec)) error {
	spec, err := ReadSpec(bundleDir)
	if err != nil {
		return err
	}
	change(spec)
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundleDir, "config.json"), out, 0o600)
}

// ProcessUser resolves userSpec, as ResolveUser does, against the passwd and
// group files of the mounted container tree at rootfs: the user a process
// started in that container (its init, or one exec'd later) runs as.
func ProcessUser(rootfs, userSpec string) (specs.User, error) {
	found, err := lookupUser(rootfs, userSpec)
	if err != nil {
		return specs.User{}, err
	}
	// As docker does, the primary group heads the supplementary list too.
	gids := []uint32{uint32(found.Gid)}
	for _, g := range found.Sgids {
		gids = append(gids, uint32(g))
	}
	return specs.User{UID: uint32(found.Uid), GID: uint32(found.Gid), AdditionalGids: gids}, nil
}

// lookupUser resolves userSpec against the passwd and group files of the
// tree at rootfs. A missing file counts as empty, as docker treats it.
func lookupUser(rootfs, userSpec string) (*user.ExecUser, error) {
	passwd, err := openUserFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	group, err := openUserFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	found, err := user.GetExecUser(userSpec, nil, readerOf(passwd), readerOf(group))
	for _, f := range []*os.File{passwd, group} {
		if f != nil {
			f.Close()
		}
	}
	return found, err
}

// openUserFile opens name as the container will see it: symlinks resolve
// inside rootfs, never out to the host's files. It is nil when there is no
// such file. Only a regular file is opened for reading: opening a FIFO
// would block, and opening some devices has effects of its own (a watchdog
// starts counting), so the name is first opened as a bare path, checked,
// and only then reopened through that descriptor.
func openUserFile(rootfs, name string) (*os.File, error) {
	at, err := fsat.OpenInside(rootfs, name, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open %s in the container: %v", name, errors.Unwrap(err))
	}
	defer at.Close()
	fi, err := at.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("it is a %s, not a regular file", kindOf(fi.Mode()))
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(fmt.Sprintf("/proc/self/fd/%d", at.Fd()))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s in the container: %v", name, err)
	}
	return f, nil
}

// readerOf keeps a missing file a nil io.Reader, which is how GetExecUser
// knows there is no file, rather than a reader holding a nil *os.File.
func readerOf(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}

func kindOf(mode os.FileMode) string {
	switch {
	case mode&os.ModeNamedPipe != 0:
		return "FIFO"
	case mode&os.ModeSocket != 0:
		return "socket"
	case mode&os.ModeDevice != 0:
		return "device"
	case mode.IsDir():
		return "directory"
	}
	return "special file"
}
