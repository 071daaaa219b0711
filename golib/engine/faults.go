package engine

import (
	"archive/tar"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
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
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/outfile"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/userns"
)

// fault is what went wrong, in the engine's own words, whichever
// operation met it; each operation names the faults it documents with
// classes of its own catalogue (faultClasses). Three readers turn errors
// into faults, by what the operation was doing: reading an image
// (classifyImageError), writing an output file (classifyOutputError) and
// running the OCI runtime (classifyRuntimeError).
type fault int

const (
	faultOther fault = iota
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

	// Writing an output file.
	faultUnusableOutput // a path outfile refuses to write (a directory, ...)
	faultReadOnly
	faultDenied
	faultIO
	faultWriteFailed // any other failure to write the output

	// Running the OCI runtime.
	faultRuntimeMissing      // no runc or crun on the host
	faultRuntimeNotPermitted // the host does not let this process run containers
	faultRuntimeFailed       // the runtime ran and failed
	faultBundleMissing       // the container's bundle directory is gone
	faultGone                // the container was removed meanwhile
	faultNotRunning          // the change needs a running container
	faultNotPaused           // the change needs a paused container
	faultHasProcess          // the change needs a container with no process
	faultStateChanged        // the state was not the one the change expected
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
func classifyImageError(err error, from origin) (fault, string, string) {
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
	r := registry.Classify(err)
	f := map[registry.Kind]fault{
		registry.NotFound: faultNotFound, registry.Unauthorized: faultUnauthorized,
		registry.Unreachable: faultUnreachable, registry.BadContent: faultBadContent,
	}[r.Kind]
	return f, r.Reason, r.Code
}

// classifyLocal reads a failure to read local files.
func classifyLocal(err error) (fault, string, string) {
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

// faultClasses names, for each operation, the class of each fault it
// documents; a fault an operation does not list is its GenericFailure.
// Every class here must be in that operation's catalogue (a test checks).
var faultClasses = map[string]map[fault]string{
	opInspect: withRegistry(map[fault]string{
		faultBadContent: "InspectImageFailure", faultUnsafe: "InspectImageFailure", faultCorrupt: "InspectImageFailure",
	}),
	opPull: withRegistry(map[fault]string{
		faultBadContent: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultUnsafe: "UnsafeImageContent", faultNoSpace: "InsufficientDiskSpaceForPull", faultStore: "StoreFailure",
	}),
	opCopy: withRegistry(map[fault]string{
		faultBadContent: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultUnsafe: "CopyImageFailure", faultNoSpace: "CopyImageFailure", faultStore: "CopyImageFailure",
	}),
	// An archive is local: it has no registry faults.
	opLoad: {
		faultAborted: "AbortError", faultNotFound: "InvalidArchive", faultCorrupt: "InvalidArchive",
		faultBadContent: "LayerVerificationFailure", faultUnsafe: "UnsafeImageContent",
		faultNoSpace: "InsufficientDiskSpaceForLoad", faultStore: "StoreFailure",
	},
	// save reads images and writes its output.
	opSave: withRegistry(map[fault]string{
		faultBadContent: "LayerVerificationFailure", faultUnsafe: "LayerVerificationFailure", faultCorrupt: "LayerVerificationFailure",
		faultNoSpace: "InsufficientDiskSpaceForSave", faultStore: "StoreFailure",
		faultUnusableOutput: "InvalidSaveImageParameters", faultReadOnly: "ReadOnlyFileSystem",
		faultDenied: "SaveImagePermissionDenied", faultIO: "SaveImageIOFailure", faultWriteFailed: "SaveImageFailure",
	}),
	// An imported tar is local too.
	opImport: {
		faultAborted: "AbortError", faultBadContent: "InvalidImportArchive", faultCorrupt: "InvalidImportArchive",
		faultUnsafe: "UnsafeImageContent", faultNoSpace: "InsufficientDiskSpaceForImport", faultStore: "StoreFailure",
	},
	opPush: withRegistry(map[fault]string{
		faultNotFound: "PushImageFailure", faultBadContent: "PushImageFailure", faultCorrupt: "PushImageFailure",
		faultStore: "StoreFailure",
	}),
	opExport: {
		faultAborted: "AbortError", faultUnusableOutput: "InvalidExportContainerParameters",
		faultNoSpace: "InsufficientDiskSpaceForExport", faultReadOnly: "ReadOnlyFileSystem",
		faultDenied: "ExportContainerPermissionDenied", faultIO: "ExportContainerIOFailure", faultWriteFailed: "ExportContainerFailure",
	},
	"startContainer":   runtimeRow(nil),
	"stopContainer":    runtimeRow(nil),
	"killContainer":    runtimeRow(map[fault]string{faultNotRunning: "ContainerNotRunning"}),
	"waitContainer":    runtimeRow(map[fault]string{faultStateChanged: ""}), // wait changes no state
	"restartContainer": runtimeRow(nil),
	"pauseContainer":   runtimeRow(map[fault]string{faultNotRunning: "ContainerNotRunning"}),
	"unpauseContainer": runtimeRow(map[fault]string{faultNotPaused: "ContainerNotPaused"}),
	"execContainer":    runtimeRow(map[fault]string{faultStateChanged: ""}), // exec changes no state
	// removeContainer stops a running container only when forced, and
	// documents fewer classes for it.
	"removeContainer": {
		faultAborted: "AbortError", faultRuntimeMissing: "RuntimeFailure", faultRuntimeNotPermitted: "RuntimeFailure",
		faultRuntimeFailed: "RuntimeFailure", faultBundleMissing: "RemoveContainerFailure", faultStore: "ResolveContainerName",
		faultGone: "ContainerNotFound", faultHasProcess: "ContainerIsRunning", faultStateChanged: "ContainerStateChanged",
	},
}

// withRegistry adds the classes every operation that talks to a registry
// documents for its faults.
func withRegistry(classes map[fault]string) map[fault]string {
	out := map[fault]string{
		faultAborted: "AbortError", faultNotFound: "ImageNotFoundInRegistry",
		faultUnauthorized: "RegistryAuthenticationFailure", faultUnreachable: "RegistryConnectionFailure",
	}
	for k, v := range classes {
		out[k] = v
	}
	return out
}

// runtimeRow is the classes of the operations that run the OCI runtime
// and document every runtime fault, with own's classes added ("" for a
// fault the operation cannot meet).
func runtimeRow(own map[fault]string) map[fault]string {
	row := map[fault]string{
		faultAborted: "AbortError", faultRuntimeMissing: "RuntimeNotFound", faultRuntimeNotPermitted: "RuntimeNotPermitted",
		faultRuntimeFailed: "RuntimeFailure", faultBundleMissing: "ContainerBundleNotFound", faultStore: "ResolveContainerName",
		faultGone: "ContainerNotFound", faultStateChanged: "ContainerStateChanged",
	}
	for f, class := range own {
		if row[f] = class; class == "" {
			delete(row, f)
		}
	}
	return row
}

// classOf is the class op reports fault f as: the one place where a fault
// becomes a class.
func classOf(op string, f fault) string {
	if class, ok := faultClasses[op][f]; ok {
		return class
	}
	return errcat.Generic
}

// imageFailure maps err, met while op read an image from from, onto op's
// catalogue; an error already catalogued passes through.
func imageFailure(op string, from origin, err error) *errcat.Error {
	var cerr *errcat.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	f, reason, code := classifyImageError(err, from)
	e := errcat.New(op, classOf(op, f), reason, err)
	e.CauseCode = code
	return e
}

// classifyOutputError reads a failure to write an output file as a fault
// and the reason in plain words.
func classifyOutputError(err error) (fault, string) {
	var unusable *outfile.UnusableError
	if errors.As(err, &unusable) {
		return faultUnusableOutput, unusable.Error()
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case errors.Is(err, context.Canceled):
		return faultAborted, "the operation was aborted"
	case errno == syscall.ENOSPC || errno == syscall.EDQUOT:
		return faultNoSpace, "No space left on device (ENOSPC)"
	case errno == syscall.EROFS:
		return faultReadOnly, "Read-only file system (EROFS)"
	case errno == syscall.EACCES:
		return faultDenied, "Permission denied (EACCES)"
	case errno == syscall.EPERM:
		return faultDenied, "Operation not permitted (EPERM)"
	case errno == syscall.EIO:
		return faultIO, "Input/output error (EIO)"
	case errno != 0:
		return faultIO, fmt.Sprintf("%s (%s)", errno.Error(), errnoName(errno))
	}
	return faultWriteFailed, err.Error()
}

// outputFailure maps a failure of op to write its output file onto op's
// catalogue, through newErr (which adds op's details); an error already
// catalogued passes through. required is the space the output needs, -1
// when it is not known ahead.
func outputFailure(op string, newErr func(class, reason string, cause error) *errcat.Error, err error, filePath string, required int64) error {
	var cerr *errcat.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	f, reason := classifyOutputError(err)
	e := newErr(classOf(op, f), reason, err)
	if f == faultNoSpace {
		// A device that is full (its own room unknown) has none left.
		available, _ := outfile.Room(filePath)
		e.With("availableSpace", humanSize(available))
		if required >= 0 {
			e.With("requiredSpace", humanSize(uint64(required)))
		}
	}
	return e
}

func errnoName(errno syscall.Errno) string {
	names := map[syscall.Errno]string{syscall.ENOENT: "ENOENT", syscall.EISDIR: "EISDIR", syscall.ENOTDIR: "ENOTDIR",
		syscall.EEXIST: "EEXIST", syscall.EFBIG: "EFBIG", syscall.EMFILE: "EMFILE", syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.EPIPE: "EPIPE"}
	if n, ok := names[errno]; ok {
		return n
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// classifyRuntimeError reads a failure to run a container as a fault.
func classifyRuntimeError(err error) fault {
	var rerr *ociruntime.RuntimeError
	switch {
	case errors.Is(err, context.Canceled):
		return faultAborted
	case errors.Is(err, ociruntime.ErrNoRuntime):
		return faultRuntimeMissing
	case errors.Is(err, ociruntime.ErrNotPermitted):
		return faultRuntimeNotPermitted
	case errors.Is(err, lifecycle.ErrBundleMissing):
		return faultBundleMissing
	case errors.Is(err, store.ErrDatabase):
		return faultStore
	case errors.Is(err, lifecycle.ErrGone):
		return faultGone
	case errors.Is(err, lifecycle.ErrNotRunning):
		return faultNotRunning
	case errors.Is(err, lifecycle.ErrNotPaused):
		return faultNotPaused
	case errors.Is(err, lifecycle.ErrRunning):
		return faultHasProcess
	case errors.Is(err, store.ErrStateChanged):
		return faultStateChanged
	case errors.As(err, &rerr):
		return faultRuntimeFailed
	}
	return faultOther
}

// runtimeFailure maps a failure of op to run container c onto op's catalogue.
func runtimeFailure(op string, c store.Container, err error) error {
	var hostErr *userns.HostError
	if errors.As(err, &hostErr) {
		// The host forbids an ordinary user what the change needs: the
		// class and the fix are the host's, common to every operation.
		return hostErr.ForOp(op).With("containerId", c.ID)
	}
	f := classifyRuntimeError(err)
	e := errcat.New(op, classOf(op, f), err.Error(), err).With("containerId", c.ID)
	if e.Class == "ContainerBundleNotFound" {
		e.With("bundleHashId", c.ID)
	}
	return e
}

// origin is where req's transport reads the image: only "docker" is a registry.
func (req inspectRequest) origin() origin {
	if req.transport == "docker" {
		return fromRegistry
	}
	return fromLocal
}
