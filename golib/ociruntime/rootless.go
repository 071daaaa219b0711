package ociruntime

// An ordinary user runs containers as root does, inside a user namespace
// (package userns). The monitor starts in a new user and mount namespace,
// where it is root over the user's subordinate IDs; there it mounts the
// rootfs (native overlay with userxattr, else fuse-overlayfs where it is
// installed and usable), resolves the container's user and runs the
// runtime in rootless mode, with the runtime's state under the store (never
// XDG_RUNTIME_DIR, which a cron job has not got) and no cgroups (none is
// delegated). Later calls (kill, exec) run the runtime in the container's
// user namespace with nsenter, in this process's mount namespace, where the
// runtime's state under the store is.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/userns"
)

// userRuntime is where an ordinary user's runtime keeps its state and whose
// namespaces it runs in.
type userRuntime struct {
	state  string // the runtime's --root
	join   int    // a process in the container's user namespace
	direct bool   // run it here, joining no namespace (forgetting)
}

// AsUser is r as an ordinary user runs it: its state under storeRoot, run
// in the user namespace of process join (the container's monitor, or its
// init once the monitor is gone; 0 before the container starts).
func (r Runtime) AsUser(storeRoot string, join int) Runtime {
	r.user = &userRuntime{state: filepath.Join(storeRoot, "runtime"), join: join}
	return r
}

// joining is r run in the user namespace of process pid, for an ordinary
// user; root's runtime is the same.
func (r Runtime) joining(pid int) Runtime {
	if r.user != nil {
		r.user = &userRuntime{state: r.user.state, join: pid}
	}
	return r
}

// forgetting is r as it deletes an orphaned container's record: with no
// monitor left, and the init perhaps gone too, there may be no process to
// join, and none is needed: the runtime's record is under the store, and
// this process, the owner of the container's user namespace, may kill in it.
func (r Runtime) forgetting() Runtime {
	if r.user != nil {
		r.user = &userRuntime{state: r.user.state, direct: true}
	}
	return r
}

// ForUser is true of a runtime an ordinary user runs.
func (r Runtime) ForUser() bool { return r.user != nil }

// rootlessArgs are the runtime's global options for an ordinary user.
func rootlessArgs(state string) []string { return []string{"--root", state, "--rootless", "true"} }

func (u *userRuntime) command(path string, args []string) *exec.Cmd {
	if u.direct {
		return exec.Command(path, append(rootlessArgs(u.state), args...)...)
	}
	return userns.Join(context.Background(), u.join, path, append(rootlessArgs(u.state), args...)...)
}

var errNoFreezer = &userns.HostError{Class: userns.ClassFreezerNotDelegated,
	Reason: "an ordinary user's containers run with no cgroup of their own (this host delegates none to the user), so they cannot be frozen",
	Fix:    "run as root to pause containers; commit a running container with pause: false"}

// UserStart is what the monitor of an ordinary user's container does before
// it runs the runtime; it gets it as JSON in UserStartEnv.
type UserStart struct {
	RuntimeArgs []string `json:"runtimeArgs"` // the runtime's global options
	Diff        string   `json:"diff"`
	Lowers      []string `json:"lowers"`
	User        string   `json:"user"` // the create option or the image's USER
}

// UserStartEnv names the monitor's environment variable holding UserStart.
const UserStartEnv = "K3_MONITOR_AS_USER"

// StartAsUser starts the container as Start does, for an ordinary user: the
// monitor in a new user and mount namespace mounts the rootfs of diff over
// lowers (top first) and resolves user there.
func StartAsUser(ctx context.Context, runtime Runtime, monitor, bundleDir, id, attributes, diff string, lowers []string, user string) (Started, error) {
	if err := os.MkdirAll(runtime.user.state, 0o700); err != nil {
		return Started{}, err
	}
	data, err := json.Marshal(UserStart{RuntimeArgs: rootlessArgs(runtime.user.state), Diff: diff, Lowers: lowers, User: user})
	if err != nil {
		return Started{}, err
	}
	cmd := exec.Command(monitor, runtime.Path, bundleDir, id, attributes)
	cmd.Env = append(os.Environ(), UserStartEnv+"="+string(data))
	host := userns.Detect()
	return startMonitor(ctx, runtime, id, cmd, func(cmd *exec.Cmd) error { return userns.Start(host, cmd) })
}

// PrepareAsUser is the monitor's part of StartAsUser, in its namespaces:
// the rootfs mounted, the container's user resolved, and the config fitted
// to a user namespace.
func PrepareAsUser(bundleDir string, u UserStart) error {
	if err := mountRootfsInUserNamespace(bundleDir, u.Diff, u.Lowers); err != nil {
		return err
	}
	if err := bundle.ResolveUser(bundleDir, u.User); err != nil {
		return &RuntimeError{Message: err.Error()}
	}
	return fitConfig(bundleDir)
}

// mountRootfsInUserNamespace mounts the rootfs with the kernel's overlay
// (its userxattr option keeps overlay's own attributes in user.overlay.*,
// which a user namespace may write), else with fuse-overlayfs.
func mountRootfsInUserNamespace(bundleDir, diff string, lowers []string) error {
	opts, err := overlayOptions(bundleDir, diff, lowers)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(bundleDir, "rootfs")
	native := unix.Mount("overlay", rootfs, "overlay", 0, opts+",userxattr")
	if native == nil {
		return nil
	}
	if errors.Is(native, unix.ENOENT) || errors.Is(native, unix.ENOTDIR) {
		// A layer is missing: no other file system would do better.
		return fmt.Errorf("%w: mounting the overlay rootfs: %v", ErrNotPermitted, native)
	}
	fuse, why := fuseOverlayfs()
	if fuse == "" {
		refused, fix := noNativeOverlay(diff, native)
		return &userns.HostError{Class: userns.ClassOverlayUnavailable,
			Reason: fmt.Sprintf("%s, and fuse-overlayfs cannot stand in: %s", refused, why),
			Fix:    fix + ", or install fuse-overlayfs with /dev/fuse open to users (apt-get install fuse-overlayfs)"}
	}
	if out, err := exec.Command(fuse, "-o", opts, rootfs).CombinedOutput(); err != nil {
		return &RuntimeError{Message: fmt.Sprintf("fuse-overlayfs: %v: %s", err, strings.TrimSpace(string(out)))}
	}
	return nil
}

// noUpper names the file systems the kernel's overlay takes no upper layer
// on: those whose names it cannot trust to stay as it saw them (remote and
// FUSE ones), and overlay itself.
var noUpper = map[int64]string{
	unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.FUSE_SUPER_MAGIC: "FUSE", unix.NFS_SUPER_MAGIC: "NFS",
	unix.CIFS_SUPER_MAGIC: "CIFS", unix.SMB2_SUPER_MAGIC: "SMB", unix.CEPH_SUPER_MAGIC: "Ceph", unix.V9FS_MAGIC: "9p",
}

// noNativeOverlay says why the kernel's overlay refused the rootfs of the
// writable layer diff with err, and what lets it mount: the store moved off
// a file system that cannot be an upper layer, else a newer kernel.
func noNativeOverlay(diff string, err error) (refused, fix string) {
	var fs unix.Statfs_t
	if unix.Statfs(diff, &fs) == nil {
		if name, ok := noUpper[int64(fs.Type)]; ok {
			return fmt.Sprintf("the store is on a file system of type %s, which the kernel's overlay cannot take as its upper layer (%v)", name, err),
				"put the store on a local file system such as ext4, xfs or btrfs (the root option)"
		}
	}
	return fmt.Sprintf("the kernel refuses an overlay mount in a user namespace (%v)", err),
		"use a kernel that mounts overlay in a user namespace (Linux 5.11 or newer), or run as root"
}

// fuseOverlayfs returns fuse-overlayfs's path when it can be used here, or
// why not.
func fuseOverlayfs() (string, string) {
	path, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		return "", "it is not installed"
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Sprintf("it is installed, but this user cannot open /dev/fuse (%v)", errors.Unwrap(err))
	}
	f.Close()
	return path, ""
}

// fitConfig changes what a user namespace cannot do: sysfs can be mounted
// only in a network namespace of the user's own, so with the host's network
// the host's /sys is bound read-only instead, as podman does.
func fitConfig(bundleDir string) error {
	return bundle.UpdateSpec(bundleDir, func(spec *specs.Spec) {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				return
			}
		}
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" && m.Type == "sysfs" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
	})
}
