package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
)

const opPull = "pullAnImage"

// displayName spells a reference as docker does: docker.io/library/alpine:latest.
func displayName(ref name.Reference) string {
	repo := dockerName(ref)
	if d, ok := ref.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	return repo + ":" + ref.Identifier()
}

// imageCandidates lists the spellings under which the store may know ref.
func imageCandidates(ref string) []string {
	out := []string{ref}
	if parsed, err := name.ParseReference(ref); err == nil {
		out = append(out, displayName(parsed))
	}
	return out
}

// pullAnImage(imageName, tag?, options?) pulls into the store.
func (e *Engine) pullAnImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 3)
	if err != nil {
		return nil, errcat.New(opPull, "InvalidPullParameters", err.Error(), nil)
	}
	tag, optionsRaw := list[1], list[2]
	if _, ok := asObject(tag); ok && isNull(optionsRaw) {
		tag, optionsRaw = json.RawMessage("null"), tag // pullAnImage(name, options)
	}
	tagStr, _, err := stringParam(tag, "tag")
	imageName, _, _ := stringParam(list[0], "imageName")
	invalid := func(reason string) error {
		return errcat.New(opPull, "InvalidPullParameters", reason, nil).With("imageName", imageName).With("tag", tagStr)
	}
	if err != nil {
		return nil, invalid(err.Error())
	}
	options := map[string]json.RawMessage{}
	if !isNull(optionsRaw) {
		if err := json.Unmarshal(optionsRaw, &options); err != nil || options == nil {
			return nil, invalid("options must be an object")
		}
	}
	// The options take inspect's postData form, so one set of rules checks both.
	options["imageName"] = list[0]
	if tagStr != "" {
		options["imageTag"] = tag
	}
	postData, _ := json.Marshal(options)
	req, _, reason := parseImageRequest(list[0], postData, "options")
	if reason != "" {
		return nil, invalid(reason)
	}
	st, hold, err := e.heldStore(call.Root)
	if err != nil {
		return nil, errcat.New(opPull, "StoreFailure", err.Error(), err).With("imageName", imageName)
	}
	defer hold.Release()
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	src, cleanup, err := e.pullSource(ctx, st, req)
	if err == nil {
		defer cleanup()
		var result pull.Result
		result, err = pull.Into(ctx, st, src, pull.Options{Progress: func(ev pull.Event) { call.Emit(ev) }})
		if err == nil {
			recordImageEvent(call.Root, "pull", result.ID, strings.Join(result.RepoTags, ", "))
			return result, nil
		}
	}
	return nil, pullFailure(req.origin(), imageName, tagStr, err)
}

func asObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// pullSource opens the image req names in its transport.
func (e *Engine) pullSource(ctx context.Context, st *store.Store, req inspectRequest) (pull.Source, func(), error) {
	none := func() {}
	switch req.transport {
	case "oci":
		img, err := ociImage(req.imageName, req.imageTag, req.platform)
		return pull.Source{Image: img, Names: localNames(req.imageTag)}, none, err
	case "oci-archive":
		dir, err := extractArchive(st, req.imageName)
		if err != nil {
			return pull.Source{}, none, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		img, err := ociImage(dir, req.imageTag, req.platform)
		return pull.Source{Image: img, Names: localNames(req.imageTag)}, cleanup, err
	case "docker-archive":
		return dockerArchiveSource(req)
	}
	opts := registry.Options{Credentials: req.credentials, Insecure: !req.tlsVerify}
	client, err := e.registries.Client(opts)
	if err != nil {
		return pull.Source{}, none, err
	}
	ref, err := req.reference(client.ParseOptions())
	if err != nil {
		return pull.Source{}, none, err
	}
	desc, err := client.Get(ctx, ref)
	if err != nil {
		if registry.Classify(err).Kind == registry.Unauthorized {
			e.registries.Forget(opts)
		}
		return pull.Source{}, none, err
	}
	src := pull.Source{RepoDigests: []string{dockerName(ref) + "@" + desc.Digest.String()}}
	if _, isTag := ref.(name.Tag); isTag {
		src.Names = []string{displayName(ref)}
	}
	if desc.MediaType.IsIndex() {
		index, err := desc.ImageIndex()
		if err != nil {
			return pull.Source{}, none, err
		}
		manifest, err := index.IndexManifest()
		if err != nil {
			return pull.Source{}, none, &inspect.ContentError{Reason: "malformed index: " + err.Error()}
		}
		chosen, err := inspect.ChoosePlatform(manifest, req.platform)
		if err != nil {
			return pull.Source{}, none, err
		}
		if desc, err = client.Get(ctx, ref.Context().Digest(chosen.Digest.String())); err != nil {
			return pull.Source{}, none, err
		}
	}
	if desc.MediaType.IsSchema1() {
		return pull.Source{}, none, &inspect.ContentError{Reason: "Docker schema 1 images can be inspected but not pulled; push the image again with a current tool"}
	}
	src.Image, err = desc.Image()
	return src, none, err
}

// localNames names an image read from a layout by its ref name, when that
// is a valid image reference.
func localNames(refName string) []string {
	if refName == "" {
		return nil
	}
	if ref, err := name.NewTag(refName); err == nil {
		return []string{displayName(ref)}
	}
	return nil
}

func ociImage(dir, refName string, platform inspect.Platform) (v1.Image, error) {
	index, manifest, err := openLayout(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range manifest.Manifests {
		if (refName == "" && len(manifest.Manifests) == 1) || (refName != "" && d.Annotations[imagespec.AnnotationRefName] == refName) {
			return layoutImage(index, d, platform)
		}
	}
	return nil, &inspect.NotFoundError{Reason: fmt.Sprintf("no image named %q in the layout", refName)}
}

func openLayout(dir string) (v1.ImageIndex, *v1.IndexManifest, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil, &inspect.NotFoundError{Reason: fmt.Sprintf("no OCI layout directory at %s", dir)}
	}
	path, err := layout.FromPath(dir)
	if err != nil {
		return nil, nil, &inspect.NotFoundError{Reason: fmt.Sprintf("not an OCI layout: %v", err)}
	}
	index, err := path.ImageIndex()
	if err != nil {
		return nil, nil, &inspect.ContentError{Reason: "malformed index.json: " + err.Error()}
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, nil, &inspect.ContentError{Reason: "malformed index.json: " + err.Error()}
	}
	return index, manifest, nil
}

// layoutImage is the image an index.json entry names: the entry itself, or
// for a multi-platform entry the platform's.
func layoutImage(index v1.ImageIndex, chosen v1.Descriptor, platform inspect.Platform) (v1.Image, error) {
	if chosen.MediaType.IsIndex() {
		child, err := index.ImageIndex(chosen.Digest)
		if err != nil {
			return nil, err
		}
		childManifest, err := child.IndexManifest()
		if err != nil {
			return nil, &inspect.ContentError{Reason: "malformed index: " + err.Error()}
		}
		d, err := inspect.ChoosePlatform(childManifest, platform)
		if err != nil {
			return nil, err
		}
		return child.Image(d.Digest)
	}
	return index.Image(chosen.Digest)
}

// extractArchive unpacks an OCI archive's layout into a staging directory
// (only the layout's own files; it is an archive of blobs, not a rootfs).
func extractArchive(st *store.Store, archivePath string) (string, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return "", &inspect.NotFoundError{Reason: fmt.Sprintf("no OCI archive at %s", archivePath)}
	}
	defer f.Close()
	dir, err := st.TempDir("oci-archive-")
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return dir, nil
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", &inspect.ContentError{Reason: "not a readable OCI archive: " + err.Error()}
		}
		rel := bundleSafe(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || rel == "" || !(rel == "index.json" || rel == "oci-layout" || strings.HasPrefix(rel, "blobs/")) {
			continue
		}
		target := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		out, err := os.Create(target)
		if err == nil {
			_, err = io.Copy(out, tr)
			out.Close()
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
}

// bundleSafe cleans an archive member name to a relative path that cannot
// leave the directory it is extracted into ("" when it would).
func bundleSafe(n string) string {
	clean := filepath.ToSlash(filepath.Clean("/" + n))[1:]
	if strings.Contains(clean, "..") {
		return ""
	}
	return clean
}

func dockerArchiveSource(req inspectRequest) (pull.Source, func(), error) {
	none := func() {}
	if _, err := os.Stat(req.imageName); err != nil {
		return pull.Source{}, none, &inspect.NotFoundError{Reason: fmt.Sprintf("no docker archive at %s", req.imageName)}
	}
	var tag *name.Tag
	if req.imageTag != "" {
		t, err := name.NewTag(req.imageTag)
		if err != nil {
			return pull.Source{}, none, &inspect.NotFoundError{Reason: fmt.Sprintf("%q is not an image reference", req.imageTag)}
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(req.imageName, tag)
	if err != nil {
		if strings.Contains(err.Error(), "tag") || strings.Contains(err.Error(), "multiple images") {
			return pull.Source{}, none, &inspect.NotFoundError{Reason: err.Error()}
		}
		return pull.Source{}, none, &inspect.ContentError{Reason: "not a readable docker archive: " + err.Error()}
	}
	src := pull.Source{Image: img}
	if tag != nil {
		src.Names = []string{displayName(*tag)}
	}
	return src, none, nil
}

// pullFailure maps a failure of pulling onto the catalogue.
func pullFailure(from origin, imageName, tag string, err error) *errcat.Error {
	return imageFailure(opPull, from, err).With("imageName", imageName).With("tag", tag)
}

// ImageSummary is one entry of listImages, shaped like docker's image list.
type ImageSummary struct {
	ID           string   `json:"Id"`
	RepoTags     []string `json:"RepoTags"`
	RepoDigests  []string `json:"RepoDigests"`
	Created      string   `json:"Created"`
	Size         int64    `json:"Size"`
	Architecture string   `json:"Architecture"`
	Os           string   `json:"Os"`
	Layers       int      `json:"Layers"`
}

func summarize(img store.Image) ImageSummary {
	return ImageSummary{ID: img.ID, RepoTags: img.Names, RepoDigests: img.RepoDigests, Created: img.Created,
		Size: img.Size, Architecture: img.Architecture, Os: img.OS, Layers: len(img.Layers)}
}

func (e *Engine) listImages(ctx context.Context, call *Request) (any, error) {
	st, err := e.store(call.Root)
	if err == nil {
		var imgs []store.Image
		if imgs, err = st.Images(); err == nil {
			out := []ImageSummary{}
			for _, img := range imgs {
				out = append(out, summarize(img))
			}
			return out, nil
		}
	}
	return nil, errcat.New("listImages", "StoreFailure", err.Error(), err)
}

// removeImage(ref, {force}) removes an image and the layers only it used.
func (e *Engine) removeImage(ctx context.Context, call *Request) (any, error) {
	const op = "removeImage"
	list, err := positional(call.Args, 2)
	if err != nil {
		return nil, errcat.New(op, "InvalidRemoveImageParameters", err.Error(), nil)
	}
	ref, err := requiredString(list[0], "image")
	if err != nil {
		return nil, errcat.New(op, "InvalidRemoveImageParameters", err.Error(), nil).With("image", ref)
	}
	force := false
	if !isNull(list[1]) {
		opts, err := objectParam(list[1], "options")
		if err == nil {
			force, err = opts.boolean("force", false)
		}
		if err != nil {
			return nil, errcat.New(op, "InvalidRemoveImageParameters", err.Error(), nil).With("image", ref)
		}
	}
	fail := func(class string, err error) error { return errcat.New(op, class, err.Error(), err).With("image", ref) }
	st, err := e.store(call.Root)
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	candidates := imageCandidates(ref)
	img, err := st.FindImage(candidates...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail("ImageNotFoundLocally", err)
	}
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	containers, err := st.Containers()
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	var users []store.Container
	for _, c := range containers {
		if c.ImageID == img.ID {
			users = append(users, c)
		}
	}
	refs := append(append([]string{}, img.Names...), img.RepoDigests...)
	untagged := []string{}
	if named := namedBy(refs, candidates); named != "" {
		// As docker rmi NAME: only that name goes (with the repository's
		// digests when it was the repository's last tag); the image goes
		// only when no name is left.
		if !force && singleReference(refs) && len(users) > 0 {
			return nil, fail("ImageInUse", fmt.Errorf("unable to remove %s (pass force): container %s uses it and the image would be left without a name", named, users[0].Name))
		}
		untagged = untagNames(refs, named)
		if err := st.Untag(img.ID, untagged); err != nil {
			return nil, fail("StoreFailure", err)
		}
		if len(untagged) < len(refs) {
			recordRemoval(call.Root, img.ID, untagged, false)
			return map[string]any{"Untagged": untagged, "Deleted": []string{}}, nil
		}
		force = true // the last name went: the image goes unless a container keeps it
	} else if !force && !singleReference(refs) {
		for _, c := range users {
			if lifecycle.Alive(c) {
				return nil, fail("ImageInUse", fmt.Errorf("container %s is running it", c.Name))
			}
		}
		return nil, fail("ImageHasSeveralNames", fmt.Errorf("%s is named %s; remove one name at a time, or pass force to remove every name", ref, strings.Join(refs, ", ")))
	}
	removed, orphans, err := st.RemoveImage(img.ID, force)
	if errors.Is(err, store.ErrInUse) {
		return nil, fail("ImageInUse", err)
	}
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	deleted := []string{}
	if len(untagged) == 0 {
		untagged = nonNilStrings(img.Names) // a forced removal of an image in use keeps its record and digests
		if removed {
			untagged = refs
		}
	}
	if removed {
		deleted = append(deleted, img.ID)
	}
	for _, l := range orphans {
		deleted = append(deleted, l.ChainID)
	}
	// The files go with the store's collection, now or, while other
	// operations hold the store, when the last of them is done. The image
	// is removed whatever it could not delete: the next collection retries.
	st.Collect()
	recordRemoval(call.Root, img.ID, untagged, removed)
	return map[string]any{"Untagged": untagged, "Deleted": deleted}, nil
}

// namedBy is the image's name (repo:tag or repo@digest) that one of the
// spellings of the caller's reference is, or "" when the caller gave an ID.
func namedBy(refs, candidates []string) string {
	for _, c := range candidates {
		if contains(refs, c) {
			return c
		}
	}
	return ""
}

// repositoryOf is the repository of a repo:tag or repo@digest.
func repositoryOf(ref string) string {
	if repo, _, ok := strings.Cut(ref, "@"); ok {
		return repo
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// singleReference reports whether refs name the image once, as docker
// counts it: one tag at most, and digests only of that tag's repository.
func singleReference(refs []string) bool {
	repos := map[string]bool{}
	tags := 0
	for _, r := range refs {
		repos[repositoryOf(r)] = true
		if !strings.Contains(r, "@") {
			tags++
		}
	}
	return len(refs) > 0 && tags <= 1 && len(repos) == 1
}

// untagNames is what removing the name named takes away, as docker rmi
// does: the name, and when it was its repository's last tag, the image's
// digests in that repository too.
func untagNames(refs []string, named string) []string {
	out := []string{named}
	if strings.Contains(named, "@") {
		return out
	}
	repo := repositoryOf(named)
	for _, r := range refs {
		if r != named && repositoryOf(r) == repo && !strings.Contains(r, "@") {
			return out // another tag of the repository keeps its digests
		}
	}
	for _, r := range refs {
		if strings.Contains(r, "@") && repositoryOf(r) == repo {
			out = append(out, r)
		}
	}
	return out
}
