// Package layer owns turning one image layer, an uncompressed tar stream,
// into a directory on disk without letting the archive touch anything
// outside that directory, and recognising the whiteouts such directories
// hold.
//
// Containment rests on one rule: the parent directory of every entry is
// opened with openat2(2) and RESOLVE_IN_ROOT, relative to a descriptor for
// the layer directory, and the entry itself is then made or changed with an
// *at syscall on that descriptor that does not follow a final symlink. A
// symlink anywhere in the tree is therefore resolved as if the layer
// directory were "/": it can move a write elsewhere inside the layer, never
// out of it.
//
// How names are read:
//   - A name whose ".." components climb above the root ("../x",
//     "a/../../x") is refused with ErrUnsafePath and the unpack fails: no
//     reading of it is what the author meant.
//   - An absolute name is taken relative to the layer root, as tar does.
//   - A name that goes through a symlink is followed inside the layer, so
//     "s/x" after the symlink s -> / (or s -> ../..) writes <dir>/x.
//   - A hardlink target is read the same way and looked up in this layer,
//     then in Options.Lower. One that climbs out lexically is ErrUnsafePath;
//     one found nowhere is an error wrapping fs.ErrNotExist.
package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Options tunes Unpack.
type Options struct {
	Whiteouts WhiteoutFormat
	// Lower lists the unpacked directories of the layers beneath this one,
	// nearest first. A hardlink whose target is not in this layer is
	// resolved there: it is made as a hardlink to that file, sharing the
	// inode, when the entry's metadata is the file's; otherwise the file is
	// copied up into this layer first, so the lower one never changes.
	// They must be on dir's filesystem for such links.
	Lower []string
	// MaxEntries caps the number of tar entries; 0 means 1,000,000.
	MaxEntries int64
	// MaxBytes caps the total size of regular file contents; 0 means 64 GiB.
	MaxBytes int64
	// Progress, when set, is called now and then with the bytes of file
	// content written so far, and once at the end.
	Progress func(written int64)
}

// Stats describes what Unpack did.
type Stats struct {
	// Entries counts the tar entries read.
	Entries int64
	// Bytes counts the file content written.
	Bytes int64
	// Skipped counts device nodes left out because this process may not
	// make them.
	Skipped int64
}

var (
	// ErrUnsafePath is wrapped by Unpack for an entry that would escape the
	// layer directory.
	ErrUnsafePath = errors.New("path escapes the layer directory")
	// ErrLimit is wrapped by Unpack when a layer has more entries or more
	// file content than Options allow.
	ErrLimit = errors.New("layer exceeds the unpack limits")
)

const (
	defaultMaxEntries = 1_000_000
	defaultMaxBytes   = 64 << 30
	// Layers run to hundreds of MB; one large buffer per unpack keeps the
	// copy to few syscalls without allocating per file.
	copyBufferSize = 1 << 20
	progressStep   = 4 << 20
)

// Unpack writes the entries of the tar stream r under dir, which must
// exist. It never writes outside dir. Directory modes and times are set
// last, deepest first, so writing into a directory does not undo them. On
// error dir holds a partial layer, for the caller to remove.
func Unpack(ctx context.Context, r io.Reader, dir string, opts Options) (Stats, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	u, err := newUnpacker(ctx, dir, opts)
	if err != nil {
		return Stats{}, err
	}
	defer u.close()
	err = u.run(r)
	return u.stats, err
}

// unpacker is the state of one Unpack call.
type unpacker struct {
	ctx   context.Context
	opts  Options
	root  int   // O_PATH descriptor of the layer directory
	lower []int // O_PATH descriptors of opts.Lower, nearest first
	// privileged processes must get ownership and xattrs right; others
	// keep their own ownership, as `tar --no-same-owner` does.
	privileged bool
	// confined: root of a user namespace that does not map every ID, which
	// records what it cannot write (see confined.go).
	confined bool
	buf      []byte
	dirs     map[string]dirMeta // by cleaned name, applied at the end
	// sharedInodes are the lower layers' inodes this layer links to as
	// they are; a later hardlink entry that changes one copies it up.
	sharedInodes map[inode]bool
	stats        Stats
	reported     int64
}

// dirMeta is what a directory gets once its contents are written.
type dirMeta struct {
	mode  uint32
	times []unix.Timespec
}

func newUnpacker(ctx context.Context, dir string, opts Options) (*unpacker, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open layer directory", Path: dir, Err: err}
	}
	u := &unpacker{
		ctx:        ctx,
		opts:       opts,
		root:       root,
		privileged: os.Geteuid() == 0,
		confined:   os.Geteuid() == 0 && Confined(),
		buf:        make([]byte, copyBufferSize),
		dirs:       map[string]dirMeta{},

		sharedInodes: map[inode]bool{},
	}
	for _, l := range opts.Lower {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			u.close()
			return nil, &os.PathError{Op: "open lower layer", Path: l, Err: err}
		}
		u.lower = append(u.lower, fd)
	}
	return u, nil
}

func (u *unpacker) close() {
	unix.Close(u.root)
	for _, fd := range u.lower {
		unix.Close(fd)
	}
}

func (u *unpacker) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := u.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// Under GODEBUG=tarinsecurepath=0 the reader flags names like "/x";
		// cleanName below applies this package's own, documented rules.
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		u.stats.Entries++
		if u.stats.Entries > u.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, u.opts.MaxEntries)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return err
	}
	u.progress(true)
	return nil
}

// entry writes one tar entry, whose contents r holds.
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return u.rootDir(hdr)
	}
	if strings.HasPrefix(path.Base(rel), whiteoutPrefix) {
		return u.whiteout(rel)
	}
	pfd, err := u.parentDir(path.Dir(rel))
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	defer unix.Close(pfd)
	base := path.Base(rel)
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // the reader expands sparse files
		return u.file(pfd, base, rel, hdr, r)
	case tar.TypeDir:
		return u.dir(pfd, base, rel, hdr)
	case tar.TypeSymlink:
		return u.symlink(pfd, base, rel, hdr)
	case tar.TypeLink:
		return u.hardlink(pfd, base, rel, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return u.node(pfd, base, rel, hdr)
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

// rootDir applies an entry for the layer root ("./") to dir itself. Only a
// directory may stand there.
func (u *unpacker) rootDir(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: an entry of type %q cannot replace the layer root", ErrUnsafePath, hdr.Typeflag)
	}
	fd, err := unix.Openat(u.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.dirMeta(fd, ".", hdr)
}

// progress reports the bytes written, at most once per progressStep unless
// final.
func (u *unpacker) progress(final bool) {
	if u.opts.Progress == nil {
		return
	}
	if final || u.stats.Bytes-u.reported >= progressStep {
		u.reported = u.stats.Bytes
		u.opts.Progress(u.stats.Bytes)
	}
}
