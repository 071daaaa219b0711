package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/configchange"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

// commitOptions are commitContainer's options, as docker commit takes them.
type commitOptions struct {
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Message    string   `json:"message"`
	Author     string   `json:"author"`
	Changes    []string `json:"changes"`
	Pause      *bool    `json:"pause"`
}

// commitContainer(id, {repository, tag, message, author, changes, pause})
// makes the container's own changes one new layer on top of its image's,
// and records the result as a new image in the store.
func (e *Engine) commitContainer(ctx context.Context, call *Request) (any, error) {
	const op = "commitContainer"
	list, st, c, err := e.containerCall(op, "InvalidCommitContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	hold, err := st.Hold()
	if err != nil {
		return nil, errcat.New(op, "StoreFailure", err.Error(), err).With("containerId", c.ID)
	}
	defer hold.Release()
	invalid := func(reason string) error {
		return errcat.New(op, "InvalidCommitContainerParameters", reason, nil).With("containerId", c.ID)
	}
	var opts commitOptions
	if !isNull(list[1]) {
		if _, err := objectParam(list[1], "options"); err != nil {
			return nil, invalid(err.Error())
		}
		if err := json.Unmarshal(list[1], &opts); err != nil {
			return nil, invalid("options: " + err.Error())
		}
	}
	names, reason := imageNames(opts.Repository, opts.Tag)
	if reason != "" {
		return nil, invalid(reason)
	}
	fail := func(class string, err error) *errcat.Error {
		return errcat.New(op, class, err.Error(), err).With("containerId", c.ID)
	}
	img, err := st.FindImage(c.ImageID)
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	config, err := lifecycle.ImageConfig(st, img)
	if err != nil {
		return nil, fail("CommitContainerFailure", err)
	}
	if err := configchange.Apply(&config.Config, opts.Changes); err != nil {
		return nil, invalid("changes: " + err.Error())
	}
	// The lock keeps a start, a stop or a removal from meeting the pack.
	var newLayer store.Layer
	err = e.lifecycle(st, call).Change(ctx, c.ID, func(c store.Container) (err error) {
		newLayer, err = commitDiff(ctx, st, call.Runtime, c, img, opts)
		return err
	})
	if err != nil {
		return nil, changeFailure(op, c, err, "CommitContainerFailure")
	}
	now := time.Now().UTC()
	config.Created = v1.Time{Time: now}
	if opts.Author != "" {
		config.Author = opts.Author
	}
	config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, mustHash(newLayer.DiffID))
	config.History = append(config.History, v1.History{
		Created: v1.Time{Time: now}, CreatedBy: "k3-core commit " + c.Name, Comment: opts.Message, Author: opts.Author,
	})
	result, err := recordCommit(st, img, config, newLayer, names)
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	recordContainerEvent(call.Root, "commit", c)
	return result, nil
}

// commitDiff packs the container's writable layer, paused unless opts
// says not to.
func commitDiff(ctx context.Context, st *store.Store, runtime string, c store.Container, img store.Image, opts commitOptions) (store.Layer, error) {
	bundleDir := st.BundleDir(c.ID)
	if _, err := os.Stat(bundle.DiffDir(bundleDir)); err != nil {
		return store.Layer{}, fmt.Errorf("%w: %v", lifecycle.ErrBundleMissing, err)
	}
	if c.State == "running" && (opts.Pause == nil || *opts.Pause) {
		resume, err := pauseForCommit(st, runtime, c)
		if err != nil {
			return store.Layer{}, err
		}
		defer resume()
	}
	spec, _ := bundle.ReadSpec(bundleDir)
	var skip []string
	if spec != nil {
		for _, m := range spec.Mounts {
			skip = append(skip, m.Destination)
		}
	}
	return packDiff(ctx, st, bundle.DiffDir(bundleDir), skip, img)
}

// pauseForCommit pauses a running container, as docker commit does, so the
// layer is one moment and the container cannot change it under the pack.
// A container that cannot be paused fails the commit rather than be packed
// running without the caller asking for that (pause: false); one that
// stopped meanwhile needs no pause. It returns what resumes the container.
func pauseForCommit(st *store.Store, runtimeName string, c store.Container) (func(), error) {
	runtime, err := lifecycle.RuntimeFor(runtimeName, st, c)
	if err == nil {
		if err = ociruntime.Pause(runtime, c.ID); err == nil {
			return func() { ociruntime.Resume(runtime, c.ID) }, nil
		}
	}
	if now, rerr := lifecycle.Reconcile(st, c); rerr == nil && now.State != "running" {
		return func() {}, nil
	}
	return nil, fmt.Errorf("cannot pause the running container to commit it (pass pause: false to commit it running): %w", err)
}

func mustHash(s string) v1.Hash {
	h, _ := v1.NewHash(s)
	return h
}

// packDiff turns the container's writable layer into a stored layer: its
// tar, uncompressed as docker commit keeps it (the layer is compressed when
// it is pushed or saved compressed, not now), stored by its digest, which is
// also its diff ID. Its directory is unpacked from the blob the first time a
// container needs it, so a commit costs what writing its tar costs.
func packDiff(ctx context.Context, st *store.Store, diff string, skip []string, img store.Image) (store.Layer, error) {
	blob, err := st.TempFile("commit-")
	if err != nil {
		return store.Layer{}, err
	}
	defer os.Remove(blob.Name())
	defer blob.Close()
	written, err := treeops.WriteLayer(ctx, diff, skip, blob)
	if err != nil {
		return store.Layer{}, err
	}
	// The last moment an abort stops the commit: from here on it is
	// recorded, and the caller is told so.
	if err := ctx.Err(); err != nil {
		return store.Layer{}, err
	}
	diffID, size := written.Digest, written.Size
	parent := ""
	if n := len(img.Layers); n > 0 {
		parent = img.Layers[n-1].ChainID
	}
	chainID := diffID.String()
	if parent != "" {
		chainID = digest.FromString(parent + " " + diffID.String()).String()
	}
	mediaType := types.OCIUncompressedLayer
	if types.MediaType(img.ManifestMediaType) == types.DockerManifestSchema2 {
		mediaType = types.DockerUncompressedLayer
	}
	l := store.Layer{ChainID: chainID, DiffID: diffID.String(), Parent: parent, BlobDigest: diffID.String(),
		BlobSize: size, MediaType: string(mediaType), Size: size}
	if err := st.PlaceBlob(l.BlobDigest, blob.Name()); err != nil {
		return store.Layer{}, err
	}
	return l, st.AddLayer(l)
}

// recordCommit writes the new config and manifest and records the image.
func recordCommit(st *store.Store, base store.Image, config *v1.ConfigFile, newLayer store.Layer, names []string) (map[string]any, error) {
	rawConfig, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	configDigest := digest.FromBytes(rawConfig).String()
	docker := types.MediaType(base.ManifestMediaType) == types.DockerManifestSchema2
	manifest := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawConfig)), Digest: mustHash(configDigest)}}
	if docker {
		manifest.MediaType, manifest.Config.MediaType = types.DockerManifestSchema2, types.DockerConfigJSON
	}
	layers := append(append([]store.Layer{}, base.Layers...), newLayer)
	size := int64(0)
	for _, l := range layers {
		manifest.Layers = append(manifest.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.BlobSize, Digest: mustHash(l.BlobDigest)})
		size += l.BlobSize
	}
	rawManifest, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	manifestDigest := digest.FromBytes(rawManifest).String()
	for d, data := range map[string][]byte{configDigest: rawConfig, manifestDigest: rawManifest} {
		if err := st.PutBlob(d, data); err != nil {
			return nil, err
		}
	}
	// The container's image is the new one's parent, as docker commit records it.
	img := store.Image{ID: configDigest, ManifestDigest: manifestDigest, ManifestMediaType: string(manifest.MediaType),
		Created: config.Created.UTC().Format(time.RFC3339Nano), Size: size, Architecture: config.Architecture, OS: config.OS,
		Parent: base.ID, Names: names, Layers: layers}
	if err := st.AddImage(img); err != nil {
		return nil, err
	}
	return map[string]any{"Id": configDigest, "Digest": manifestDigest, "RepoTags": nonNilStrings(names)}, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// applyChange applies one `docker commit --change` instruction to cfg.
func applyChange(cfg *v1.Config, change string) error {
	return configchange.Apply(cfg, []string{change})
}
