package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/userns"
)

func init() {
	operations["startContainer"] = (*Engine).startContainer
	operations["stopContainer"] = (*Engine).stopContainer
	operations["killContainer"] = (*Engine).killContainer
	operations["waitContainer"] = (*Engine).waitContainer
	operations["restartContainer"] = (*Engine).restartContainer
	operations["pauseContainer"] = (*Engine).pauseContainer
	operations["unpauseContainer"] = (*Engine).unpauseContainer
}

// alive is true of a container that has a process: running or paused.
func alive(c store.Container) bool { return c.State == "running" || c.State == "paused" }

// exitUnknown is the exit code of a run whose end nobody saw (its monitor
// was killed, or the host rebooted), as docker reports it.
const exitUnknown = 255

// reconcile brings a container's recorded state in line with the world: a
// container recorded as running whose monitor recorded an exit, or whose
// monitor is gone, is exited. Every read of a container goes through here,
// so none is ever shown running after it died.
func reconcile(st *store.Store, c store.Container) (store.Container, error) {
	if !alive(c) {
		return c, nil
	}
	bundleDir := st.BundleDir(c.ID)
	exit, err := ociruntime.ReadExit(bundleDir)
	if err != nil {
		return c, err
	}
	if exit == nil {
		if c.Run.BootID == ociruntime.BootID() && ociruntime.MonitorAlive(c.Run.MonitorPid, c.ID) {
			return c, nil
		}
		if exit, err = ociruntime.ReadExit(bundleDir); err != nil {
			return c, err
		}
		if exit == nil {
			exit = &ociruntime.Exit{ExitCode: exitUnknown, FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}
			ociruntime.UnmountRootfs(bundleDir)
		}
	}
	if err := st.SetExited(c.ID, exit.ExitCode, exit.FinishedAt); err != nil {
		return c, err
	}
	c.State, c.Run.ExitCode, c.Run.FinishedAt, c.Run.Pid = "exited", exit.ExitCode, exit.FinishedAt, 0
	return c, nil
}

// runtimeFault is what went wrong while an operation ran the OCI runtime.
type runtimeFault int

const (
	runtimeOther runtimeFault = iota
	runtimeAborted
	runtimeMissing       // no runc or crun on the host
	runtimeNotPermitted  // the host does not let this process run containers
	runtimeFailed        // the runtime ran and failed
	runtimeBundleMissing // the container's bundle directory is gone
	runtimeStore         // the store's database failed
	runtimeHost          // the host forbids an ordinary user what it needs (userns.HostError)
)

// runtimeClasses names, for each operation that runs the OCI runtime, the
// class of each runtime fault; every class must be in that operation's
// catalogue (a test checks). removeContainer stops a running container
// only when forced, and documents fewer classes for it.
var runtimeClasses = map[string]map[runtimeFault]string{
	"startContainer":   runtimeRow(),
	"stopContainer":    runtimeRow(),
	"killContainer":    runtimeRow(),
	"waitContainer":    runtimeRow(),
	"restartContainer": runtimeRow(),
	"pauseContainer":   runtimeRow(),
	"unpauseContainer": runtimeRow(),
	"removeContainer": {
		runtimeAborted: "AbortError", runtimeMissing: "RuntimeFailure", runtimeNotPermitted: "RuntimeFailure",
		runtimeFailed: "RuntimeFailure", runtimeBundleMissing: "RemoveContainerFailure", runtimeStore: "ResolveContainerName",
	},
}

// runtimeRow is the classes of the operations that document every runtime fault.
func runtimeRow() map[runtimeFault]string {
	return map[runtimeFault]string{
		runtimeAborted: "AbortError", runtimeMissing: "RuntimeNotFound", runtimeNotPermitted: "RuntimeNotPermitted",
		runtimeFailed: "RuntimeFailure", runtimeBundleMissing: "ContainerBundleNotFound", runtimeStore: "ResolveContainerName",
	}
}

func classifyRuntimeError(err error) runtimeFault {
	var rerr *ociruntime.RuntimeError
	switch {
	case errors.Is(err, userns.ErrHost):
		return runtimeHost
	case errors.Is(err, context.Canceled):
		return runtimeAborted
	case errors.Is(err, ociruntime.ErrNoRuntime):
		return runtimeMissing
	case errors.Is(err, ociruntime.ErrNotPermitted):
		return runtimeNotPermitted
	case errors.As(err, &rerr):
		return runtimeFailed
	case errors.Is(err, errBundleMissing):
		return runtimeBundleMissing
	case errors.Is(err, store.ErrDatabase):
		return runtimeStore
	}
	return runtimeOther
}

// runtimeFailure maps a failure to run a container onto op's catalogue.
func runtimeFailure(op string, c store.Container, err error) error {
	fault := classifyRuntimeError(err)
	var hostErr *userns.HostError
	if fault == runtimeHost && errors.As(err, &hostErr) {
		return hostErr.ForOp(op).With("containerId", c.ID)
	}
	class, ok := runtimeClasses[op][fault]
	if !ok {
		class = errcat.Generic
	}
	e := errcat.New(op, class, err.Error(), err).With("containerId", c.ID)
	if class == "ContainerBundleNotFound" {
		e.With("bundleHashId", c.ID)
	}
	return e
}

func (e *Engine) startContainer(ctx context.Context, call *Request) (any, error) {
	const op = "startContainer"
	_, st, c, err := e.containerCall(op, "InvalidStartContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	if alive(c) {
		return e.summary(st, c), nil // as docker start: already running is fine
	}
	if err := e.run(ctx, st, c, call); err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.refreshed(st, c.ID)
}

// run mounts the container's rootfs and starts it under k3-monitor.
func (e *Engine) run(ctx context.Context, st *store.Store, c store.Container, call *Request) error {
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err != nil {
		return err
	}
	if err := ociruntime.CheckHost(); err != nil {
		return err
	}
	if _, err := os.Stat(call.Monitor); err != nil {
		return fmt.Errorf("k3-monitor is missing beside the library (%s): rebuild with npm install", call.Monitor)
	}
	stack, err := containerStack(st, c)
	if err != nil {
		return err
	}
	bundleDir := st.BundleDir(c.ID)
	ociruntime.ClearExit(bundleDir)
	startedAt := time.Now().UTC().Format(time.RFC3339Nano)
	var started ociruntime.Started
	if runtime.ForUser() {
		started, err = e.startAsUser(ctx, st, c, call, runtime, stack)
	} else {
		started, err = e.startAsRoot(ctx, st, c, call, runtime, stack)
	}
	if err != nil {
		return err
	}
	if err := st.SetRunning(c.ID, store.Run{Pid: started.Pid, MonitorPid: started.MonitorPid, BootID: ociruntime.BootID(), StartedAt: startedAt}); err != nil {
		return err
	}
	recordContainerEvent(call.Root, "start", c)
	return nil
}

// startAsRoot mounts the rootfs of stack (the writable layer first),
// resolves the container's user in it and starts the container.
func (e *Engine) startAsRoot(ctx context.Context, st *store.Store, c store.Container, call *Request, runtime ociruntime.Runtime, stack []string) (ociruntime.Started, error) {
	bundleDir := st.BundleDir(c.ID)
	if err := ociruntime.MountRootfs(bundleDir, stack[0], stack[1:]); err != nil {
		return ociruntime.Started{}, err
	}
	user, err := e.containerUser(st, c)
	if err == nil {
		err = bundle.ResolveUser(bundleDir, user)
	}
	if err != nil {
		ociruntime.UnmountRootfs(bundleDir)
		return ociruntime.Started{}, &ociruntime.RuntimeError{Message: err.Error()}
	}
	started, err := ociruntime.Start(ctx, runtime, call.Monitor, bundleDir, c.ID, exitAttributes(c))
	if err != nil {
		ociruntime.UnmountRootfs(bundleDir)
	}
	return started, err
}

// containerUser is the user the container runs as: the create option, else
// the image's. An image config that cannot be read is an error, never root.
func (e *Engine) containerUser(st *store.Store, c store.Container) (string, error) {
	var opts bundle.Options
	_ = json.Unmarshal([]byte(c.Config), &opts)
	if opts.User != "" {
		return opts.User, nil
	}
	img, err := st.FindImage(c.ImageID)
	if err != nil {
		return "", err
	}
	cfg, err := readImageConfig(st, img)
	if err != nil {
		return "", err
	}
	return cfg.Config.User, nil
}

// refreshed reads a container again after a change.
func (e *Engine) refreshed(st *store.Store, id string) (any, error) {
	found, err := st.FindContainers(id, false)
	if err != nil || len(found) != 1 {
		return nil, fmt.Errorf("container %s vanished: %v", id, err)
	}
	c, err := reconcile(st, found[0])
	if err != nil {
		return nil, err
	}
	return e.summary(st, c), nil
}

// stop sends SIGTERM, and SIGKILL after timeout, and waits for the exit.
func (e *Engine) stop(ctx context.Context, st *store.Store, c store.Container, runtime ociruntime.Runtime, timeout time.Duration) error {
	if !alive(c) {
		return nil
	}
	if err := resumeIfPaused(st, c, runtime); err != nil {
		return err
	}
	bundleDir := st.BundleDir(c.ID)
	ociruntime.Kill(runtime, c.ID, "SIGTERM") // it may have just exited: the wait decides
	graceful, cancel := context.WithTimeout(ctx, timeout)
	exit, err := ociruntime.WaitExit(graceful, bundleDir, c.Run.MonitorPid, c.ID)
	cancel()
	if exit == nil && ctx.Err() == nil {
		ociruntime.Kill(runtime, c.ID, "SIGKILL")
		killed, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = ociruntime.WaitExit(killed, bundleDir, c.Run.MonitorPid, c.ID)
		cancel()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_, err = reconcile(st, c)
	return err
}

func timeoutOption(raw json.RawMessage, fallback time.Duration) (time.Duration, string) {
	if isNull(raw) {
		return fallback, ""
	}
	p, err := objectParam(raw, "options")
	if err != nil {
		return 0, err.Error()
	}
	if isNull(p.raw["timeout"]) {
		return fallback, ""
	}
	var secs float64
	if err := json.Unmarshal(p.raw["timeout"], &secs); err != nil || secs < 0 || secs > 1e6 {
		return 0, "options.timeout must be a number of seconds, 0 or more"
	}
	return time.Duration(secs * float64(time.Second)), ""
}

func (e *Engine) stopContainer(ctx context.Context, call *Request) (any, error) {
	const op = "stopContainer"
	list, st, c, err := e.containerCall(op, "InvalidStopContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	timeout, reason := timeoutOption(list[1], 10*time.Second)
	if reason != "" {
		return nil, errcat.New(op, "InvalidStopContainerParameters", reason, nil).With("containerId", c.ID)
	}
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err == nil {
		err = e.stop(ctx, st, c, runtime, timeout)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	if alive(c) {
		recordContainerEvent(call.Root, "stop", c)
	}
	return e.refreshed(st, c.ID)
}

func (e *Engine) restartContainer(ctx context.Context, call *Request) (any, error) {
	const op = "restartContainer"
	list, st, c, err := e.containerCall(op, "InvalidRestartContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	timeout, reason := timeoutOption(list[1], 10*time.Second)
	if reason != "" {
		return nil, errcat.New(op, "InvalidRestartContainerParameters", reason, nil).With("containerId", c.ID)
	}
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err == nil {
		err = e.stop(ctx, st, c, runtime, timeout)
	}
	if err == nil {
		err = e.run(ctx, st, c, call)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	recordContainerEvent(call.Root, "restart", c)
	return e.refreshed(st, c.ID)
}

var signalPattern = regexp.MustCompile(`^(SIG)?[A-Z][A-Z0-9+-]*$|^[0-9]{1,2}$`)

func (e *Engine) killContainer(ctx context.Context, call *Request) (any, error) {
	const op = "killContainer"
	list, st, c, err := e.containerCall(op, "InvalidKillContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	signal, _, err := stringParam(list[1], "signal")
	if err == nil && signal != "" && !signalPattern.MatchString(signal) {
		err = fmt.Errorf("signal %q is not a signal name (SIGTERM, HUP) or number", signal)
	}
	if err != nil {
		return nil, errcat.New(op, "InvalidKillContainerParameters", err.Error(), nil).With("containerId", c.ID)
	}
	if signal == "" {
		signal = "SIGKILL"
	}
	if !alive(c) {
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s is %s", c.Name, c.State), nil).With("containerId", c.ID)
	}
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err == nil {
		err = resumeIfPaused(st, c, runtime) // a frozen process cannot act on a signal
	}
	if err == nil {
		err = ociruntime.Kill(runtime, c.ID, signal)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	attributes := containerAttributes(c)
	attributes["signal"] = signal
	recordEvent(call.Root, "container", "kill", c.ID, attributes)
	return map[string]any{"Id": c.ID, "Signal": signal}, nil
}

// waitContainer resolves with the exit code once the container has exited,
// as `docker wait` does (a container not started yet is waited for too).
func (e *Engine) waitContainer(ctx context.Context, call *Request) (any, error) {
	const op = "waitContainer"
	_, st, c, err := e.containerCall(op, "InvalidWaitContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	for c.State != "exited" {
		if alive(c) {
			if _, err := ociruntime.WaitExit(ctx, st.BundleDir(c.ID), c.Run.MonitorPid, c.ID); err != nil {
				return nil, runtimeFailure(op, c, err)
			}
		} else {
			select {
			case <-ctx.Done():
				return nil, runtimeFailure(op, c, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		found, err := st.FindContainers(c.ID, false)
		if err != nil || len(found) != 1 {
			return nil, errcat.New(op, "ContainerNotFound", "the container was removed while waiting", err).With("containerId", c.ID)
		}
		if c, err = reconcile(st, found[0]); err != nil {
			return nil, runtimeFailure(op, c, err)
		}
	}
	return map[string]any{"Id": c.ID, "ExitCode": c.Run.ExitCode, "FinishedAt": c.Run.FinishedAt}, nil
}

// resumeIfPaused thaws a paused container.
func resumeIfPaused(st *store.Store, c store.Container, runtime ociruntime.Runtime) error {
	if c.State != "paused" {
		return nil
	}
	if err := ociruntime.Resume(runtime, c.ID); err != nil {
		return err
	}
	return st.SetPaused(c.ID, false)
}

// pauseContainer freezes every process of a running container.
func (e *Engine) pauseContainer(ctx context.Context, call *Request) (any, error) {
	const op = "pauseContainer"
	_, st, c, err := e.containerCall(op, "InvalidPauseContainerParameters", call, 1)
	if err != nil {
		return nil, err
	}
	if c.State != "running" {
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s is %s", c.Name, c.State), nil).With("containerId", c.ID)
	}
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err == nil {
		err = ociruntime.Pause(runtime, c.ID)
	}
	if err == nil {
		err = st.SetPaused(c.ID, true)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	recordContainerEvent(call.Root, "pause", c)
	return e.refreshed(st, c.ID)
}

// unpauseContainer thaws a paused container.
func (e *Engine) unpauseContainer(ctx context.Context, call *Request) (any, error) {
	const op = "unpauseContainer"
	_, st, c, err := e.containerCall(op, "InvalidUnpauseContainerParameters", call, 1)
	if err != nil {
		return nil, err
	}
	if c.State != "paused" {
		return nil, errcat.New(op, "ContainerNotPaused", fmt.Sprintf("container %s is %s", c.Name, c.State), nil).With("containerId", c.ID)
	}
	runtime, err := runtimeFor(call.Runtime, st, c)
	if err == nil {
		err = resumeIfPaused(st, c, runtime)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	recordContainerEvent(call.Root, "unpause", c)
	return e.refreshed(st, c.ID)
}
