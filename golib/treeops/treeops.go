// Package treeops owns where the file work on unpacked trees runs: unpacking
// a layer, reading a container's merged tree into an export, writing its
// writable layer into a commit, copying into and removing from it, listing
// its changes, and deleting layer and container directories.
//
// Root does it in this process. An ordinary user's store holds files owned
// by the user's subordinate IDs (so that a container sees their true
// owners), which the user cannot read, change or delete from outside a user
// namespace; for such a user every operation here runs in k3-core's helper
// (package userns) inside a user namespace over those IDs, where the same
// code runs as the namespace's root. Data moves by file descriptor where it
// can: an export writes straight into the output file, a commit into its
// blob.
package treeops

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/changes"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/rootfs"
	"github.com/k3-core/k3-core/golib/userns"
)

var (
	helperMu   sync.Mutex
	helperPath string
)

// UseHelper names the helper binary (k3-userns) that runs the work of an
// ordinary user; without one, the work runs in this process, as it does
// for root.
func UseHelper(path string) {
	helperMu.Lock()
	helperPath = path
	helperMu.Unlock()
}

// helper is the helper to run the work in, or "" to run it here.
func helper() string {
	if os.Geteuid() == 0 {
		return ""
	}
	helperMu.Lock()
	defer helperMu.Unlock()
	return helperPath
}

// InNamespace reports whether the work runs in a user namespace: files the
// store writes from now on belong to the user's subordinate IDs.
func InNamespace() bool { return helper() != "" }

// Unpack unpacks the layer tar r into dir, which must exist, with the
// whiteouts the overlay of whoever runs containers reads; lower are the
// layers beneath, nearest first (see layer.Options).
func Unpack(ctx context.Context, r io.Reader, dir string, lower []string, progress func(int64)) (layer.Stats, error) {
	if h := helper(); h != "" {
		var stats layer.Stats
		err := run(ctx, h, request{Op: opUnpack, Dir: dir, Lower: lower, Way: Way()}, &dataFile{in: r}, func(n, _ int64) {
			if progress != nil {
				progress(n)
			}
		}, &stats, nil)
		return stats, err
	}
	return unpack(ctx, r, dir, lower, progress, Way())
}

// unpack unpacks and records that the tree was written the way named.
func unpack(ctx context.Context, r io.Reader, dir string, lower []string, progress func(int64), way string) (layer.Stats, error) {
	stats, err := layer.Unpack(ctx, r, dir, layer.Options{Whiteouts: layer.NativeWhiteouts(), Lower: lower, Progress: progress})
	if err == nil {
		err = record(dir, way)
	}
	return stats, err
}

// Export measures the merged tree of stack (rootfs.Stack.Measure), lets
// check approve its size, opens the output with open and writes the tree
// into it (rootfs.Stack.WriteTar). open returns the writer and, when the
// writes go straight into a file, that file, which the helper then writes
// itself. shifts come from ReadShifts.
//
// In this process the output is opened once the size is approved; the
// helper needs its output when it starts, so it gets it first, measures,
// and waits for the approval: one helper for the whole export.
func Export(ctx context.Context, stack []string, shifts []rootfs.Shift, check func(rootfs.Stats) error,
	open func() (io.Writer, *os.File, error), progress func(bytes, entries int64)) (rootfs.Stats, error) {
	if h := helper(); h != "" {
		w, direct, err := open()
		if err != nil {
			return rootfs.Stats{}, err
		}
		data := &dataFile{f: direct, out: w}
		if direct != nil {
			data.out = nil
		}
		var stats rootfs.Stats
		err = run(ctx, h, request{Op: opExport, Stack: stack}, data, progress, &stats, check)
		return stats, err
	}
	size, err := rootfs.Stack(stack).Measure(ctx, shifts...)
	if err == nil {
		err = check(size)
	}
	if err != nil {
		return rootfs.Stats{}, err
	}
	w, _, err := open()
	if err != nil {
		return rootfs.Stats{}, err
	}
	return rootfs.Stack(stack).WriteTar(ctx, w, rootfs.Options{Progress: progress, Shifts: shifts})
}

// Layer is what WriteLayer wrote.
type Layer struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// WriteLayer writes the layer directory dir (a container's writable layer)
// into blob, an empty file open for reading and writing, as
// rootfs.WriteLayer does, and digests it.
func WriteLayer(ctx context.Context, dir string, skip []string, blob *os.File) (Layer, error) {
	if h := helper(); h != "" {
		var l Layer
		err := run(ctx, h, request{Op: opLayer, Dir: dir, Skip: skip}, &dataFile{f: blob}, nil, &l, nil)
		return l, err
	}
	return writeLayer(ctx, dir, skip, blob)
}

func writeLayer(ctx context.Context, dir string, skip []string, blob *os.File) (Layer, error) {
	out := content.NewFileWriter(blob)
	_, werr := rootfs.WriteLayer(ctx, dir, out, rootfs.LayerOptions{Skip: skip})
	d, size, err := out.Close()
	if werr != nil {
		return Layer{}, werr
	}
	return Layer{Digest: d, Size: size}, err
}

// Allowed is the RefusedError of a host that refuses the user namespace
// this process's work on trees runs in, or nil: a change of several steps
// asks first, so that a refusal leaves it undone rather than half done.
func Allowed() error {
	if helper() == "" {
		return nil
	}
	var host *userns.HostError
	if errors.As(userns.Detect().Check(), &host) {
		return &RefusedError{Host: host}
	}
	return nil
}

// RemoveAll removes path and everything under it; a path that does not
// exist is no error.
func RemoveAll(path string) error {
	if h := helper(); h != "" {
		if _, err := os.Lstat(path); os.IsNotExist(err) {
			return nil
		}
		return run(context.Background(), h, request{Op: opRemoveAll, Dir: path}, nil, nil, nil, nil)
	}
	return os.RemoveAll(path)
}

// Root is a container's root that CopyIn and Remove change.
type Root struct {
	bundle.Root
	// Join, when set, is the monitor of an ordinary user's running
	// container: its mount is reached through /proc/<Join>/root, which only
	// a process of the monitor's own user namespace may enter (the monitor
	// holds every capability there), so the helper joins that namespace
	// instead of making one of its own.
	Join int
}

// CopyIn is bundle.Root.CopyIn.
func CopyIn(ctx context.Context, root Root, src, dest string) (string, error) {
	if h := helper(); h != "" {
		var written string
		err := run(ctx, h, request{Op: opCopyIn, Root: root.Root, Src: src, Dest: dest, join: root.Join}, nil, nil, &written, nil)
		return written, err
	}
	return root.CopyIn(ctx, src, dest)
}

// Remove is bundle.Root.Remove.
func Remove(root Root, path string) (string, error) {
	if h := helper(); h != "" {
		var removed string
		err := run(context.Background(), h, request{Op: opRemove, Root: root.Root, Dest: path, join: root.Join}, nil, nil, &removed, nil)
		return removed, err
	}
	return root.Remove(path)
}

// Changes is changes.List.
func Changes(ctx context.Context, upper string, image []string) ([]changes.Change, error) {
	if h := helper(); h != "" {
		list := []changes.Change{}
		err := run(ctx, h, request{Op: opChanges, Dir: upper, Stack: image}, nil, nil, &list, nil)
		return list, err
	}
	return changes.List(ctx, upper, bundle.Stack(image))
}
