// Package ociruntime owns running a container's bundle with the OCI runtime
// the host already has (runc or crun), with no daemon: it mounts the
// bundle's rootfs as an overlay of the image's layers under the container's
// writable layer, starts the container under k3-monitor (which outlives the
// caller and records the exit), sends signals, and reads what the monitor
// recorded. An ordinary user's containers run in a user namespace
// (rootless.go).
package ociruntime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
	"github.com/k3-core/k3-core/golib/userns"
)

var (
	// ErrNoRuntime: neither the given runtime nor runc or crun is installed.
	ErrNoRuntime = errors.New("no OCI runtime found")
	// ErrNotPermitted: this host or process cannot run containers.
	ErrNotPermitted = errors.New("running containers is not permitted here")
)

// RuntimeError carries the runtime's own message.
type RuntimeError struct{ Message string }

func (e *RuntimeError) Error() string { return e.Message }

// Runtime is the OCI runtime one call runs.
type Runtime struct {
	// Path is the runtime's executable.
	Path string
	// user, for an ordinary user, runs it in the container's user
	// namespace (rootless.go); nil for root.
	user *userRuntime
}

// Find returns the runtime to use: the one named (a path or a command on
// PATH), else runc, else crun.
func Find(preferred string) (Runtime, error) {
	candidates := []string{"runc", "crun"}
	if preferred != "" {
		candidates = []string{preferred}
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return Runtime{Path: p}, nil
		}
	}
	return Runtime{}, fmt.Errorf("%w: looked for %s on PATH", ErrNoRuntime, strings.Join(candidates, ", "))
}

// command is the runtime with args, as this process may run it.
func (r Runtime) command(args ...string) *exec.Cmd {
	if r.user != nil {
		return r.user.command(r.Path, args)
	}
	return exec.Command(r.Path, args...)
}

// CheckHost says why this process cannot run containers, if it cannot: an
// ordinary user needs a user namespace, over the subordinate ranges when
// the user has them.
func CheckHost() error {
	if os.Geteuid() != 0 {
		if err := userns.Detect().CheckRanges(); err != nil {
			return err
		}
	}
	data, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(data), "\toverlay\n") {
		return fmt.Errorf("%w: the kernel has no overlay file system", ErrNotPermitted)
	}
	return nil
}

// MountRootfs mounts bundle/rootfs as an overlay: lowers (top first) under
// the writable diff, with bundle/work as overlayfs's work directory.
func MountRootfs(bundle, diff string, lowers []string) error {
	opts, err := overlayOptions(bundle, diff, lowers)
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", filepath.Join(bundle, "rootfs"), "overlay", 0, opts); err != nil {
		return fmt.Errorf("%w: mounting the overlay rootfs: %v", ErrNotPermitted, err)
	}
	return nil
}

// overlayOptions makes bundle/rootfs and bundle/work, and returns the
// overlay's mount options.
func overlayOptions(bundle, diff string, lowers []string) (string, error) {
	rootfs := filepath.Join(bundle, "rootfs")
	work := filepath.Join(bundle, "work")
	unix.Unmount(rootfs, unix.MNT_DETACH) // a mount left by a crash
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", err
	}
	if len(lowers) == 0 {
		// overlayfs needs a lower layer: an image with none gets an empty one.
		empty := filepath.Join(bundle, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		lowers = []string{empty}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), diff, work)
	if len(opts) > os.Getpagesize()-len(",userxattr")-1 {
		return "", fmt.Errorf("%w: the image has too many layers for one overlay mount (%d)", ErrNotPermitted, len(lowers))
	}
	return opts, nil
}

// UnmountRootfs undoes MountRootfs; nothing mounted is fine.
func UnmountRootfs(bundle string) {
	unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH)
}

// RootfsMounted reports whether something is mounted on bundle/rootfs in
// this process's mount namespace: a mount point lies on another device
// than the directory holding it.
func RootfsMounted(bundle string) bool {
	var dir, rootfs unix.Stat_t
	if unix.Stat(bundle, &dir) != nil || unix.Stat(filepath.Join(bundle, "rootfs"), &rootfs) != nil {
		return false
	}
	return dir.Dev != rootfs.Dev
}

// Started is a running container.
type Started struct {
	Pid        int // the container's init, in the host's pid namespace
	MonitorPid int

	runtime     Runtime
	id          string
	monitorDone <-chan struct{}
}

// Undo kills a container Start started and waits until its monitor has
// ended, which deletes the runtime's record and unmounts the root.
func (s Started) Undo() {
	Kill(s.runtime, s.id, "SIGKILL")
	<-s.monitorDone
}

// Start runs the bundle as container id under k3-monitor and returns once
// the container process exists (or the runtime has said why it cannot).
// attributes (a JSON object) go into the die event the monitor records.
//
// When ctx ends first, Start still waits for the monitor's report, since
// the runtime may be creating the container at that moment, and undoes
// what it started: it returns ctx's error only once no process of this
// start is left.
func Start(ctx context.Context, runtime Runtime, monitor, bundle, id, attributes string) (Started, error) {
	return startMonitor(ctx, runtime, id, exec.Command(monitor, runtime.Path, bundle, id, attributes), (*exec.Cmd).Start)
}

// startMonitor starts the monitor's command with start and waits for its report.
func startMonitor(ctx context.Context, runtime Runtime, id string, cmd *exec.Cmd, start func(*exec.Cmd) error) (Started, error) {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return Started{}, err
	}
	defer reportR.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		reportW.Close()
		return Started{}, err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{reportW}
	// Its own session: the monitor and the container outlive the caller.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = start(cmd)
	reportW.Close()
	if err != nil {
		var hostErr *userns.HostError
		if errors.As(err, &hostErr) {
			return Started{}, err
		}
		return Started{}, fmt.Errorf("starting k3-monitor: %w", err)
	}
	// Reap it when it ends, so it never lingers as a zombie of ours.
	monitorDone := make(chan struct{})
	safego.Go(func() error {
		defer close(monitorDone)
		return cmd.Wait()
	}, nil)
	// Undo's kill runs in this monitor's user namespace, not in that of the
	// container's previous run (or none, before its first).
	started := Started{MonitorPid: cmd.Process.Pid, runtime: runtime.joining(cmd.Process.Pid), id: id, monitorDone: monitorDone}

	// The report is one line; the pipe ends at the latest when the monitor does.
	report, _ := bufio.NewReader(reportR).ReadString('\n')
	report = strings.TrimSpace(report)
	switch {
	case strings.HasPrefix(report, "started "):
		started.Pid, _ = strconv.Atoi(strings.TrimPrefix(report, "started "))
		if err := ctx.Err(); err != nil {
			started.Undo()
			return Started{}, err
		}
		return started, nil
	case strings.HasPrefix(report, "failed "):
		<-monitorDone
		return Started{}, &RuntimeError{Message: strings.TrimPrefix(report, "failed ")}
	case strings.HasPrefix(report, "refused "):
		// The host forbids what the monitor needed (rootless.go).
		var hostErr userns.HostError
		if json.Unmarshal([]byte(strings.TrimPrefix(report, "refused ")), &hostErr) == nil {
			<-monitorDone
			return Started{}, &hostErr
		}
	}
	<-monitorDone
	return Started{}, &RuntimeError{Message: "k3-monitor ended without a report"}
}

// Kill sends signal (a name like SIGTERM or a number) to the container.
func Kill(runtime Runtime, id, signal string) error {
	return runtimeCommand(runtime, "kill", id, signal)
}

// Forget deletes the runtime's record of container id, killing what is
// left of its process: for a run whose monitor died before it could (the
// monitor deletes it when the container ends). No record is fine.
func Forget(runtime Runtime, id string) {
	runtime.forgetting().command("delete", "--force", id).Run()
}

// Pause freezes the container's processes (the cgroup freezer).
func Pause(runtime Runtime, id string) error {
	if runtime.user != nil {
		return errNoFreezer
	}
	return runtimeCommand(runtime, "pause", id)
}

// Resume thaws them.
func Resume(runtime Runtime, id string) error { return runtimeCommand(runtime, "resume", id) }

// runtimeCommand runs one runtime subcommand, keeping its own message.
func runtimeCommand(runtime Runtime, args ...string) error {
	out, err := runtime.command(args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return &RuntimeError{Message: msg}
	}
	return nil
}

// Exit is what k3-monitor recorded when the container ended.
type Exit struct {
	ExitCode   int    `json:"ExitCode"`
	FinishedAt string `json:"FinishedAt"`
}

// ReadExit returns the recorded exit, or nil while there is none.
func ReadExit(bundle string) (*Exit, error) {
	return readJSON[Exit](bundle, "exit.json")
}

// ClearExit forgets a previous run's exit before the next one starts.
func ClearExit(bundle string) {
	os.Remove(filepath.Join(bundle, "exit.json"))
}

// MonitorAlive reports whether the monitor of container id still runs: its
// pid is alive and really is k3-monitor for this container (pids are reused).
func MonitorAlive(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) >= 4 && strings.HasSuffix(args[0], "k3-monitor") && args[3] == id
}

// BootID identifies this boot: a pid recorded in another boot means nothing.
func BootID() string {
	data, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(data))
}

// WaitExit polls for the recorded exit until it appears, the monitor is
// gone, or ctx ends.
func WaitExit(ctx context.Context, bundle string, monitorPid int, id string) (*Exit, error) {
	for {
		if e, err := ReadExit(bundle); e != nil || err != nil {
			return e, err
		}
		if !MonitorAlive(monitorPid, id) {
			// Gone without a record (killed, or the host rebooted): look once more.
			return ReadExit(bundle)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
