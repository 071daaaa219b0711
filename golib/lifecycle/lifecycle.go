// Package lifecycle owns a container's life in the store: creating it,
// starting it under k3-monitor, stopping, killing, pausing, restarting and
// removing it, and reconciling its record with the world (a run whose
// starter was killed before recording it is recorded; a run whose monitor
// recorded an exit, or died, is exited).
//
// Each container has one owner at a time, across every process using the
// store: every change takes the container's Lock, reads the record again,
// checks the state it expects, and records the new state with one
// conditional statement (store.SetRunning and the like), which fails with
// store.ErrStateChanged rather than overwrite a state it did not expect.
// So two processes starting one container start it once: the second finds
// it running, as docker start does, and no one unmounts a root another run
// is using.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/events"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/rootfs"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

var (
	// ErrGone: the container was removed while the caller waited for it.
	ErrGone = errors.New("the container was removed")
	// ErrNotRunning: the change needs a running (or paused) container.
	ErrNotRunning = errors.New("the container is not running")
	// ErrNotPaused: unpause needs a paused container.
	ErrNotPaused = errors.New("the container is not paused")
	// ErrRunning: removing a running container needs force.
	ErrRunning = errors.New("the container is running")
	// ErrBundleMissing: the container's files are gone.
	ErrBundleMissing = errors.New("container files are missing")
	// ErrUnreadable: the container's image record cannot be read.
	ErrUnreadable = errors.New("container information is unreadable")
)

// stateError is a refusal in plain words that still matches its kind.
type stateError struct {
	kind error
	msg  string
}

func (e *stateError) Error() string { return e.msg }
func (e *stateError) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &stateError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Alive is true of a container that has a process: running or paused.
func Alive(c store.Container) bool { return c.State == "running" || c.State == "paused" }

// exitUnknown is the exit code of a run whose end nobody saw (its monitor
// was killed, or the host rebooted), as docker reports it.
const exitUnknown = 255

// exitKilled is the exit code of a run ended because its monitor died
// while it ran: 128+SIGKILL, as containerd reports a task it ends after
// its shim died.
const exitKilled = 128 + 9

// ended is what a live container's run left: its exit, and whether its
// monitor recorded it (else the monitor died, and its process and mount
// may remain: see endOrphan). It is nil while the run goes on.
func ended(st *store.Store, c store.Container) (exit *ociruntime.Exit, recorded bool, err error) {
	if !Alive(c) {
		return nil, false, nil
	}
	bundleDir := st.BundleDir(c.ID)
	if exit, err = ociruntime.ReadExit(bundleDir); exit != nil || err != nil {
		return exit, true, err
	}
	if c.Run.BootID == ociruntime.BootID() && ociruntime.MonitorAlive(c.Run.MonitorPid, c.ID) {
		return nil, false, nil
	}
	// The monitor may have recorded the exit just before it ended.
	if exit, err = ociruntime.ReadExit(bundleDir); exit != nil || err != nil {
		return exit, true, err
	}
	return &ociruntime.Exit{ExitCode: exitUnknown, FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}, false, nil
}

// unrecorded returns the run of container c that its bundle names and its
// record does not: a start whose starter was killed after the monitor
// began and before the run was recorded. Its Started says whether the
// container process came to exist; a run not started whose monitor is gone
// never ran, and is nil.
func unrecorded(st *store.Store, c store.Container) (*ociruntime.RunRecord, error) {
	if Alive(c) {
		return nil, nil
	}
	r, err := ociruntime.ReadRun(st.BundleDir(c.ID))
	if r == nil || err != nil {
		return nil, err
	}
	if r.BootID != ociruntime.BootID() || (r.MonitorPid == c.Run.MonitorPid && r.BootID == c.Run.BootID) {
		return nil, nil
	}
	if !r.Started && !ociruntime.MonitorAlive(r.MonitorPid, c.ID) {
		return nil, nil
	}
	return r, nil
}

// adopt is c with run r recorded: running, as it was when it started.
func adopt(c store.Container, r *ociruntime.RunRecord) store.Container {
	c.State = "running"
	c.Run = store.Run{Pid: r.Pid, MonitorPid: r.MonitorPid, BootID: r.BootID, StartedAt: r.StartedAt}
	return c
}

func withExit(c store.Container, exit *ociruntime.Exit) store.Container {
	c.State, c.Run.ExitCode, c.Run.FinishedAt, c.Run.Pid = "exited", exit.ExitCode, exit.FinishedAt, 0
	return c
}

// Reconcile brings a container's recorded state in line with the world: a
// run the record does not know (its starter was killed) is recorded; a
// container recorded as running whose monitor recorded an exit is exited;
// one whose monitor is gone is ended (endOrphan) and exited. Every read of
// a container goes through here, so none is shown otherwise than it is.
// Only the container's owner writes: when another caller holds its lock,
// what the monitors recorded is shown, and the rest left for that owner.
func Reconcile(st *store.Store, c store.Container) (store.Container, error) {
	shown, stale, err := observe(st, c)
	if !stale || err != nil {
		return shown, err
	}
	l, err := TryAcquire(st, c.ID)
	if err != nil || l == nil {
		return shown, err
	}
	defer l.Release()
	fresh, err := st.Container(c.ID)
	if errors.Is(err, store.ErrNotFound) {
		l.Discard()
		return shown, nil
	}
	if err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readerPatience)
	defer cancel()
	settled, err := settle(ctx, st, fresh)
	if errors.Is(err, context.DeadlineExceeded) {
		// A monitor still starting its container (its runtime slow or
		// hung): the reader shows what it sees, and the next one settles.
		return shown, nil
	}
	return settled, err
}

// readerPatience is how long a reader waits for a monitor, whose starter
// died, to bring its container to exist: a start takes well under a
// second, and a listing must not hang on a runtime that hangs.
const readerPatience = 2 * time.Second

// observe is c as its monitors show it, without writing, and whether its
// record is stale.
func observe(st *store.Store, c store.Container) (shown store.Container, stale bool, err error) {
	r, err := unrecorded(st, c)
	if err != nil {
		return c, false, err
	}
	// A run still starting is stale too: if no one holds the lock, its
	// starter is dead, and settle waits for it.
	stale = r != nil
	if stale && r.Started {
		c = adopt(c, r)
	}
	if !Alive(c) && r == nil && ociruntime.RootfsMounted(st.BundleDir(c.ID)) {
		// A start killed between mounting the root and starting the monitor.
		return c, true, nil
	}
	exit, recorded, err := ended(st, c)
	if exit == nil || err != nil {
		return c, stale, err
	}
	if recorded || !processLeft(c) {
		c = withExit(c, exit)
	}
	// Else a process its dead monitor left still runs, until the lock's
	// holder ends it (endOrphan).
	return c, true, nil
}

// processLeft reports whether the init of c's run may still run.
func processLeft(c store.Container) bool {
	if c.Run.Pid <= 0 || c.Run.BootID != ociruntime.BootID() {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", c.Run.Pid))
	return err == nil
}

// settle is Reconcile for the holder of the container's lock: it records
// a run its starter did not (waiting, while ctx lasts, for one still
// starting), and an ended run, and ends what a dead monitor left, or a
// start killed before its monitor began.
func settle(ctx context.Context, st *store.Store, c store.Container) (store.Container, error) {
	r, err := unrecorded(st, c)
	for err == nil && r != nil && !r.Started {
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		r, err = unrecorded(st, c)
	}
	if err != nil {
		return c, err
	}
	if r != nil {
		c = adopt(c, r)
		if err := st.SetRunning(c.ID, c.Run); err != nil {
			return c, err
		}
	}
	if !Alive(c) {
		// No run has it: a root mounted by a start killed before its
		// monitor began goes.
		ociruntime.UnmountRootfs(st.BundleDir(c.ID))
		return c, nil
	}
	exit, recorded, err := ended(st, c)
	if exit == nil || err != nil {
		return c, err
	}
	if !recorded {
		exit.ExitCode = endOrphan(st, c)
	}
	err = st.SetExited(c.ID, c.Run.MonitorPid, exit.ExitCode, exit.FinishedAt)
	if errors.Is(err, store.ErrStateChanged) {
		// A writer that holds no lock (a repair) recorded it first.
		return st.Container(c.ID)
	}
	if err != nil {
		return c, err
	}
	if !recorded {
		// The monitor that would have recorded it is gone.
		record(st, "die", c, map[string]string{"exitCode": strconv.Itoa(exit.ExitCode)})
	}
	return withExit(c, exit), nil
}

// endOrphan ends what a run whose monitor died left, as containerd does
// when a shim dies: a container process still running, which no one
// would log or see end, is killed (exitKilled); one already gone ended
// unseen (exitUnknown). The runtime's record of it, which would refuse
// the ID's next run, and its mount go too.
func endOrphan(st *store.Store, c store.Container) int {
	bundleDir := st.BundleDir(c.ID)
	code := exitUnknown
	name := ""
	if r, _ := ociruntime.ReadRun(bundleDir); r != nil {
		name = r.Runtime
	}
	if runtime, err := RuntimeFor(name, st, c); err == nil && c.Run.BootID == ociruntime.BootID() {
		if ociruntime.Running(runtime, c.ID) {
			code = exitKilled
		}
		ociruntime.Forget(runtime, c.ID)
	}
	ociruntime.UnmountRootfs(bundleDir)
	return code
}

// Stack returns the container's layer directories, top first (its own
// writable layer, then its image's), checking that they exist and were
// written the way this process reads them; layers a commit stored only as
// blobs are unpacked into the store first.
func Stack(ctx context.Context, st *store.Store, c store.Container) (bundle.Stack, error) {
	img, err := stackImage(st, c)
	if err != nil {
		return nil, err
	}
	if err := unpackCommitted(ctx, st, img); err != nil {
		return nil, err
	}
	if err := treeops.Check(bundle.DiffDir(st.BundleDir(c.ID))); err != nil {
		return nil, err
	}
	return stackDirs(st, c, img, nil)
}

// ReadStack is Stack for an operation that only reads: a layer a commit
// stored only as a blob is unpacked into a scratch directory, which done
// removes, and the store is left as it was. shifts say how to read each
// directory's owners (see treeops.ReadShifts).
func ReadStack(ctx context.Context, st *store.Store, c store.Container) (stack bundle.Stack, shifts []rootfs.Shift, done func(), err error) {
	img, err := stackImage(st, c)
	if err != nil {
		return nil, nil, nil, err
	}
	// Scratch is staging: held (store.Hold) until done, so no collection
	// removes it while it is read.
	hold, err := st.Hold()
	if err != nil {
		return nil, nil, nil, err
	}
	scratch := map[string]string{} // chain ID -> its scratch directory
	done = func() {
		for _, dir := range scratch {
			treeops.RemoveAll(filepath.Dir(dir))
		}
		hold.Release()
	}
	var lower []string // top first
	for _, l := range img.Layers {
		dir := st.LayerDir(l.ChainID)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if dir, err = unpackScratch(ctx, st, l, lower); err != nil {
				done()
				return nil, nil, nil, err
			}
			scratch[l.ChainID] = dir
		}
		lower = append([]string{dir}, lower...)
	}
	stack, err = stackDirs(st, c, img, scratch)
	if err == nil {
		shifts, err = treeops.ReadShifts(stack)
	}
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return stack, shifts, done, nil
}

// unpackScratch unpacks a committed layer's blob into a directory of the
// store's scratch space, outside its layers.
func unpackScratch(ctx context.Context, st *store.Store, l store.Layer, lower []string) (string, error) {
	blob, err := os.Open(st.BlobPath(l.BlobDigest))
	if err != nil {
		return "", fmt.Errorf("%w: layer %s is neither unpacked nor stored: %v", ErrBundleMissing, l.DiffID, err)
	}
	defer blob.Close()
	tmp, err := st.TempDir("read-")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tmp, "layer")
	stream, err := archive.Decompress(blob)
	if err == nil {
		defer stream.Close()
		err = os.Mkdir(dir, 0o755)
	}
	if err == nil {
		_, err = treeops.Unpack(ctx, stream, dir, lower, nil)
	}
	if err != nil {
		treeops.RemoveAll(tmp)
		return "", fmt.Errorf("unpacking committed layer %s: %w", l.DiffID, err)
	}
	return dir, nil
}

func stackImage(st *store.Store, c store.Container) (store.Image, error) {
	if _, err := os.Stat(bundle.DiffDir(st.BundleDir(c.ID))); err != nil {
		return store.Image{}, fmt.Errorf("%w: bundle directory %s: %v", ErrBundleMissing, st.BundleDir(c.ID), err)
	}
	img, err := st.FindImage(c.ImageID)
	if err != nil {
		return store.Image{}, fmt.Errorf("%w: image record: %v", ErrUnreadable, err)
	}
	return img, nil
}

// stackDirs lists the container's layer directories, top first; moved
// gives the directories of layers unpacked elsewhere than the store.
func stackDirs(st *store.Store, c store.Container, img store.Image, moved map[string]string) (bundle.Stack, error) {
	stack := bundle.Stack{bundle.DiffDir(st.BundleDir(c.ID))}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		dir, ok := moved[img.Layers[i].ChainID]
		if !ok {
			dir = st.LayerDir(img.Layers[i].ChainID)
		}
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("%w: layer directory %s: %v", ErrBundleMissing, dir, err)
		}
		stack = append(stack, dir)
	}
	return stack, nil
}

// layerUsable reports whether the layer directory dir is there and written
// the way this process reads it. One that is not there, or that root finds
// written another way, is to be unpacked from its blob; another user's, or
// root's for a user, is refused.
func layerUsable(dir string) (bool, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	err := treeops.Check(dir)
	if errors.Is(err, treeops.ErrOtherwise) && os.Geteuid() == 0 {
		return false, nil
	}
	return err == nil, err
}

// unpackCommitted unpacks the layers a commit stored only as blobs, base
// first, the first time a container needs their directories.
func unpackCommitted(ctx context.Context, st *store.Store, img store.Image) error {
	var lower []string // top first
	for _, l := range img.Layers {
		dir := st.LayerDir(l.ChainID)
		usable, err := layerUsable(dir)
		if err != nil {
			return err
		}
		if !usable {
			// Root converts a layer a user unpacked: unpacked again from
			// its blob, it has the true owners on disk.
			if err := treeops.RemoveAll(dir); err != nil {
				return err
			}
			if _, err := os.Stat(st.BlobPath(l.BlobDigest)); err != nil {
				return fmt.Errorf("%w: layer directory %s and its blob: %v", ErrBundleMissing, dir, err)
			}
			if _, err := pull.UnpackBlob(ctx, st, l, lower); err != nil {
				return fmt.Errorf("unpacking committed layer %s: %w", l.DiffID, err)
			}
		}
		lower = append([]string{dir}, lower...)
	}
	return nil
}

// Attributes are what every event of a container carries.
func Attributes(c store.Container) map[string]string {
	return map[string]string{"name": c.Name, "image": c.ImageRef}
}

// record journals a change of container c (best effort, as docker's events).
func record(st *store.Store, action string, c store.Container, extra map[string]string) {
	attributes := Attributes(c)
	for k, v := range extra {
		attributes[k] = v
	}
	_ = events.Append(st.Root(), events.New("container", action, c.ID, attributes))
}
