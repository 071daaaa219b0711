package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
)

const opPull = "pullAnImage"

// displayName and dockerName spell references as docker does; package
// imagesrc owns the rules.
var (
	displayName = imagesrc.DisplayName
	dockerName  = imagesrc.DockerName
)

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
	src, done, err := e.sourceImage(ctx, req)
	if err == nil {
		defer done()
		var result pull.Result
		result, err = pull.Into(ctx, st, pull.Source(src), pull.Options{Progress: func(ev pull.Event) { call.Emit(ev) }})
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

// openImage opens the image req names in its transport.
func (e *Engine) openImage(req inspectRequest) (*imagesrc.Source, error) {
	loc := imagesrc.Location{Transport: req.transport, Path: req.imageName, RefName: req.imageTag}
	if req.transport == "docker" {
		client, err := e.registries.Client(req.registryOptions())
		if err != nil {
			return nil, err
		}
		if loc.Ref, err = req.reference(client.ParseOptions()); err != nil {
			return nil, &referenceError{err}
		}
		loc.Client = client
	}
	return imagesrc.Open(loc)
}

// referenceError is an imageName and imageTag that make no reference.
type referenceError struct{ error }

// forgetRefused drops the registry client of req when err says the
// registry refused its credentials, so that the next call logs in again.
func (e *Engine) forgetRefused(req inspectRequest, err error) {
	if err != nil && req.transport == "docker" && registry.Classify(err).Kind == registry.Unauthorized {
		e.registries.Forget(req.registryOptions())
	}
}

// sourceImage opens the image req names for a pull, a copy or a save;
// done releases it once the image has been read.
func (e *Engine) sourceImage(ctx context.Context, req inspectRequest) (img imagesrc.Image, done func(), err error) {
	src, err := e.openImage(req)
	if err != nil {
		return imagesrc.Image{}, nil, err
	}
	if img, err = src.Image(ctx, req.platform); err != nil {
		src.Close()
		e.forgetRefused(req, err)
		return imagesrc.Image{}, nil, err
	}
	return img, func() { src.Close() }, nil
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
