package rootfs

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/truemeta"
)

// Options tune WriteTar.
type Options struct {
	// Progress, when set, is called now and then with bytes of content and
	// entries written so far, and once at the end.
	Progress func(bytes, entries int64)
	// Shifts, by layer of the Stack, turn the owners on disk into the
	// container's: a layer written inside a user namespace holds its files
	// under the IDs that namespace maps them to. nil (or missing) for a
	// layer whose owners are the container's.
	Shifts []Shift
}

// Shift maps an owner on disk to the container's.
type Shift func(uid, gid uint32) (uint32, uint32)

// Stats count what an export wrote (or, from Measure, would write).
type Stats struct {
	Entries  int64 // tar entries, not counting PAX extended headers
	Bytes    int64 // file content bytes
	TarBytes int64 // the whole stream: headers, contents, padding, end blocks
}

// Measure walks the merged tree without reading file contents and returns
// what WriteTar would write; TarBytes is exact, so callers can check free
// space first. Only files changing in between make the two differ.
func (s Stack) Measure(ctx context.Context, shifts ...Shift) (Stats, error) {
	return s.export(ctx, &sink{measure: true}, Options{Shifts: shifts})
}

// WriteTar writes the merged tree to w as one tar stream, as `docker export`
// does: no root entry, names without "./", numeric owners only, mtimes in
// whole seconds, PAX records only where a header needs them, hardlinks kept,
// sockets left out. w gets large writes (1 MiB); it is not closed.
func (s Stack) WriteTar(ctx context.Context, w io.Writer, opts Options) (Stats, error) {
	out := newSink(w)
	return s.export(ctx, out, opts)
}

// LayerOptions tune WriteLayer.
type LayerOptions struct {
	// Skip lists paths (slash separated, relative) left out with everything
	// under them: the mount points a runtime made in a container's upper
	// directory are the runtime's, not the container's changes.
	Skip []string
}

// WriteLayer writes the one layer directory dir (either whiteout format), a
// container's writable layer, to w as an OCI layer tar: its entries as
// WriteTar writes them, and its deletions as ".wh.<name>" entries and its
// opaque directories as a ".wh..wh..opq" entry right after the directory's.
// Where w can copy from a file (content.FileWriter), file contents go file
// to file inside the kernel; the bytes are the same either way.
func WriteLayer(ctx context.Context, dir string, w io.Writer, opts LayerOptions) (Stats, error) {
	skip := map[string]bool{}
	for _, p := range opts.Skip {
		skip[strings.Trim(p, "/")] = true
	}
	out := newSink(w)
	out.copier, _ = w.(fileCopier)
	x := newExporter(ctx, Stack{dir}, out, Options{})
	x.skip = skip
	return x.run(true)
}

// fileID is an inode, to find a second path of a file already written.
type fileID struct{ dev, ino uint64 }

// exporter turns walk entries into tar entries.
type exporter struct {
	ctx    context.Context
	layers Stack
	out    *sink
	opts   Options
	stats  Stats
	links  map[fileID]string // first path of each multiply-linked inode
	xattrs xattrReader
	link   []byte          // readlink buffer
	told   Stats           // what Progress last heard
	skip   map[string]bool // paths left out, with what is under them
}

func (s Stack) export(ctx context.Context, out *sink, opts Options) (Stats, error) {
	return newExporter(ctx, s, out, opts).run(false)
}

func newExporter(ctx context.Context, s Stack, out *sink, opts Options) *exporter {
	return &exporter{ctx: ctx, layers: s, out: out, opts: opts, links: map[fileID]string{}}
}

// run walks the stack, merged or (layerOnly) as one layer with its
// deletions, and writes the stream.
func (x *exporter) run(layerOnly bool) (Stats, error) {
	w := &walker{ctx: x.ctx, layers: x.layers, visit: x.add, dents: make([]byte, 64<<10), layerOnly: layerOnly}
	root, err := w.openRoot()
	if err == nil {
		err = w.dir("", root)
		if errors.Is(err, fs.SkipAll) || errors.Is(err, fs.SkipDir) {
			err = nil
		}
	}
	if err == nil {
		err = x.out.end()
	}
	x.stats.TarBytes = x.out.n
	if err == nil && x.opts.Progress != nil {
		x.opts.Progress(x.stats.Bytes, x.stats.Entries)
	}
	return x.stats, err
}

func (x *exporter) add(e *entry) error {
	if x.skip[e.rel] {
		if e.st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fs.SkipDir
		}
		return nil
	}
	if e.marker {
		x.stats.Entries++
		marker := tar.Header{Name: e.rel, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}
		return tar.NewWriter(x.out).WriteHeader(&marker)
	}
	hdr, ok, err := x.header(e)
	if !ok || err != nil {
		return err
	}
	fd, path := -1, ""
	if hdr.Typeflag == tar.TypeReg && !x.out.measure {
		// Opened before the header so a file that cannot be read fails the
		// export before half an entry is written; opened only if it is still
		// the file the walk saw, as a running container can rename a device
		// or a FIFO over it.
		if fd, err = fsat.OpenRegular(e.dirfd, e.name, &e.st); err != nil {
			return x.pathErr("open", e, err)
		}
		defer unix.Close(fd)
	} else {
		// Not opened: looked up from its open directory, so a running
		// container that swaps a directory on the path for a symlink
		// cannot send the read elsewhere.
		path = fsat.Path(e.dirfd, e.name)
	}
	var truth *truemeta.Stat
	if hdr.PAXRecords, truth, err = x.xattrs.records(fd, path); err != nil {
		return x.pathErr("listxattr", e, err)
	}
	if truth != nil {
		applyTruth(&hdr, truth)
	}
	if shift := x.shift(e); shift != nil {
		namespacedCapability(hdr.PAXRecords, shift)
	}
	// A fresh tar.Writer renders each header: it insists on receiving the
	// contents itself, and they are copied past it instead.
	if err := tar.NewWriter(x.out).WriteHeader(&hdr); err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	x.stats.Entries++
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		if err := x.out.content(x.ctx, fd, hdr.Size, x.tick); err != nil {
			return x.pathErr("read", e, err)
		}
	}
	x.tick(0)
	return nil
}

// header is the tar header docker's archive package would write for e, bar
// the extended attributes; ok is false for what a tar cannot hold (sockets).
func (x *exporter) header(e *entry) (hdr tar.Header, ok bool, err error) {
	st := &e.st
	uid, gid := st.Uid, st.Gid
	if shift := x.shift(e); shift != nil {
		uid, gid = shift(uid, gid)
	}
	hdr = tar.Header{
		Name:    e.rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(uid),
		Gid:     int(gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		// A hint, not a demand: archive/tar still writes plain USTAR unless
		// a long name, big id or xattr needs PAX records.
		Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return hdr, true, nil
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = x.readlink(e); err != nil {
			return hdr, false, x.pathErr("readlink", e, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return hdr, false, nil
	}
	x.hardlink(&hdr, st)
	return hdr, true, nil
}

// shift is how to read the owners of e's layer, or nil.
func (x *exporter) shift(e *entry) Shift {
	if e.layer < len(x.opts.Shifts) {
		return x.opts.Shifts[e.layer]
	}
	return nil
}

// namespacedCapability turns file capabilities a user namespace's root set
// back into what they were set as. The kernel stores them as version 3,
// which adds the namespace root's host ID, and reads them back as version 2
// inside that namespace; read from outside, as here, they are still version
// 3. When that root is the container's root, they are version 2 again.
func namespacedCapability(recs map[string]string, shift Shift) {
	const key = "SCHILY.xattr.security.capability"
	v, ok := recs[key]
	if !ok || len(v) != 24 || v[3] != 3 {
		return
	}
	rootID := binary.LittleEndian.Uint32([]byte(v[20:]))
	if inside, _ := shift(rootID, 0); inside != 0 {
		return
	}
	recs[key] = v[:3] + "\x02" + v[4:20]
}

// applyTruth puts the metadata an unpack in a user namespace recorded
// (see truemeta) in place of what the file on disk shows. A device stored
// as an empty file becomes the device again; a hardlink stays a link.
func applyTruth(hdr *tar.Header, t *truemeta.Stat) {
	hdr.Uid, hdr.Gid = t.Uid, t.Gid
	hdr.Mode = t.Mode
	if t.Typeflag == 0 || hdr.Typeflag == tar.TypeLink {
		return
	}
	hdr.Typeflag = t.Typeflag
	if t.Typeflag != tar.TypeReg {
		hdr.Size = 0
	}
	hdr.Devmajor, hdr.Devminor = t.Devmajor, t.Devminor
}

// hardlink turns a second path of an inode into a link to the first. As in
// docker and GNU tar this covers every non-directory, not only regular
// files, and the inode may be shared by paths of different layers.
func (x *exporter) hardlink(hdr *tar.Header, st *unix.Stat_t) {
	if st.Nlink < 2 {
		return
	}
	id := fileID{dev: st.Dev, ino: st.Ino}
	if first, seen := x.links[id]; seen {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		return
	}
	x.links[id] = hdr.Name
}

func (x *exporter) readlink(e *entry) (string, error) {
	for size := max(int(e.st.Size)+1, 256); ; size *= 2 {
		if len(x.link) < size {
			x.link = make([]byte, size)
		}
		n, err := unix.Readlinkat(e.dirfd, e.name, x.link)
		if err != nil {
			return "", err
		}
		if n < len(x.link) {
			return string(x.link[:n]), nil
		}
	}
}

// tick reports progress when enough has happened since the last report.
func (x *exporter) tick(content int64) {
	x.stats.Bytes += content
	if x.opts.Progress == nil {
		return
	}
	if x.stats.Bytes-x.told.Bytes >= 16<<20 || x.stats.Entries-x.told.Entries >= 1000 {
		x.told = x.stats
		x.opts.Progress(x.stats.Bytes, x.stats.Entries)
	}
}

func (x *exporter) fullPath(e *entry) string {
	return filepath.Join(x.layers[e.layer], filepath.FromSlash(e.rel))
}

func (x *exporter) pathErr(op string, e *entry, err error) error {
	return fmt.Errorf("%s %s: %w", op, x.fullPath(e), err)
}

// errOverlayFeature is a layer written by an overlayfs mounted with metacopy
// or redirect_dir: its files' data or its directories' names are in other
// layers, which merging the directories as they are would get wrong.
var errOverlayFeature = errors.New("layer uses overlayfs metacopy or redirect_dir, which rootfs does not merge")

// xattrReader reads extended attributes into PAX records.
//
// Kept: everything a file carries, notably security.capability (file
// capabilities, which docker keeps too) and user.*, as SCHILY.xattr records
// that GNU tar, bsdtar and the Go extractors of docker and podman all read.
//
// Left out: trusted.overlay.* and user.overlay.* are overlayfs's own
// bookkeeping (whiteouts, opaque directories, copy-up origins) and mean
// nothing outside this stack; the store's own (see truemeta) are read as
// the metadata they stand for, never copied.
// security.selinux is the label of this host's policy: the host importing
// the tar labels files itself, podman export leaves it out too, and writing
// it back fails outright on hosts without SELinux.
type xattrReader struct {
	buf []byte
}

func (r *xattrReader) records(fd int, path string) (recs map[string]string, truth *truemeta.Stat, err error) {
	if r.buf == nil {
		// XATTR_LIST_MAX and XATTR_SIZE_MAX: nothing is ever larger.
		r.buf = make([]byte, 64<<10)
	}
	n, err := retry(func() (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, r.buf)
		}
		return unix.Llistxattr(path, r.buf)
	})
	if n <= 0 || err == unix.ENOTSUP {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, name := range strings.Split(strings.TrimRight(string(r.buf[:n]), "\x00"), "\x00") {
		switch name {
		case "trusted.overlay.metacopy", "trusted.overlay.redirect", "user.overlay.metacopy", "user.overlay.redirect":
			return nil, nil, errOverlayFeature
		}
		shown, standIn := truemeta.Original(name)
		if !standIn {
			shown = name
		}
		if name != truemeta.StatXattr && !exported(shown) {
			continue
		}
		v, err := r.get(fd, path, name)
		if err == unix.ENODATA {
			continue // removed since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		if name == truemeta.StatXattr {
			t, err := truemeta.Decode(v)
			if err != nil {
				return nil, nil, err
			}
			truth = &t
			continue
		}
		if recs == nil {
			recs = map[string]string{}
		}
		recs["SCHILY.xattr."+shown] = v
	}
	return recs, truth, nil
}

func (r *xattrReader) get(fd int, path, name string) (string, error) {
	n, err := retry(func() (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, name, r.buf)
		}
		return unix.Lgetxattr(path, name, r.buf)
	})
	if err != nil {
		return "", err
	}
	return string(r.buf[:n]), nil
}

func exported(name string) bool {
	switch {
	case name == "", name == "security.selinux", truemeta.Internal(name):
		return false
	case strings.Contains(name, "="):
		return false // a PAX record key cannot hold one
	}
	return true
}

func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}
