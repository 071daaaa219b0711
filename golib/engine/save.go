package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/imagetar"
	"github.com/k3-core/k3-core/golib/outfile"
	"github.com/k3-core/k3-core/golib/store"
)

const opSave = "saveImage"

// registryOptionKeys are the saveImage options that reach the registry,
// read by the same rules as inspectAnImage's postData.
var registryOptionKeys = []string{"credentials", "tlsVerify", "os", "architecture", "variant", "timeout"}

// saveImage(refs, filePath, {format, dockerVersion, source, durable, ...})
// writes images as one archive, atomically: `docker save` byte for byte
// (format docker-archive, the default) or an OCI archive, from the store
// (as docker save) or straight from a registry with nothing stored (as
// skopeo copy docker://... docker-archive:...).
func (e *Engine) saveImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 3)
	if err != nil {
		return nil, errcat.New(opSave, "InvalidSaveImageParameters", err.Error(), nil)
	}
	refs, refsErr := saveRefs(list[0])
	target, reason := outputParam(list[1])
	filePath := target.shown()
	details := func(err *errcat.Error) *errcat.Error {
		return err.With("images", refs).With("filePath", filePath)
	}
	invalid := func(reason string) error {
		return details(errcat.New(opSave, "InvalidSaveImageParameters", reason, nil))
	}
	if refsErr != nil {
		return nil, invalid(refsErr.Error())
	}
	for _, ref := range refs {
		if reason := checkStoreRef(ref); reason != "" {
			return nil, invalid(reason)
		}
	}
	if reason != "" {
		return nil, invalid(reason)
	}
	opts := imagetar.Options{StagingDir: stagingDir(target), Progress: func(ev imagetar.Event) { call.Emit(ev) }}
	source, durable := "store", false
	var registryOptions map[string]json.RawMessage
	if !isNull(list[2]) {
		p, err := objectParam(list[2], "options")
		if err != nil {
			return nil, invalid(err.Error())
		}
		format, _, err1 := p.str("format")
		version, _, err2 := p.str("dockerVersion")
		src, _, err3 := p.str("source")
		durableOpt, err4 := p.boolean("durable", false)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, invalid(err.Error())
		}
		opts.Format, opts.DockerVersion, durable = imagetar.Format(format), version, durableOpt
		if src != "" {
			source = src
		}
		registryOptions = map[string]json.RawMessage{}
		for _, key := range registryOptionKeys {
			if v, ok := p.raw[key]; ok {
				registryOptions[key] = v
			}
		}
	}
	switch {
	case opts.Format != "" && opts.Format != imagetar.DockerArchive && opts.Format != imagetar.OCIArchive:
		return nil, invalid(fmt.Sprintf("options.format %q is not docker-archive or oci-archive", opts.Format))
	case source != "store" && source != "registry":
		return nil, invalid(fmt.Sprintf("options.source %q is not store or registry", source))
	case source == "store" && len(registryOptions) > 0:
		return nil, invalid("registry options (credentials, tlsVerify, platform, timeout) need options.source 'registry'")
	}
	if _, err := imagetar.ParseDockerVersion(opts.DockerVersion); err != nil {
		return nil, invalid("options." + err.Error())
	}

	var images []imagetar.Image
	from := fromLocal
	if source == "registry" {
		from = fromRegistry
		// Every name is checked before any network; the timeout (the same
		// option for all) covers the whole save, layers included.
		reqs, reason := saveRegistryRequests(refs, registryOptions)
		if reason != "" {
			return nil, invalid(reason)
		}
		if timeout := reqs[0].timeout; timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		images, err = e.registryImages(ctx, reqs)
	} else {
		// Held before the images are found, so their blobs stay until written.
		var hold *store.Hold
		if _, hold, err = e.heldStore(call.Root); err == nil {
			defer hold.Release()
			images, err = e.storeImages(call.Root, refs)
		}
	}
	if err != nil {
		var cerr *errcat.Error
		if errors.As(err, &cerr) {
			return nil, details(cerr)
		}
		return nil, details(imageFailure(opSave, from, err))
	}

	newErr := func(class, reason string, cause error) *errcat.Error {
		return details(errcat.New(opSave, class, reason, cause))
	}
	out, err := target.create(ctx, durable)
	if err != nil {
		return nil, outputFailure(opSave, newErr, err, filePath, -1)
	}
	saved, err := imagetar.Write(ctx, out.Writer(), images, opts)
	if err == nil {
		err = out.Commit()
	} else {
		out.Abort()
	}
	if err != nil {
		if fault, _, _ := classifyImageError(err, from); fault != faultOther && fault != faultNoSpace && fault != faultStore && fault != faultAborted {
			return nil, details(imageFailure(opSave, from, err))
		}
		return nil, outputFailure(opSave, newErr, err, filePath, -1)
	}
	format := opts.Format
	if format == "" {
		format = imagetar.DockerArchive
	}
	for _, image := range saved {
		recordImageEvent(call.Root, "save", image.ID, strings.Join(image.RepoTags, ", "))
	}
	return map[string]any{"Path": filePath, "Format": format, "Images": saved}, nil
}

// stagingDir is where layers wait while the archive is written: beside the
// output, on the disk that must hold it anyway, unless the output is a
// device, a FIFO or a Writable, whose directory (often /dev, a small tmpfs)
// is no place for them.
func stagingDir(target output) string {
	if target.socket || outfile.IsStream(target.path) {
		return os.TempDir()
	}
	return filepath.Dir(target.path)
}

// saveRefs reads the images argument: one name or a non-empty list of them.
func saveRefs(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if strings.TrimSpace(one) == "" {
			return nil, errors.New("images is required")
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || isNull(raw) {
		return nil, errors.New("images must be an image name or an array of image names")
	}
	if len(many) == 0 {
		return nil, errors.New("images must name at least one image")
	}
	for _, r := range many {
		if strings.TrimSpace(r) == "" {
			return nil, errors.New("images must not contain empty names")
		}
	}
	return many, nil
}

// storeImages resolves refs as docker save does: name:tag saves that tag,
// a bare repository name every tag of it, an ID or a digest the image
// without names. The same image named twice is saved once.
func (e *Engine) storeImages(root string, refs []string) ([]imagetar.Image, error) {
	st, err := e.store(root)
	if err != nil {
		return nil, errcat.New(opSave, "StoreFailure", err.Error(), err)
	}
	var out []imagetar.Image
	for _, ref := range refs {
		found, err := findForSave(st, ref)
		if err != nil {
			return nil, err
		}
		for _, f := range found {
			img, err := imagesrc.StoredImage(st, f.image)
			if err != nil {
				return nil, err
			}
			out = append(out, imagetar.Image{Image: img, Tags: f.tags, Parent: f.image.Parent})
		}
	}
	return out, nil
}

type foundImage struct {
	image store.Image
	tags  []name.Tag
}

func findForSave(st *store.Store, ref string) ([]foundImage, error) {
	notFound := func(err error) error {
		return errcat.New(opSave, "ImageNotFoundLocally", fmt.Sprintf("no image %s in the local store", ref), err).With("image", ref)
	}
	parsed, parseErr := name.ParseReference(ref)
	byID := namesAnID(ref)
	if tag, ok := parsed.(name.Tag); ok && parseErr == nil && !byID && !hasExplicitTag(ref) {
		// A bare repository name: every tag of it, as docker save does.
		repo := dockerName(tag)
		all, err := st.Images()
		if err != nil {
			return nil, err
		}
		var found []foundImage
		for _, img := range all {
			var tags []name.Tag
			for _, n := range img.Names {
				if t, err := name.NewTag(n); err == nil && dockerName(t) == repo {
					tags = append(tags, t)
				}
			}
			if len(tags) > 0 {
				found = append(found, foundImage{image: img, tags: sortedTags(tags)})
			}
		}
		if len(found) > 0 {
			return found, nil
		}
	}
	img, err := st.FindImage(imageCandidates(ref)...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(err)
	}
	if err != nil {
		return nil, err
	}
	found := foundImage{image: img}
	if tag, ok := parsed.(name.Tag); ok && parseErr == nil && !byID && hasExplicitTag(ref) {
		found.tags = []name.Tag{tag}
	}
	return []foundImage{found}, nil
}

// namesAnID reports whether docker save reads ref as an image ID, which
// saves the image without names: 64 hex digits, or "sha256:" and an ID or
// a prefix of one (which would otherwise parse as repository "sha256").
func namesAnID(ref string) bool {
	hex, prefixed := strings.CutPrefix(ref, "sha256:")
	return hex != "" && strings.Trim(hex, "0123456789abcdef") == "" && (prefixed || len(hex) == 64)
}

// hasExplicitTag tells "alpine:3.19" from "alpine" (which means every tag)
// and "127.0.0.1:5000/app" (a port, not a tag).
func hasExplicitTag(ref string) bool {
	if strings.Contains(ref, "@") {
		return false
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}

func sortedTags(tags []name.Tag) []name.Tag {
	sort.Slice(tags, func(i, j int) bool { return tags[i].String() < tags[j].String() })
	return tags
}

// registryImages reads each image from its registry, nothing stored; the
// layers are fetched later, while the archive is written, under ctx.
func (e *Engine) registryImages(ctx context.Context, reqs []inspectRequest) ([]imagetar.Image, error) {
	var out []imagetar.Image
	for _, req := range reqs {
		src, done, err := e.sourceImage(ctx, req)
		if err != nil {
			return nil, err
		}
		done()
		img := imagetar.Image{Image: src.Image}
		for _, n := range src.Names {
			if tag, err := name.NewTag(n); err == nil {
				img.Tags = append(img.Tags, tag)
			}
		}
		out = append(out, img)
	}
	return out, nil
}

// saveRegistryRequests reads each ref with the registry options by
// inspectAnImage's rules, or returns why one cannot be read.
func saveRegistryRequests(refs []string, options map[string]json.RawMessage) ([]inspectRequest, string) {
	var reqs []inspectRequest
	for _, ref := range refs {
		postData := map[string]json.RawMessage{"imageName": jsonString(ref)}
		for k, v := range options {
			postData[k] = v
		}
		raw, _ := json.Marshal(postData)
		req, _, reason := parseImageRequest(jsonString(ref), raw, "options")
		if reason != "" {
			return nil, reason
		}
		reqs = append(reqs, req)
	}
	return reqs, ""
}
