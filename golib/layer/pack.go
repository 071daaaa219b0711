package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/fsat"
)

// PackOptions tune Pack.
type PackOptions struct {
	// Skip lists paths (slash separated, relative) left out with everything
	// under them: the mount points a runtime made in a container's upper
	// directory are the runtime's, not the container's changes.
	Skip []string
}

// Pack writes the layer directory dir (either whiteout format) to w as an
// OCI layer tar: deletions as ".wh.<name>" entries, opaque directories as a
// ".wh..wh..opq" entry inside them, hardlinks as links, names in lexical
// walk order, numeric owners, PAX only where a field needs it.
//
// Where w can copy from a file (content.FileWriter), file contents go file
// to file inside the kernel; the bytes are the same either way.
func Pack(ctx context.Context, dir string, w io.Writer, opts PackOptions) error {
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		skip[strings.Trim(s, "/")] = true
	}
	p := packer{ctx: ctx, root: dir, w: w, skip: skip, links: map[[2]uint64]string{}}
	p.copier, _ = w.(fileCopier)
	root, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := p.dir("", root); err != nil {
		return err
	}
	// The end of the archive: two zero blocks, as archive/tar ends it.
	_, err = w.Write(make([]byte, 2*blockSize))
	return err
}

// fileCopier appends n bytes of a file without reading them into memory,
// and closes the file.
type fileCopier interface {
	CopyFile(src *os.File, n int64) error
}

const blockSize = 512

type packer struct {
	ctx    context.Context
	root   string
	w      io.Writer
	copier fileCopier
	skip   map[string]bool
	links  map[[2]uint64]string
	buf    []byte
	header bytes.Buffer
}

// writeHeader writes hdr exactly as archive/tar would (with its PAX
// records where a field needs them); the member's content follows it.
func (p *packer) writeHeader(hdr *tar.Header) error {
	p.header.Reset()
	if err := tar.NewWriter(&p.header).WriteHeader(hdr); err != nil {
		return err
	}
	_, err := p.w.Write(p.header.Bytes())
	return err
}

// dir writes the entries of the directory rel, open as d (which it closes),
// then each subdirectory's. Every name is looked up relative to its open
// directory, so no syscall walks the whole path again.
func (p *packer) dir(rel string, d *os.File) error {
	defer d.Close()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	dirfd := int(d.Fd())
	if rel != "" {
		opaque := false
		for _, name := range names {
			opaque = opaque || IsOpaqueMarker(name)
		}
		if !opaque {
			if opaque, err = opaqueValue(func(buf []byte) (int, error) { return unix.Fgetxattr(dirfd, opaqueXattr, buf) }); err != nil {
				return &os.PathError{Op: "getxattr " + opaqueXattr, Path: d.Name(), Err: err}
			}
		}
		if opaque {
			if err := p.marker(rel + "/" + opaqueMarker); err != nil {
				return err
			}
		}
	}
	for _, name := range names {
		child := name
		if rel != "" {
			child = rel + "/" + name
		}
		if p.skip[child] || IsOpaqueMarker(name) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(d.Name(), name), Err: err}
		}
		fi := newStatInfo(name, &st)
		if deleted, ok := Whiteout(name, fi); ok {
			target := deleted
			if rel != "" {
				target = rel + "/" + deleted
			}
			if err := p.marker(filepath.ToSlash(filepath.Join(filepath.Dir(target), whiteoutPrefix+filepath.Base(target)))); err != nil {
				return err
			}
			continue
		}
		sub, err := p.entry(child, d, fi)
		if err != nil {
			return err
		}
		if sub != nil {
			if err := p.dir(child, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// marker writes an empty whiteout entry.
func (p *packer) marker(name string) error {
	return p.writeHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX})
}

// entry writes one member, the child fi of the open directory parent; for a
// directory it returns the directory, open, for the caller to walk.
func (p *packer) entry(name string, parent *os.File, fi statInfo) (*os.File, error) {
	dirfd := int(parent.Fd())
	link := ""
	var opened *os.File // the member itself, for its xattrs and content
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		var err error
		if link, err = fsat.Readlink(dirfd, fi.name); err != nil {
			return nil, &os.PathError{Op: "readlink", Path: filepath.Join(parent.Name(), fi.name), Err: err}
		}
	case fi.IsDir(), fi.Mode().IsRegular():
		// A running container can rename a device or a FIFO over the name
		// since it was listed: only what is still of the listed kind opens.
		open := fsat.OpenDir
		if !fi.IsDir() {
			open = func(dir int, base string) (int, error) { return fsat.OpenRegular(dir, base, fi.lstat) }
		}
		fd, err := open(dirfd, fi.name)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(parent.Name(), fi.name), Err: err}
		}
		opened = os.NewFile(uintptr(fd), filepath.Join(parent.Name(), fi.name))
	}
	closeOpened := func() {
		if opened != nil {
			opened.Close()
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		closeOpened()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	if opened != nil {
		fd := int(opened.Fd())
		p.xattrs(hdr, func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
			func(attr string, buf []byte) (int, error) { return unix.Fgetxattr(fd, attr, buf) })
	} else {
		// A symlink or device cannot be opened: its name is looked up
		// from its open directory, the path above never walked again.
		path := fsat.Path(dirfd, fi.name)
		p.xattrs(hdr, func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) },
			func(attr string, buf []byte) (int, error) { return unix.Lgetxattr(path, attr, buf) })
	}
	if fi.Mode().IsRegular() && fi.st.Nlink > 1 {
		key := [2]uint64{fi.st.Dev, fi.st.Ino}
		if first, ok := p.links[key]; ok {
			closeOpened()
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return nil, p.writeHeader(hdr)
		}
		p.links[key] = name
	}
	if err := p.writeHeader(hdr); err != nil {
		closeOpened()
		return nil, err
	}
	if fi.IsDir() {
		return opened, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	if hdr.Size == 0 {
		closeOpened()
		return nil, nil
	}
	if err := p.content(opened, hdr.Size); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if pad := (blockSize - hdr.Size%blockSize) % blockSize; pad > 0 {
		_, err = p.w.Write(make([]byte, pad))
	}
	return nil, err
}

// statInfo is an fs.FileInfo for an fstatat result, as os.Lstat would give
// (archive/tar reads owners and device numbers from its *syscall.Stat_t).
type statInfo struct {
	name  string
	st    *syscall.Stat_t
	lstat *unix.Stat_t // what st was made from
}

func newStatInfo(name string, u *unix.Stat_t) statInfo {
	return statInfo{name: name, lstat: u, st: &syscall.Stat_t{Dev: u.Dev, Ino: u.Ino, Nlink: u.Nlink, Mode: u.Mode, Uid: u.Uid, Gid: u.Gid,
		Rdev: u.Rdev, Size: u.Size, Blksize: u.Blksize, Blocks: u.Blocks,
		Atim: syscall.Timespec{Sec: u.Atim.Sec, Nsec: u.Atim.Nsec}, Mtim: syscall.Timespec{Sec: u.Mtim.Sec, Nsec: u.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: u.Ctim.Sec, Nsec: u.Ctim.Nsec}}}
}

func (s statInfo) Name() string       { return s.name }
func (s statInfo) Size() int64        { return s.st.Size }
func (s statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s statInfo) Sys() any           { return s.st }
func (s statInfo) Mode() fs.FileMode  { return FileMode(s.st.Mode) }

// FileMode is os.FileMode's reading of an st_mode.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// content writes exactly size bytes of f: a file that changed size since
// it was listed would make the archive lie about it.
// It closes f.
func (p *packer) content(f *os.File, size int64) error {
	if p.copier != nil {
		return p.copier.CopyFile(f, size)
	}
	defer f.Close()
	if p.buf == nil {
		p.buf = make([]byte, 1<<20)
	}
	n, err := io.CopyBuffer(p.w, io.LimitReader(f, size), p.buf)
	if err == nil && n != size {
		err = fmt.Errorf("has %d bytes, not the %d it had when it was listed", n, size)
	}
	return err
}

// xattrs records extended attributes, except overlayfs's own bookkeeping;
// list and get read them from an open file or, for a symlink, its path.
func (p *packer) xattrs(hdr *tar.Header, list func([]byte) (int, error), get func(string, []byte) (int, error)) {
	size, err := list(nil)
	if err != nil || size == 0 {
		return // no xattrs, or a file system without them
	}
	names := make([]byte, size)
	if size, err = list(names); err != nil {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") || name == "security.selinux" {
			continue
		}
		vsize, err := get(name, nil)
		if err != nil {
			continue
		}
		value := make([]byte, vsize)
		if vsize, err = get(name, value); err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(value[:vsize])
	}
}
