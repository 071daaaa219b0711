package engine

import (
	"archive/tar"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"syscall"

	kflate "github.com/klauspost/compress/flate"
	"github.com/klauspost/pgzip"

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
	// faultCorrupt is a local file (an archive, a layout's blob, a stored
	// blob) that is cut short or does not decompress.
	faultCorrupt
	faultUnauthorized
	faultUnreachable
)

// origin is where an operation reads an image from. Only a registry's
// failures can be network failures: an unexpected end of a local file is
// a truncated file, never a connection the registry closed.
type origin int

const (
	fromRegistry origin = iota
	// fromLocal is an archive, an OCI layout or the store.
	fromLocal
)

// classifyImageError reads err, met while reading an image from from, as a
// fault, the reason in plain words, and the low-level code where there is one.
func classifyImageError(err error, from origin) (imageFault, string, string) {
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
	if from == fromLocal {
		return classifyLocal(err)
	}
	f := registry.Classify(err)
	fault := map[registry.Kind]imageFault{
		registry.NotFound: faultNotFound, registry.Unauthorized: faultUnauthorized,
		registry.Unreachable: faultUnreachable, registry.BadContent: faultBadContent,
	}[f.Kind]
	return fault, f.Reason, f.Code
}

// classifyLocal reads a failure to read local files.
func classifyLocal(err error) (imageFault, string, string) {
	var stdCorrupt flate.CorruptInputError
	var corrupt kflate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return faultCorrupt, "the file is truncated, it ends in the middle of its data: " + err.Error(), "EOF"
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum),
		errors.Is(err, pgzip.ErrHeader), errors.Is(err, pgzip.ErrChecksum),
		errors.As(err, &stdCorrupt), errors.As(err, &corrupt):
		return faultCorrupt, "the file is corrupt, its compressed data cannot be read: " + err.Error(), ""
	case errors.Is(err, tar.ErrHeader):
		return faultCorrupt, "the file is corrupt, it is not a readable tar: " + err.Error(), ""
	}
	return faultOther, err.Error(), ""
}

// imageClasses names, for each operation that reads images, the class of
// each fault; a fault an operation does not list is its GenericFailure.
// Every class here must be in that operation's catalogue (a test checks).
var imageClasses = map[string]map[imageFault]string{
	opInspect: withRegistry(map[imageFault]string{
		faultBadContent: "InspectImageFailure", faultUnsafe: "InspectImageFailure", faultCorrupt: "InspectImageFailure",
	}),
	opPull: withRegistry(map[imageFault]string{
		faultBadContent: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultUnsafe: "UnsafeImageContent", faultNoSpace: "InsufficientDiskSpaceForPull", faultStore: "StoreFailure",
	}),
	opCopy: withRegistry(map[imageFault]string{
		faultBadContent: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultUnsafe: "CopyImageFailure", faultNoSpace: "CopyImageFailure", faultStore: "CopyImageFailure",
	}),
	// An archive is local: it has no registry faults.
	opLoad: {
		faultAborted: "AbortError", faultNotFound: "InvalidArchive", faultCorrupt: "InvalidArchive",
		faultBadContent: "LayerVerificationFailure", faultUnsafe: "UnsafeImageContent",
		faultNoSpace: "InsufficientDiskSpaceForLoad", faultStore: "StoreFailure",
	},
	opSave: withRegistry(map[imageFault]string{
		faultBadContent: "LayerVerificationFailure", faultUnsafe: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultNoSpace: "InsufficientDiskSpaceForSave", faultStore: "StoreFailure",
	}),
	// An imported tar is local too.
	opImport: {
		faultAborted: "AbortError", faultBadContent: "InvalidImportArchive", faultCorrupt: "InvalidImportArchive",
		faultUnsafe: "UnsafeImageContent", faultNoSpace: "InsufficientDiskSpaceForImport", faultStore: "StoreFailure",
	},
	opPush: withRegistry(map[imageFault]string{
		faultNotFound: "PushImageFailure", faultBadContent: "PushImageFailure", faultCorrupt: "PushImageFailure",
		faultStore: "StoreFailure",
	}),
}

// withRegistry adds the classes every operation that talks to a registry
// documents for its faults.
func withRegistry(classes map[imageFault]string) map[imageFault]string {
	out := map[imageFault]string{
		faultAborted: "AbortError", faultNotFound: "ImageNotFoundInRegistry",
		faultUnauthorized: "RegistryAuthenticationFailure", faultUnreachable: "RegistryConnectionFailure",
	}
	for k, v := range classes {
		out[k] = v
	}
	return out
}

// imageFailure maps err, met while op read an image from from, onto op's
// catalogue; an error already catalogued passes through.
func imageFailure(op string, from origin, err error) *errcat.Error {
	var cerr *errcat.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	fault, reason, code := classifyImageError(err, from)
	class, ok := imageClasses[op][fault]
	if !ok {
		class = errcat.Generic
	}
	e := errcat.New(op, class, reason, err)
	e.CauseCode = code
	return e
}

// origin is where req's transport reads the image: only "docker" is a registry.
func (req inspectRequest) origin() origin {
	if req.transport == "docker" {
		return fromRegistry
	}
	return fromLocal
}
