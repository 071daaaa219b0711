package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/changes"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/treeops"
)

// containerChanges(id) lists what the container changed against its image,
// as docker diff: [{Path, Kind}], Kind 0 modified, 1 added, 2 deleted. It
// only reads: a layer a commit left unpacked is not unpacked for it.
func (e *Engine) containerChanges(ctx context.Context, call *Request) (any, error) {
	const op = "containerChanges"
	_, st, c, err := e.containerCall(op, "InvalidContainerChangesParameters", call, 1)
	if err != nil {
		return nil, err
	}
	fail := func(class string, err error) *errcat.Error {
		e := errcat.New(op, class, err.Error(), err).With("containerId", c.ID)
		if class == "ContainerBundleNotFound" {
			e.With("bundleHashId", c.ID)
		}
		return e
	}
	diff := bundle.DiffDir(st.BundleDir(c.ID))
	if _, err := os.Stat(diff); err != nil {
		return nil, fail("ContainerBundleNotFound", fmt.Errorf("the container's writable layer %s: %w", diff, err))
	}
	img, err := st.FindImage(c.ImageID)
	if err != nil {
		return nil, fail("FetchContainerInfoFailure", fmt.Errorf("image record: %w", err))
	}
	if err := treeops.Check(diff); err != nil {
		return nil, err
	}
	image := bundle.Stack{}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		dir := st.LayerDir(img.Layers[i].ChainID)
		if err := treeops.Check(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if _, err := os.Stat(dir); err != nil {
			// A committed layer is unpacked the first time the container's
			// files are touched; until then the container changed nothing.
			if empty, _ := emptyDir(diff); empty && errors.Is(err, fs.ErrNotExist) {
				return []changes.Change{}, nil
			}
			return nil, fail("ContainerBundleNotFound", fmt.Errorf("layer directory %s: %w", dir, err))
		}
		image = append(image, dir)
	}
	list, err := treeops.Changes(ctx, diff, image)
	if errors.Is(err, context.Canceled) {
		return nil, errcat.New(op, "AbortError", "the operation was aborted", err).With("containerId", c.ID)
	}
	if err != nil {
		return nil, fail("ContainerChangesFailure", err)
	}
	return list, nil
}

func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err != nil, nil
}
