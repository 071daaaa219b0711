package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
)

// RuntimeFor is the OCI runtime named name that acts on container c: the
// host's runtime, and for an ordinary user the same in c's user namespace
// (joined through its monitor, or through its init once the monitor is
// gone), with its state under the store (ociruntime/rootless.go).
func RuntimeFor(name string, st *store.Store, c store.Container) (ociruntime.Runtime, error) {
	runtime, err := ociruntime.Find(name)
	if err != nil || os.Geteuid() == 0 {
		return runtime, err
	}
	join := c.Run.MonitorPid
	if !ociruntime.MonitorAlive(join, c.ID) {
		join = c.Run.Pid
	}
	return runtime.AsUser(st.Root(), join), nil
}

// startAsUser starts an ordinary user's container: its monitor mounts the
// rootfs of stack (the writable layer first) and resolves the user inside
// its own user and mount namespaces, where this process cannot reach.
func (cs Containers) startAsUser(ctx context.Context, c store.Container, runtime ociruntime.Runtime, stack bundle.Stack) (ociruntime.Started, error) {
	user, err := cs.user(c)
	if err != nil {
		return ociruntime.Started{}, &ociruntime.RuntimeError{Message: err.Error()}
	}
	return ociruntime.StartAsUser(ctx, runtime, cs.Monitor, cs.Store.BundleDir(c.ID), c.ID, cs.exitAttributes(c), stack[0], stack[1:], user)
}

// Rootfs is where this process sees running container c's mounted rootfs:
// an ordinary user's is mounted in its monitor's mount namespace, reached
// through /proc/<monitor>/root.
func Rootfs(st *store.Store, c store.Container) string {
	rootfs := filepath.Join(st.BundleDir(c.ID), "rootfs")
	if os.Geteuid() == 0 {
		return rootfs
	}
	return fmt.Sprintf("/proc/%d/root%s", c.Run.MonitorPid, rootfs)
}
