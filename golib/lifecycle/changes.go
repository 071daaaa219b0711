package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/imageconfig"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

// Containers makes the state changes of the containers of one store.
type Containers struct {
	Store *store.Store
	// Runtime is the OCI runtime asked for: a path or a command; "" picks
	// runc, else crun.
	Runtime string
	// Monitor is the path of the k3-monitor binary.
	Monitor string
}

// Change runs change on container id's current record, holding its lock:
// for the changes of a container's files (commit, copy) that must not meet
// a start, a stop or a removal halfway.
func (cs Containers) Change(ctx context.Context, id string, change func(c store.Container) error) error {
	return cs.locked(ctx, id, func(_ *Lock, c store.Container) error { return change(c) })
}

// locked takes container id's lock, reads its record again and reconciles
// it, and runs change on it. A container removed meanwhile is ErrGone.
func (cs Containers) locked(ctx context.Context, id string, change func(l *Lock, c store.Container) error) error {
	l, err := Acquire(ctx, cs.Store, id)
	if err != nil {
		return err
	}
	defer l.Release()
	c, err := cs.Store.Container(id)
	if errors.Is(err, store.ErrNotFound) {
		l.Discard()
		return refuse(ErrGone, "container %s was removed by another caller", short(id))
	}
	if err == nil {
		c, err = settle(ctx, cs.Store, c)
	}
	if err != nil {
		return err
	}
	return change(l, c)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Create writes container c's bundle for image with opts, then records it:
// a record always names a whole bundle, and a kill between the two leaves
// a bundle no record names, which the store's collection deletes (the
// caller holds the store, store.Hold, so none runs meanwhile). A name
// already taken (store.ErrNameInUse) or an image removed meanwhile
// (store.ErrNotFound) takes the bundle back.
func (cs Containers) Create(ctx context.Context, c store.Container, image *v1.ConfigFile, opts bundle.Options) error {
	l, err := Acquire(ctx, cs.Store, c.ID)
	if err != nil {
		return err
	}
	defer l.Release()
	err = bundle.Create(cs.Store.BundleDir(c.ID), image, opts)
	if err == nil {
		// How the writable layer is written (as root, or in which user
		// namespace), so no other way ever reads it wrongly.
		err = treeops.Record(bundle.DiffDir(cs.Store.BundleDir(c.ID)))
	}
	if err != nil {
		cs.Store.RemoveBundle(c.ID)
		l.Discard()
		return fmt.Errorf("writing the container's bundle: %w", err)
	}
	if err := cs.Store.CreateContainer(c); err != nil {
		cs.Store.RemoveBundle(c.ID)
		l.Discard()
		return err
	}
	record(cs.Store, "create", c, nil)
	return nil
}

// Start starts container id under k3-monitor and returns its record. A
// container already running or paused is returned as it is, as docker
// start does. An aborted start (ctx) leaves no process and no mount.
func (cs Containers) Start(ctx context.Context, id string) (store.Container, error) {
	var out store.Container
	err := cs.locked(ctx, id, func(_ *Lock, c store.Container) error {
		var err error
		out, err = cs.start(ctx, c)
		return err
	})
	return out, err
}

func (cs Containers) start(ctx context.Context, c store.Container) (store.Container, error) {
	if Alive(c) {
		return c, nil
	}
	runtime, err := RuntimeFor(cs.Runtime, cs.Store, c)
	if err != nil {
		return c, err
	}
	if err := ociruntime.CheckHost(); err != nil {
		return c, err
	}
	if _, err := os.Stat(cs.Monitor); err != nil {
		return c, fmt.Errorf("k3-monitor is missing beside the library (%s): rebuild with npm install", cs.Monitor)
	}
	stack, err := Stack(ctx, cs.Store, c)
	if err != nil {
		return c, err
	}
	bundleDir := cs.Store.BundleDir(c.ID)
	ociruntime.ClearExit(bundleDir)
	if err := ctx.Err(); err != nil {
		return c, err
	}
	run := store.Run{BootID: ociruntime.BootID(), StartedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	var started ociruntime.Started
	if runtime.ForUser() {
		started, err = cs.startAsUser(ctx, c, runtime, stack)
	} else {
		started, err = cs.startAsRoot(ctx, c, runtime, stack)
	}
	if err == nil {
		run.Pid, run.MonitorPid = started.Pid, started.MonitorPid
		if err = cs.Store.SetRunning(c.ID, run); err != nil {
			started.Undo()
		}
	}
	if err != nil {
		// Undone, or never begun: the container is as it was (its monitor
		// recorded the start and die of a run it undid).
		ociruntime.ForgetRun(bundleDir)
		return c, err
	}
	// Its monitor recorded the start event (recordStart in k3-monitor).
	return cs.Store.Container(c.ID)
}

// startAsRoot mounts the rootfs of stack (the writable layer first),
// resolves the container's user in it and starts the container.
func (cs Containers) startAsRoot(ctx context.Context, c store.Container, runtime ociruntime.Runtime, stack bundle.Stack) (ociruntime.Started, error) {
	bundleDir := cs.Store.BundleDir(c.ID)
	if err := ociruntime.MountRootfs(bundleDir, stack[0], stack[1:]); err != nil {
		return ociruntime.Started{}, err
	}
	user, err := cs.user(c)
	if err == nil {
		err = bundle.ResolveUser(bundleDir, user)
	}
	if err != nil {
		ociruntime.UnmountRootfs(bundleDir)
		return ociruntime.Started{}, &ociruntime.RuntimeError{Message: err.Error()}
	}
	started, err := ociruntime.Start(ctx, runtime, cs.Monitor, bundleDir, c.ID, cs.exitAttributes(c))
	if err != nil {
		ociruntime.UnmountRootfs(bundleDir)
	}
	return started, err
}

// exitAttributes are the attributes of the die event the monitor records.
func (cs Containers) exitAttributes(c store.Container) string {
	data, _ := json.Marshal(Attributes(c))
	return string(data)
}

// user is the user the container runs as: the create option, else the
// image's. An image config that cannot be read is an error, never root.
func (cs Containers) user(c store.Container) (string, error) {
	var opts bundle.Options
	_ = json.Unmarshal([]byte(c.Config), &opts)
	if opts.User != "" {
		return opts.User, nil
	}
	img, err := cs.Store.FindImage(c.ImageID)
	if err != nil {
		return "", err
	}
	cfg, err := ImageConfig(cs.Store, img)
	if err != nil {
		return "", err
	}
	return cfg.Config.User, nil
}

// ImageConfig reads an image's config from the store.
func ImageConfig(st *store.Store, img store.Image) (*v1.ConfigFile, error) {
	raw, err := os.ReadFile(st.BlobPath(img.ID))
	if err != nil {
		return nil, fmt.Errorf("image config is missing from the store: %w", err)
	}
	cfg, err := imageconfig.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("image config is corrupt: %w", err)
	}
	return cfg, nil
}

// Stop sends SIGTERM, and SIGKILL after timeout, and waits for the exit. A
// container not running is returned as it is; stopped says whether this
// call stopped it.
func (cs Containers) Stop(ctx context.Context, id string, timeout time.Duration) (c store.Container, stopped bool, err error) {
	err = cs.locked(ctx, id, func(_ *Lock, now store.Container) error {
		stopped = Alive(now)
		c, err = cs.stop(ctx, now, timeout)
		if err == nil && stopped {
			record(cs.Store, "stop", c, nil)
		}
		return err
	})
	return c, stopped, err
}

func (cs Containers) stop(ctx context.Context, c store.Container, timeout time.Duration) (store.Container, error) {
	if !Alive(c) {
		return c, nil
	}
	runtime, err := RuntimeFor(cs.Runtime, cs.Store, c)
	if err != nil {
		return c, err
	}
	if err := cs.resume(runtime, c); err != nil {
		return c, err
	}
	bundleDir := cs.Store.BundleDir(c.ID)
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
		return c, err
	}
	c.State = "running" // resumed, if it was paused
	return settle(ctx, cs.Store, c)
}

// Restart stops the container (see Stop) and starts it again, as one change.
func (cs Containers) Restart(ctx context.Context, id string, timeout time.Duration) (store.Container, error) {
	var out store.Container
	err := cs.locked(ctx, id, func(_ *Lock, c store.Container) error {
		stopped, err := cs.stop(ctx, c, timeout)
		if err == nil {
			out, err = cs.start(ctx, stopped)
		}
		if err == nil {
			record(cs.Store, "restart", out, nil)
		}
		return err
	})
	return out, err
}

// Kill sends signal to a running or paused container (a paused one is
// resumed first: a frozen process cannot act on a signal).
func (cs Containers) Kill(ctx context.Context, id, signal string) error {
	return cs.locked(ctx, id, func(_ *Lock, c store.Container) error {
		if !Alive(c) {
			return refuse(ErrNotRunning, "container %s is %s", c.Name, c.State)
		}
		runtime, err := RuntimeFor(cs.Runtime, cs.Store, c)
		if err == nil {
			err = cs.resume(runtime, c)
		}
		if err == nil {
			err = ociruntime.Kill(runtime, c.ID, signal)
		}
		if err == nil {
			record(cs.Store, "kill", c, map[string]string{"signal": signal})
		}
		return err
	})
}

// resume thaws a paused container.
func (cs Containers) resume(runtime ociruntime.Runtime, c store.Container) error {
	if c.State != "paused" {
		return nil
	}
	if err := ociruntime.Resume(runtime, c.ID); err != nil {
		return err
	}
	return cs.Store.SetPaused(c.ID, false)
}

// Pause freezes every process of a running container.
func (cs Containers) Pause(ctx context.Context, id string) (store.Container, error) {
	return cs.freeze(ctx, id, true)
}

// Unpause thaws a paused container.
func (cs Containers) Unpause(ctx context.Context, id string) (store.Container, error) {
	return cs.freeze(ctx, id, false)
}

func (cs Containers) freeze(ctx context.Context, id string, pause bool) (store.Container, error) {
	var out store.Container
	err := cs.locked(ctx, id, func(_ *Lock, c store.Container) error {
		if pause && c.State != "running" {
			return refuse(ErrNotRunning, "container %s is %s", c.Name, c.State)
		}
		if !pause && c.State != "paused" {
			return refuse(ErrNotPaused, "container %s is %s", c.Name, c.State)
		}
		runtime, err := RuntimeFor(cs.Runtime, cs.Store, c)
		if err != nil {
			return err
		}
		action := "pause"
		if pause {
			err = ociruntime.Pause(runtime, c.ID)
		} else {
			action, err = "unpause", ociruntime.Resume(runtime, c.ID)
		}
		if err == nil {
			err = cs.Store.SetPaused(c.ID, pause)
		}
		if err != nil {
			return err
		}
		record(cs.Store, action, c, nil)
		out, err = cs.Store.Container(c.ID)
		return err
	})
	return out, err
}

// Remove deletes the container: its record, its bundle and its lock. A
// running one is ErrRunning unless force, which kills it first.
func (cs Containers) Remove(ctx context.Context, id string, force bool) (store.Container, error) {
	var out store.Container
	err := cs.locked(ctx, id, func(l *Lock, c store.Container) error {
		out = c
		if Alive(c) && !force {
			return refuse(ErrRunning, "container %s is running; stop it first or pass {force: true}", c.Name)
		}
		c, err := cs.stop(ctx, c, 0)
		if err != nil {
			return err
		}
		if Alive(c) {
			return &ociruntime.RuntimeError{Message: fmt.Sprintf("container %s did not end after SIGKILL", c.Name)}
		}
		ociruntime.UnmountRootfs(cs.Store.BundleDir(c.ID))
		// Deleting the bundle may need a user namespace: a host that
		// refuses one leaves the container, not a record gone and its
		// bundle kept.
		if err := treeops.Allowed(); err != nil {
			return err
		}
		// The record goes first, so the container goes in one step for
		// every reader; a kill before the bundle is deleted leaves a bundle
		// no record names, which the store's collection deletes.
		if err := cs.Store.DeleteContainer(c.ID); err != nil {
			return err
		}
		// A refusal Allowed could not foresee (the limit of namespaces used
		// up) leaves the bundle to a later collection: the container is
		// gone all the same.
		var refused *treeops.RefusedError
		if err := cs.Store.RemoveBundle(c.ID); err != nil && !errors.As(err, &refused) {
			return err
		}
		l.Discard()
		record(cs.Store, "destroy", c, nil)
		return nil
	})
	return out, err
}

// Wait returns the container's record once it has exited, as docker wait
// does (a container not started yet is waited for too). It takes no lock.
func Wait(ctx context.Context, st *store.Store, id string) (store.Container, error) {
	c, err := st.Container(id)
	for err == nil {
		if c, err = Reconcile(st, c); err != nil || c.State == "exited" {
			break
		}
		if Alive(c) {
			_, err = ociruntime.WaitExit(ctx, st.BundleDir(c.ID), c.Run.MonitorPid, c.ID)
		} else {
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err == nil {
			c, err = st.Container(id)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return c, refuse(ErrGone, "container %s was removed while waiting", short(id))
	}
	return c, err
}
