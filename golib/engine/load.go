package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/ctxio"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/store"
)

const opLoad = "loadImage"

// loadImage(filePath) loads every image of a `docker save` tarball (the
// layout of any Docker version) or an OCI archive, compressed or not, into
// the store, as `docker load` does; every layer is checked against its
// digests and unpacked as safely as a pull.
func (e *Engine) loadImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 2)
	if err != nil {
		return nil, errcat.New(opLoad, "InvalidLoadImageParameters", err.Error(), nil)
	}
	source, socket, reason := loadSourceParam(list[0])
	filePath := source
	if socket {
		filePath = "-" // as docker names standard input
	}
	if reason != "" {
		return nil, errcat.New(opLoad, "InvalidLoadImageParameters", reason, nil)
	}
	fail := func(err error) error { return imageFailure(opLoad, fromLocal, err).With("filePath", filePath) }
	// Reading the archive's own structure fails as InvalidArchive (unless
	// the disk or the store is the problem); its layers fail as a pull does.
	failArchive := func(err error) error {
		if fault, _, _ := classifyImageError(err, fromLocal); fault == faultNoSpace || fault == faultStore {
			return fail(err)
		}
		return errcat.New(opLoad, "InvalidArchive", err.Error(), err).With("filePath", filePath)
	}
	if _, err := os.Stat(source); err != nil {
		return nil, errcat.New(opLoad, "ArchiveNotFound", fmt.Sprintf("no archive at %s", filePath), err).With("filePath", filePath)
	}
	st, hold, err := e.heldStore(call.Root)
	if err != nil {
		return nil, errcat.New(opLoad, "StoreFailure", err.Error(), err).With("filePath", filePath)
	}
	defer hold.Release()
	var tarPath string
	var cleanup func()
	if socket {
		tarPath, cleanup, err = streamedTar(ctx, st, source)
	} else {
		tarPath, cleanup, err = plainTar(ctx, st, source)
	}
	if err != nil {
		return nil, failArchive(err)
	}
	defer cleanup()
	archived, err := imagesrc.OpenArchive(tarPath)
	if err != nil {
		return nil, failArchive(err)
	}
	defer archived.Close()
	loaded := []map[string]any{}
	var ids []string
	for _, src := range archived.Images {
		result, err := pull.Into(ctx, st, pull.Source(src), pull.Options{Progress: func(ev pull.Event) { call.Emit(ev) }})
		if err != nil {
			return nil, fail(err)
		}
		loaded = append(loaded, map[string]any{"Id": result.ID, "RepoTags": result.RepoTags})
		ids = append(ids, result.ID)
	}
	if err := linkParents(st, archived.Images, ids, archived.Parents); err != nil {
		return nil, failArchive(err)
	}
	for _, image := range loaded {
		recordImageEvent(call.Root, "load", image["Id"].(string), strings.Join(image["RepoTags"].([]string), ", "))
	}
	return map[string]any{"Loaded": loaded}, nil
}

// linkParents records the parents manifest.json names (parents[i] for
// sources[i], loaded as ids[i]) as docker load does: only a parent loaded
// from the same archive counts, and it must be one the image was built on.
func linkParents(st *store.Store, sources []imagesrc.Image, ids, parents []string) error {
	for i, parent := range parents {
		p := slices.Index(ids, parent)
		if p < 0 || parent == ids[i] {
			continue
		}
		if !builtOn(sources[i].Image, sources[p].Image) {
			return &inspect.ContentError{Reason: fmt.Sprintf("manifest.json names image %s as the parent of %s, which was not built on it", parent, ids[i])}
		}
		if err := st.SetParent(ids[i], parent); err != nil {
			return err
		}
	}
	return nil
}

// builtOn is Docker's test of a parent: the child's history is the
// parent's and one step more, or neither has any history.
func builtOn(child, parent v1.Image) bool {
	c, err1 := child.ConfigFile()
	p, err2 := parent.ConfigFile()
	if err1 != nil || err2 != nil {
		return false
	}
	if len(c.History) == 0 && len(p.History) == 0 {
		return true
	}
	return len(c.History) == len(p.History)+1 && reflect.DeepEqual(p.History, c.History[:len(p.History)])
}

// loadSourceParam reads the archive argument: a file path, or {stream:
// socket}, the Unix socket the JS layer serves a Readable on.
func loadSourceParam(raw json.RawMessage) (source string, socket bool, reason string) {
	if _, _, err := stringParam(raw, "filePath"); err == nil {
		s, err := requiredString(raw, "filePath")
		if err != nil {
			return "", false, err.Error()
		}
		return s, false, ""
	}
	source, socket, reason = importSourceParam(raw)
	if reason != "" {
		reason = "filePath must be an archive's path or a Readable"
	}
	return source, socket, reason
}

// streamedTar reads the archive from the socket into the store's staging
// area, decompressed: the archive is read by its entries' offsets, which a
// stream cannot give.
func streamedTar(ctx context.Context, st *store.Store, socket string) (string, func(), error) {
	src, _, err := openImportSource(ctx, socket, true)
	if err != nil {
		return "", nil, err
	}
	defer src.Close()
	return decompressedCopy(ctx, st, src)
}

// plainTar returns a seekable, uncompressed copy of the archive: the file
// itself when it is a plain tar, else a decompressed copy in the store's
// staging area.
func plainTar(ctx context.Context, st *store.Store, filePath string) (string, func(), error) {
	f, err := os.Open(filePath)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if archive.Compression(head[:n]) == "" {
		return filePath, func() {}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", nil, err
	}
	return decompressedCopy(ctx, st, f)
}

// decompressedCopy writes what src holds, decompressed if it is
// compressed, to a file in the store's staging area; an abort stops it
// within one read.
func decompressedCopy(ctx context.Context, st *store.Store, src io.Reader) (string, func(), error) {
	r, err := archive.Decompress(ctxio.Reader(ctx, src))
	if err != nil {
		return "", nil, &inspect.ContentError{Reason: "the archive could not be decompressed: " + err.Error()}
	}
	defer r.Close()
	tmp, err := st.TempFile("load-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, &inspect.ContentError{Reason: "the archive could not be decompressed: " + err.Error()}
	}
	return tmp.Name(), cleanup, nil
}
