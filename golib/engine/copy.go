package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/k3-core/k3-core/golib/errcat"
)

const opCopy = "copyImage"

// copyImage(imageName, tag, layoutDir, options) copies an image, as
// `skopeo copy docker://... oci:DIR:TAG` does, into an OCI layout directory
// without unpacking it: blobs stream straight to disk, verified, in parallel.
func (e *Engine) copyImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 4)
	if err != nil {
		return nil, errcat.New(opCopy, "InvalidCopyImageParameters", err.Error(), nil)
	}
	imageName, _, _ := stringParam(list[0], "imageName")
	tag, _, terr := stringParam(list[1], "tag")
	dest, _, derr := stringParam(list[2], "destination")
	invalid := func(reason string) error {
		return errcat.New(opCopy, "InvalidCopyImageParameters", reason, nil).With("imageName", imageName).With("destination", dest)
	}
	if err := errors.Join(terr, derr); err != nil {
		return nil, invalid(err.Error())
	}
	if dest == "" || !filepath.IsAbs(dest) {
		return nil, invalid("destination must be an absolute directory path")
	}
	options := map[string]json.RawMessage{}
	if !isNull(list[3]) && json.Unmarshal(list[3], &options) != nil {
		return nil, invalid("options must be an object")
	}
	destTag, _, err := stringParam(options["destinationTag"], "options.destinationTag")
	if err != nil {
		return nil, invalid(err.Error())
	}
	delete(options, "destinationTag")
	options["imageName"] = list[0]
	if tag != "" {
		options["imageTag"] = list[1]
	}
	postData, _ := json.Marshal(options)
	req, _, reason := parseImageRequest(list[0], postData, "options")
	if reason != "" {
		return nil, invalid(reason)
	}
	if destTag == "" {
		destTag = tag
	}
	src, done, err := e.sourceImage(ctx, req)
	if err != nil {
		return nil, copyFailure(req.origin(), imageName, dest, err)
	}
	defer done()
	path, err := layout.FromPath(dest)
	if err != nil {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return nil, copyFailure(fromLocal, imageName, dest, err)
		}
		if path, err = layout.Write(dest, empty.Index); err != nil {
			return nil, copyFailure(fromLocal, imageName, dest, err)
		}
	}
	var opts []layout.Option
	if destTag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{imagespec.AnnotationRefName: destTag}))
	}
	if err := path.ReplaceImage(src.Image, matchRefName(destTag), opts...); err != nil {
		return nil, copyFailure(req.origin(), imageName, dest, err)
	}
	digest, err := src.Image.Digest()
	if err != nil {
		return nil, copyFailure(req.origin(), imageName, dest, err)
	}
	return map[string]any{"Digest": digest.String(), "Destination": dest, "Tag": destTag}, nil
}

// copyFailure maps a failure of copying onto the catalogue.
func copyFailure(from origin, imageName, dest string, err error) error {
	return imageFailure(opCopy, from, err).With("imageName", imageName).With("destination", dest)
}

// matchRefName selects the index.json entries a new image named refName
// replaces; without a name it replaces nothing and is added.
func matchRefName(refName string) match.Matcher {
	if refName == "" {
		return func(v1.Descriptor) bool { return false }
	}
	return match.Annotation(imagespec.AnnotationRefName, refName)
}
