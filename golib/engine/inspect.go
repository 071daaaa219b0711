package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagesrc"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/registry"
)

const opInspect = "inspectAnImage"

// inspectRequest is inspectAnImage's arguments once validated.
type inspectRequest struct {
	imageName   string
	imageTag    string
	transport   string
	credentials registry.Credentials
	platform    inspect.Platform
	tlsVerify   bool
	listTags    bool
	timeout     time.Duration
}

var (
	// The characters a docker reference may hold at all; finer rules are
	// go-containerregistry's.
	referenceChars = regexp.MustCompile(`^[a-zA-Z0-9._/:@-]+$`)
	tagPattern     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	platformWord   = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)
	// The transports an image is read from; inspect also reads this store.
	sourceTransports  = imagesrc.Transports
	inspectTransports = append(slices.Clone(imagesrc.Transports), "k3")
)

func invalidInspect(imageName, reason string) *errcat.Error {
	return errcat.New(opInspect, "InvalidInspectParameters", reason, nil).With("imageName", imageName)
}

func parseInspectRequest(args json.RawMessage) (inspectRequest, *errcat.Error) {
	list, err := positional(args, 2)
	if err != nil {
		return inspectRequest{}, invalidInspect("", err.Error())
	}
	req, imageName, reason := parseRequest(list[0], list[1], "postData", inspectTransports)
	if reason != "" {
		return inspectRequest{}, invalidInspect(imageName, reason)
	}
	return req, nil
}

// parseImageRequest validates an image name and the options that go with
// it for an operation that reads the image from one of sourceTransports
// (pull, copy, push's destination, save from a registry); what is wrong
// comes back as a reason for the caller's own error class, with the image
// name as far as it could be read.
func parseImageRequest(nameRaw, optionsRaw json.RawMessage, optionsName string) (inspectRequest, string, string) {
	return parseRequest(nameRaw, optionsRaw, optionsName, sourceTransports)
}

// parseRequest is parseImageRequest for an operation that takes the given
// transports.
func parseRequest(nameRaw, optionsRaw json.RawMessage, optionsName string, transports []string) (inspectRequest, string, string) {
	imageName, present, err := stringParam(nameRaw, "imageName")
	if err != nil || !present || strings.TrimSpace(imageName) == "" {
		if err == nil {
			err = errors.New("Image name is required")
		}
		return inspectRequest{}, "", err.Error()
	}
	req := inspectRequest{imageName: imageName, transport: "docker", tlsVerify: true}
	fail := func(reason string) (inspectRequest, string, string) { return inspectRequest{}, imageName, reason }

	postData, err := objectParam(optionsRaw, optionsName)
	if err != nil {
		return fail(err.Error())
	}
	if _, ok := postData.raw["signal"]; ok {
		return fail(postData.field("signal") + " must be an AbortSignal")
	}
	postName, present, err := postData.str("imageName")
	if err != nil {
		return fail(err.Error())
	}
	if !present || postName == "" {
		return fail("postData.imageName is required")
	}
	if t, _, err := postData.str("containerImageTransport"); err != nil {
		return fail(err.Error())
	} else if t != "" {
		req.transport = t
	}
	if !contains(transports, req.transport) {
		reason := fmt.Sprintf("unknown transport %q", req.transport)
		if contains(inspectTransports, req.transport) {
			reason = fmt.Sprintf("the %s transport (this store) is only for inspectAnImage", req.transport)
		}
		return fail(fmt.Sprintf("%s; use one of %s", reason, strings.Join(transports, ", ")))
	}
	if req.imageTag, _, err = postData.str("imageTag"); err != nil {
		return fail(err.Error())
	}
	if req.transport == "docker" || req.transport == "k3" {
		if reason := checkDockerName(imageName); reason != "" {
			return fail(reason)
		}
		if reason := checkSameRepository(imageName, postName); reason != "" {
			return fail(reason)
		}
		if req.imageTag != "" && !tagPattern.MatchString(req.imageTag) && !isDigest(req.imageTag) {
			return fail("Image tag contains invalid characters")
		}
	} else {
		if strings.ContainsAny(imageName, "\x00\n\r") {
			return fail("Image path contains invalid characters")
		}
		if postName != imageName {
			return fail(fmt.Sprintf("postData.imageName (%s) does not match imageName (%s)", postName, imageName))
		}
	}
	if req.credentials, err = parseCredentials(postData); err != nil {
		return fail(err.Error())
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"os", &req.platform.OS}, {"architecture", &req.platform.Architecture}, {"variant", &req.platform.Variant}} {
		v, present, err := postData.str(f.key)
		if err == nil && present && !platformWord.MatchString(v) {
			err = fmt.Errorf("%s contains invalid characters", postData.field(f.key))
		}
		if err != nil {
			return fail(err.Error())
		}
		*f.dst = v
	}
	req.platform = req.platform.Normalize()
	if req.tlsVerify, err = postData.boolean("tlsVerify", true); err != nil {
		return fail(err.Error())
	}
	if req.listTags, err = postData.boolean("listTags", false); err != nil {
		return fail(err.Error())
	}
	ms, present, err := postData.millis("timeout")
	if err != nil {
		return fail(err.Error())
	}
	if present {
		req.timeout = time.Duration(ms * float64(time.Millisecond))
	}
	return req, imageName, ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isDigest(s string) bool {
	_, err := digest.Parse(s)
	return err == nil
}

// checkDockerName explains what is wrong with a registry image name, in the
// words the documents use, or returns "".
func checkDockerName(imageName string) string {
	if !referenceChars.MatchString(imageName) {
		return "Image name contains invalid characters"
	}
	if at := strings.Index(imageName, "@"); at >= 0 && !isDigest(imageName[at+1:]) {
		return "Image name contains invalid characters"
	}
	path := repositoryPart(imageName)
	if first, rest, found := strings.Cut(path, "/"); found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		path = rest // a registry host may have capitals; the repository path may not
	}
	if path != strings.ToLower(path) {
		return "Image name must be lowercase"
	}
	if _, err := name.ParseReference(imageName); err != nil {
		return "Invalid image name: " + err.Error()
	}
	// Docker's own grammar: go-containerregistry lets through names such
	// as ../../etc, which would then be sent to a "registry" named "..".
	if _, err := reference.ParseNormalizedNamed(imageName); err != nil {
		return "Invalid image name: " + err.Error()
	}
	return ""
}

// checkStoreRef explains why ref can name no store image, as docker
// refuses it ("invalid reference format"), or returns "". IDs and ID
// prefixes pass: they are references too.
func checkStoreRef(ref string) string {
	if _, err := reference.ParseAnyReference(ref); err != nil {
		return "Invalid image reference: " + err.Error()
	}
	return ""
}

// repositoryPart strips a tag and digest from an image name.
func repositoryPart(imageName string) string {
	if at := strings.Index(imageName, "@"); at >= 0 {
		imageName = imageName[:at]
	}
	if colon := strings.LastIndex(imageName, ":"); colon > strings.LastIndex(imageName, "/") {
		imageName = imageName[:colon]
	}
	return imageName
}

func checkSameRepository(imageName, postName string) string {
	if postName == imageName {
		return ""
	}
	if reason := checkDockerName(postName); reason != "" {
		return "postData.imageName: " + reason
	}
	a, errA := name.NewRepository(repositoryPart(imageName))
	b, errB := name.NewRepository(repositoryPart(postName))
	if errA != nil || errB != nil || a.Name() != b.Name() {
		return fmt.Sprintf("postData.imageName (%s) does not match imageName (%s)", postName, imageName)
	}
	return ""
}

func parseCredentials(postData params) (registry.Credentials, error) {
	var c registry.Credentials
	obj, present, err := postData.object("credentials")
	if err != nil || !present {
		return c, err
	}
	bad := errors.New(postData.field("credentials") + " must be {username, password} or {registryToken}")
	var uOK, pOK, tOK bool
	if c.Username, uOK, err = obj.str("username"); err != nil {
		return c, bad
	}
	if c.Password, pOK, err = obj.str("password"); err != nil {
		return c, bad
	}
	if c.RegistryToken, tOK, err = obj.str("registryToken"); err != nil {
		return c, bad
	}
	if !(uOK && pOK && c.Username != "") && !(tOK && c.RegistryToken != "") {
		return c, bad
	}
	return c, nil
}

// reference combines imageName with imageTag the way docker does: a digest
// wins over a tag, and a tag in the name and a different imageTag conflict.
func (req inspectRequest) reference(opts []name.Option) (name.Reference, error) {
	repo := repositoryPart(req.imageName)
	nameDigest, nameTag := "", ""
	if at := strings.Index(req.imageName, "@"); at >= 0 {
		nameDigest = req.imageName[at+1:]
	}
	if rest := strings.TrimPrefix(req.imageName, repo); strings.HasPrefix(rest, ":") {
		nameTag = strings.SplitN(rest[1:], "@", 2)[0]
	}
	tag := req.imageTag
	switch {
	case nameDigest != "" && isDigest(tag) && tag != nameDigest:
		return nil, fmt.Errorf("imageTag %s does not match the digest in imageName", tag)
	case nameDigest != "":
		return name.NewDigest(repo+"@"+nameDigest, opts...)
	case isDigest(tag):
		return name.NewDigest(repo+"@"+tag, opts...)
	case nameTag != "" && tag != "" && tag != nameTag:
		return nil, fmt.Errorf("imageTag %s does not match the tag in imageName (%s)", tag, nameTag)
	case tag == "":
		tag = nameTag
	}
	if tag == "" {
		tag = "latest"
	}
	return name.NewTag(repo+":"+tag, opts...)
}

func (e *Engine) inspectAnImage(ctx context.Context, call *Request) (any, error) {
	req, verr := parseInspectRequest(call.Args)
	if verr != nil {
		return nil, verr
	}
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	out, err := e.inspectByTransport(ctx, req, call.Root)
	if err != nil {
		var cerr *errcat.Error
		if errors.As(err, &cerr) {
			return nil, cerr
		}
		return nil, inspectFailure(req, err)
	}
	return out, nil
}

func (e *Engine) inspectByTransport(ctx context.Context, req inspectRequest, root string) (inspect.Output, error) {
	if req.transport == "k3" {
		return e.inspectStored(ctx, req, root)
	}
	src, err := e.openImage(req)
	var badRef *referenceError
	if errors.As(err, &badRef) {
		return inspect.Output{}, invalidInspect(req.imageName, err.Error())
	}
	if err != nil {
		return inspect.Output{}, err
	}
	defer src.Close()
	out, err := src.Inspect(ctx, e.inspector, req.platform)
	if err == nil && req.listTags && req.transport == "docker" {
		out.RepoTags, err = src.Tags(ctx)
	}
	e.forgetRefused(req, err)
	return out, err
}

// registryOptions is how req reaches its registry.
func (req inspectRequest) registryOptions() registry.Options {
	return registry.Options{Credentials: req.credentials, Insecure: !req.tlsVerify}
}

// inspectFailure maps a failure of inspection onto the catalogue.
func inspectFailure(req inspectRequest, err error) *errcat.Error {
	return imageFailure(opInspect, req.origin(), err).With("imageName", req.imageName)
}
