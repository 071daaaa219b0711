package engine

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/imagetar"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
)

// imageFault is what went wrong while reading an image, whichever operation
// was reading it; each operation names the faults with its own classes.
type imageFault int

const (
	faultOther imageFault = iota
	faultAborted
	faultNoSpace
	faultStore
	faultNotFound
	faultUnsafe
	faultBadContent
	faultUnauthorized
	faultUnreachable
)

// classifyImageError reads err as a fault, the reason in plain words, and
// the low-level code where there is one.
func classifyImageError(err error) (imageFault, string, string) {
	var notFound *inspect.NotFoundError
	var noPlatform *inspect.PlatformNotFoundError
	var badInspect *inspect.ContentError
	var badPull *pull.ContentError
	var mismatch *content.DigestMismatchError
	var badArchive *imagetar.ContentError
	switch {
	case errors.Is(err, context.Canceled):
		return faultAborted, "the operation was aborted", ""
	case errors.Is(err, syscall.ENOSPC):
		return faultNoSpace, "No space left on device (ENOSPC)", "ENOSPC"
	case errors.Is(err, store.ErrDatabase), errors.Is(err, fs.ErrPermission):
		return faultStore, err.Error(), ""
	case errors.As(err, &notFound), errors.As(err, &noPlatform):
		return faultNotFound, err.Error(), ""
	case errors.Is(err, layer.ErrUnsafePath), errors.Is(err, layer.ErrLimit):
		return faultUnsafe, err.Error(), ""
	case errors.As(err, &badInspect), errors.As(err, &badPull), errors.As(err, &mismatch), errors.As(err, &badArchive):
		return faultBadContent, err.Error(), ""
	}
	f := registry.Classify(err)
	fault := map[registry.Kind]imageFault{
		registry.NotFound: faultNotFound, registry.Unauthorized: faultUnauthorized,
		registry.Unreachable: faultUnreachable, registry.BadContent: faultBadContent,
	}[f.Kind]
	return fault, f.Reason, f.Code
}

// The classes each operation documents for the faults.
var (
	registryClasses = map[imageFault]string{
		faultAborted: "AbortError", faultNotFound: "ImageNotFoundInRegistry",
		faultUnauthorized: "RegistryAuthenticationFailure", faultUnreachable: "RegistryConnectionFailure",
	}
	inspectClasses = withClasses(registryClasses, map[imageFault]string{faultBadContent: "InspectImageFailure", faultUnsafe: "InspectImageFailure"})
	pullClasses    = withClasses(registryClasses, map[imageFault]string{faultBadContent: "LayerVerificationFailure",
		faultUnsafe: "UnsafeImageContent", faultNoSpace: "InsufficientDiskSpaceForPull", faultStore: "StoreFailure"})
	copyClasses = withClasses(registryClasses, map[imageFault]string{faultBadContent: "LayerVerificationFailure",
		faultUnsafe: "CopyImageFailure", faultNoSpace: "CopyImageFailure", faultStore: "CopyImageFailure"})
)

func withClasses(base, extra map[imageFault]string) map[imageFault]string {
	out := map[imageFault]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// imageFailure maps err onto op's catalogue; an error already catalogued
// passes through.
func imageFailure(op string, classes map[imageFault]string, err error) *errcat.Error {
	var cerr *errcat.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	fault, reason, code := classifyImageError(err)
	class, ok := classes[fault]
	if !ok {
		class = errcat.Generic
	}
	e := errcat.New(op, class, reason, err)
	e.CauseCode = code
	return e
}
