package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/outfile"
	"github.com/k3-core/k3-core/golib/rootfs"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

const opExport = "exportContainer"

// ExportProgress is the event exportContainer reports.
type ExportProgress struct {
	Phase   string `json:"phase"`   // export, done
	Current int64  `json:"current"` // bytes of file content written
	Total   int64  `json:"total"`   // bytes of file content in all
	Entries int64  `json:"entries"`
}

// exportContainer(containerId, filePath, {durable}) writes the container's
// merged filesystem as one tar, atomically.
func (e *Engine) exportContainer(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 3)
	if err != nil {
		return nil, errcat.New(opExport, "InvalidExportContainerParameters", err.Error(), nil)
	}
	id, reason := containerRef(list[0])
	target, pathReason := outputParam(list[1])
	filePath := target.shown()
	details := map[string]any{"containerId": id, "filePath": filePath}
	newErr := func(class, reason string, cause error) *errcat.Error {
		err := errcat.New(opExport, class, reason, cause)
		for k, v := range details {
			err.With(k, v)
		}
		return err
	}
	if reason == "" {
		reason = pathReason
	}
	durable := false
	if reason == "" && !isNull(list[2]) {
		opts, err := objectParam(list[2], "options")
		if err == nil {
			durable, err = opts.boolean("durable", false)
		}
		if err != nil {
			reason = err.Error()
		}
	}
	if reason != "" {
		return nil, newErr("InvalidExportContainerParameters", reason, nil)
	}
	st, err := e.store(call.Root)
	if err != nil {
		return nil, newErr("ResolveContainerName", err.Error(), err)
	}
	c, cerr := e.resolveContainer(opExport, "InvalidExportContainerParameters", st, id, details)
	if cerr != nil {
		return nil, cerr
	}
	if _, err := bundle.ReadSpec(st.BundleDir(c.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, newErr("FetchContainerInfoFailure", "container configuration is unreadable: "+err.Error(), err)
	}
	// A container another process removed while this one read it fails as
	// not found, rather than as the missing files its removal left.
	removed := func(err error) error {
		if found, ferr := st.FindContainers(c.ID, false); err != nil && ferr == nil && len(found) == 0 {
			return newErr("ContainerNotFound", fmt.Sprintf("container %s was removed during the export", c.Name), err)
		}
		return nil
	}
	stack, shifts, done, err := lifecycle.ReadStack(ctx, st, c)
	if gone := removed(err); gone != nil {
		return nil, gone
	}
	switch {
	case errors.Is(err, context.Canceled):
		return nil, newErr("AbortError", "the operation was aborted", err)
	case errors.Is(err, lifecycle.ErrBundleMissing):
		return nil, newErr("ContainerBundleNotFound", "Bundle directory not found: "+err.Error(), err).With("bundleHashId", c.ID)
	case errors.Is(err, lifecycle.ErrUnreadable), errors.Is(err, store.ErrDatabase):
		return nil, newErr("FetchContainerInfoFailure", err.Error(), err)
	case err != nil:
		return nil, newErr("ExportContainerFailure", err.Error(), err)
	}

	defer done()
	// The size is approved and the output opened in either order (see
	// treeops.Export); the export starts once both are done.
	var size rootfs.Stats
	required := int64(-1) // unknown until measured
	var out *outfile.File
	started := func() {
		if out != nil && required >= 0 {
			call.Emit(ExportProgress{Phase: "export", Total: size.Bytes})
		}
	}
	approve := func(measured rootfs.Stats) error {
		size, required = measured, requiredSpace(measured.TarBytes, filePath)
		if available, known := target.room(); known && available < uint64(required) {
			return newErr("InsufficientDiskSpaceForExport", "No space left on device (ENOSPC)", syscall.ENOSPC).
				With("requiredSpace", humanSize(uint64(required))).With("availableSpace", humanSize(available))
		}
		started()
		return nil
	}
	open := func() (io.Writer, *os.File, error) {
		created, err := target.create(ctx, durable)
		if err != nil {
			return nil, nil, err
		}
		out = created
		started()
		return out.Writer(), out.Direct(), nil
	}
	_, err = treeops.Export(ctx, stack, shifts, approve, open, func(bytes, entries int64) {
		call.Emit(ExportProgress{Phase: "export", Current: bytes, Total: size.Bytes, Entries: entries})
	})
	if err != nil {
		if out != nil {
			out.Abort()
		}
		if gone := removed(err); gone != nil {
			return nil, gone
		}
		return nil, outputFailure(opExport, newErr, err, filePath, required)
	}
	if err := out.Commit(); err != nil {
		return nil, outputFailure(opExport, newErr, err, filePath, required)
	}
	call.Emit(ExportProgress{Phase: "done", Current: size.Bytes, Total: size.Bytes, Entries: size.Entries})
	return fmt.Sprintf("%s has exported successfully to %s", c.Name, filePath), nil
}

// output is where an export or a save writes: a file, or the Unix socket
// the JS layer serves a Node Writable on.
type output struct {
	path        string // the file's, or the socket's
	socket      bool
	compression outfile.Compression // a socket's; a file's is its name's
}

// outputParam reads the output argument: a file path, or {stream: socket,
// compression: 'gzip'|'zstd'|'none'}.
func outputParam(raw json.RawMessage) (output, string) {
	if _, _, err := stringParam(raw, "filePath"); err == nil || isNull(raw) {
		p, reason := exportPath(raw)
		return output{path: p}, reason
	}
	p, err := objectParam(raw, "filePath")
	if err != nil {
		return output{}, "filePath must be a file path or a Writable"
	}
	socket, _, err := p.str("stream")
	if err != nil || socket == "" || !filepath.IsAbs(socket) {
		return output{}, "filePath must be a file path or a Writable"
	}
	out := output{path: socket, socket: true, compression: outfile.None}
	c, _, err := p.str("compression")
	switch outfile.Compression(c) {
	case "", outfile.None:
	case outfile.Gzip, outfile.Zstd:
		out.compression = outfile.Compression(c)
	default:
		return out, fmt.Sprintf("options.compression %q is not gzip, zstd or none", c)
	}
	if err != nil {
		return out, err.Error()
	}
	return out, ""
}

// shown names the output in results and errors: a stream is "-", as
// docker names standard output.
func (o output) shown() string {
	if o.socket {
		return "-"
	}
	return o.path
}

// room is outfile.Room for a file; a stream's room is the reader's affair.
func (o output) room() (uint64, bool) {
	if o.socket {
		return 0, false
	}
	return outfile.Room(o.path)
}

func (o output) create(ctx context.Context, durable bool) (*outfile.File, error) {
	if o.socket {
		return outfile.Connect(ctx, o.path, o.compression)
	}
	return outfile.Create(ctx, o.path, durable)
}

// exportPath validates the output path: absolute, a file, in a directory
// that exists, and one outfile may write to.
func exportPath(raw []byte) (string, string) {
	p, present, err := stringParam(raw, "filePath")
	switch {
	case err != nil:
		return "", err.Error()
	case !present || p == "":
		return "", "File path is required"
	case strings.ContainsRune(p, 0):
		return p, "File path contains invalid characters"
	case !filepath.IsAbs(p):
		return p, "File path must be absolute"
	case strings.HasSuffix(p, "/"):
		return p, "File path names a directory, not a file"
	}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return p, "File path names a directory, not a file"
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
		if errors.Is(err, fs.ErrPermission) {
			return p, "" // reported as permission denied when writing
		}
		return p, fmt.Sprintf("Directory %s does not exist", filepath.Dir(p))
	}
	if err := outfile.Check(p); err != nil {
		return p, err.Error()
	}
	return p, ""
}

// requiredSpace is the room an export needs: the whole tar, or for a
// compressed one a quarter of it (a guess; a real ENOSPC is caught anyway).
func requiredSpace(tarBytes int64, filePath string) int64 {
	if outfile.CompressionFor(filePath) != outfile.None {
		return tarBytes / 4
	}
	return tarBytes
}

// humanSize formats bytes as the documents do ("5 GB").
func humanSize(n uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	v := float64(n)
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v >= 10 || i == 0 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
