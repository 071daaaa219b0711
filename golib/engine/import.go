package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k3-core/k3-core/golib/archive"
	"github.com/k3-core/k3-core/golib/configchange"
	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/outfile"
	"github.com/k3-core/k3-core/golib/pull"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

const opImport = "importImage"

// importOptions are importImage's options, as docker import takes them.
type importOptions struct {
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Message    string   `json:"message"`
	Changes    []string `json:"changes"`
	Platform   string   `json:"platform"`
}

// ImportProgress is the event importImage reports.
type ImportProgress struct {
	Phase   string `json:"phase"`   // import, done
	Current int64  `json:"current"` // bytes of the source read
	Total   int64  `json:"total"`   // the source's size, 0 when unknown
}

// importImage(source, {repository, tag, message, changes, platform}) makes
// a one-layer image of a tar, as docker import: source is a file (plain,
// gzip, zstd, bzip2 or xz) or {stream: socket}, the Unix socket the JS
// layer serves a Readable on. The layer is stored and unpacked as it
// arrives, contained as a pulled layer is.
func (e *Engine) importImage(ctx context.Context, call *Request) (any, error) {
	list, err := positional(call.Args, 2)
	if err != nil {
		return nil, errcat.New(opImport, "InvalidImportImageParameters", err.Error(), nil)
	}
	source, socket, reason := importSourceParam(list[0])
	shown := source // as docker import names a stream
	if socket {
		shown = "-"
	}
	details := map[string]any{"source": shown}
	newErr := func(class, reason string, cause error) *errcat.Error {
		err := errcat.New(opImport, class, reason, cause)
		for k, v := range details {
			err.With(k, v)
		}
		return err
	}
	if reason != "" {
		return nil, newErr("InvalidImportImageParameters", reason, nil)
	}
	opts, config, names, reason := importParams(list[1])
	if reason != "" {
		return nil, newErr("InvalidImportImageParameters", reason, nil)
	}
	st, hold, err := e.heldStore(call.Root)
	if err != nil {
		return nil, newErr("StoreFailure", err.Error(), err)
	}
	defer hold.Release()
	src, size, err := openImportSource(ctx, source, socket)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newErr("ImportSourceNotFound", fmt.Sprintf("no file at %s", source), err)
	case err != nil:
		return nil, newErr("ImportSourceNotFound", err.Error(), err)
	}
	defer src.Close()
	// The tar is kept twice, as the blob and as files: at least the file's size each.
	if available, known := outfile.Room(filepath.Join(st.Root(), "tmp", "import")); known && size > 0 && available < uint64(2*size) {
		return nil, newErr("InsufficientDiskSpaceForImport", "No space left on device (ENOSPC)", syscall.ENOSPC).
			With("requiredSpace", humanSize(uint64(2*size))).With("availableSpace", humanSize(available))
	}
	read := &progressReader{ctx: ctx, r: src, emit: func(n int64) {
		call.Emit(ImportProgress{Phase: "import", Current: n, Total: size})
	}}
	newLayer, err := importLayer(ctx, st, read)
	if err != nil {
		e := imageFailure(opImport, fromLocal, err)
		for k, v := range details {
			e.With(k, v)
		}
		return nil, e
	}
	now := time.Now().UTC()
	comment := opts.Message
	if comment == "" {
		comment = "Imported from " + shown
	}
	config.Created = v1.Time{Time: now}
	config.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(newLayer.DiffID)}}
	config.History = []v1.History{{Created: v1.Time{Time: now}, Comment: comment}}
	result, err := recordCommit(st, store.Image{ManifestMediaType: string(types.DockerManifestSchema2)}, config, newLayer, names)
	if err != nil {
		return nil, newErr("StoreFailure", err.Error(), err)
	}
	recordImageEvent(call.Root, "import", result["Id"].(string), strings.Join(names, ", "))
	call.Emit(ImportProgress{Phase: "done", Current: read.n, Total: size})
	return result, nil
}

// importSourceParam reads the source: a file path, or {stream: socket}.
func importSourceParam(raw json.RawMessage) (source string, socket bool, reason string) {
	if s, present, err := stringParam(raw, "source"); err == nil {
		if !present || s == "" {
			return "", false, "source is required: a tar file's path or a Readable"
		}
		return s, false, ""
	}
	p, err := objectParam(raw, "source")
	if err != nil {
		return "", false, "source must be a tar file's path or a Readable"
	}
	s, _, err := p.str("stream")
	if err != nil || s == "" || !filepath.IsAbs(s) {
		return "", false, "source must be a tar file's path or a Readable"
	}
	return s, true, ""
}

// importParams reads the options and applies changes to an empty config
// for the platform, so a bad one fails before anything is read.
func importParams(raw json.RawMessage) (importOptions, *v1.ConfigFile, []string, string) {
	var opts importOptions
	if !isNull(raw) {
		if _, err := objectParam(raw, "options"); err != nil {
			return opts, nil, nil, err.Error()
		}
		if err := json.Unmarshal(raw, &opts); err != nil {
			return opts, nil, nil, "options: " + err.Error()
		}
	}
	names, reason := imageNames(opts.Repository, opts.Tag)
	if reason != "" {
		return opts, nil, nil, reason
	}
	platform, reason := parsePlatform(opts.Platform)
	if reason != "" {
		return opts, nil, nil, reason
	}
	config := &v1.ConfigFile{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant}
	// All at once, as docker import does: a CMD before an ENTRYPOINT stays.
	if err := configchange.Apply(&config.Config, opts.Changes); err != nil {
		return opts, nil, nil, err.Error()
	}
	return opts, config, names, ""
}

// imageNames is the store name options {repository, tag} give, as docker
// commit and import read them: none without a repository, tag "latest"
// when only the repository is given.
func imageNames(repository, tag string) ([]string, string) {
	if repository == "" {
		if tag != "" {
			return nil, "options.tag needs options.repository"
		}
		return nil, ""
	}
	if tag == "" {
		tag = "latest"
	}
	ref, err := name.NewTag(repository + ":" + tag)
	if err != nil || repository != strings.ToLower(repository) {
		return nil, fmt.Sprintf("%s:%s is not a valid image name", repository, tag)
	}
	return []string{displayName(ref)}, ""
}

// parsePlatform reads "os/arch[/variant]"; "" is the host's.
func parsePlatform(s string) (inspect.Platform, string) {
	if s == "" {
		return inspect.HostPlatform(), ""
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return inspect.Platform{}, fmt.Sprintf("options.platform %q must be os/architecture[/variant]", s)
	}
	p := inspect.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p.Normalize(), ""
}

// openImportSource opens the file, or connects to the socket the JS layer
// serves a stream on; size is the file's, or 0. A directory is no source.
func openImportSource(ctx context.Context, source string, socket bool) (io.ReadCloser, int64, error) {
	if socket {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", source)
		if err != nil {
			return nil, 0, fmt.Errorf("the stream could not be reached: %w", err)
		}
		// Closing it ends a read that waits on a stalled stream.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		return closeFunc{conn, func() error { stop(); return conn.Close() }}, 0, nil
	}
	f, err := os.Open(source)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = fmt.Errorf("%s is a directory, not a tar file", source)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return f, 0, nil
	}
	return f, fi.Size(), nil
}

type closeFunc struct {
	io.Reader
	close func() error
}

func (c closeFunc) Close() error { return c.close() }

// importLayer stores the tar stream r as one layer: its uncompressed bytes
// become the blob, whose digest is the diff ID, while the same bytes are
// unpacked. Nothing is left in the store unless both complete.
func importLayer(ctx context.Context, st *store.Store, r io.Reader) (store.Layer, error) {
	tarStream, err := archive.Decompress(r)
	if err != nil {
		return store.Layer{}, sourceError(err)
	}
	defer tarStream.Close()
	blob, err := st.TempFile("import-")
	if err != nil {
		return store.Layer{}, err
	}
	defer os.Remove(blob.Name())
	defer blob.Close()
	staging, err := st.TempDir("layer-")
	if err != nil {
		return store.Layer{}, err
	}
	defer treeops.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return store.Layer{}, err
	}
	out := content.NewFileWriter(blob)
	// Read errors are the source's; write errors (ENOSPC) come back
	// through the tee unwrapped.
	tee := io.TeeReader(sourceReader{tarStream}, out)
	stats, unpackErr := treeops.Unpack(ctx, tee, staging, nil, nil)
	if unpackErr == nil {
		// The diff ID covers the whole stream, the tar's end padding too.
		_, unpackErr = io.Copy(io.Discard, tee)
	}
	diffID, size, err := out.Close()
	if err = errors.Join(unpackErr, err); err != nil {
		return store.Layer{}, importError(err)
	}
	if size == 0 {
		return store.Layer{}, &pull.ContentError{Reason: "the source is empty, not a tar archive"}
	}
	l := store.Layer{ChainID: diffID.String(), DiffID: diffID.String(), BlobDigest: diffID.String(), BlobSize: size,
		MediaType: string(types.DockerUncompressedLayer), Size: stats.Bytes}
	if err := st.PlaceBlob(l.BlobDigest, blob.Name()); err != nil {
		return store.Layer{}, err
	}
	// The same tar imported before keeps its directory.
	return l, st.PlaceLayer(l, staging)
}

// readError is a failure to read or decompress the source.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

func sourceError(err error) error {
	return &pull.ContentError{Reason: "the source could not be read as a tar archive: " + err.Error()}
}

// importError tells a source that is not a tar, or broke off, from a
// layer that is unsafe and from the store failing.
func importError(err error) error {
	var rerr *readError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, fs.ErrNotExist) && !errors.As(err, &rerr):
		// A hardlink to nothing in the layer, or a name through a
		// dangling symlink: the archive points outside itself.
		return fmt.Errorf("%w: %v", layer.ErrUnsafePath, err)
	case errors.As(err, &rerr), errors.Is(err, tar.ErrHeader), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrWriteTooLong):
		return sourceError(err)
	}
	return err
}

// progressReader reports the bytes read, every 8 MiB, and stops reading
// once ctx ends.
type progressReader struct {
	ctx     context.Context
	r       io.Reader
	n, told int64
	emit    func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.told >= 8<<20 {
		p.told = p.n
		p.emit(p.n)
	}
	return n, err
}
