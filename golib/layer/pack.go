package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
func Pack(ctx context.Context, dir string, w io.Writer, opts PackOptions) error {
	tw := tar.NewWriter(w)
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		skip[strings.Trim(s, "/")] = true
	}
	p := packer{ctx: ctx, root: dir, tw: tw, skip: skip, links: map[[2]uint64]string{}}
	if err := p.dir(""); err != nil {
		return err
	}
	return tw.Close()
}

type packer struct {
	ctx   context.Context
	root  string
	tw    *tar.Writer
	skip  map[string]bool
	links map[[2]uint64]string
	buf   []byte
}

func (p *packer) dir(rel string) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(p.root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(full)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if rel != "" {
		if opaque, err := Opaque(full); err != nil {
			return err
		} else if opaque {
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
		fi, err := os.Lstat(filepath.Join(full, name))
		if err != nil {
			return err
		}
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
		if err := p.entry(child, filepath.Join(full, name), fi); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := p.dir(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// marker writes an empty whiteout entry.
func (p *packer) marker(name string) error {
	return p.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX})
}

func (p *packer) entry(name, path string, fi fs.FileInfo) error {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	if err := p.xattrs(hdr, path); err != nil {
		return err
	}
	st, _ := fi.Sys().(*unix.Stat_t)
	if st == nil {
		st = &unix.Stat_t{}
		if err := unix.Lstat(path, st); err != nil {
			return err
		}
	}
	if fi.Mode().IsRegular() && st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := p.links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return p.tw.WriteHeader(hdr)
		}
		p.links[key] = name
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if p.buf == nil {
		p.buf = make([]byte, 1<<20)
	}
	_, err = io.CopyBuffer(p.tw, io.LimitReader(f, hdr.Size), p.buf)
	return err
}

// xattrs records extended attributes, except overlayfs's own bookkeeping.
func (p *packer) xattrs(hdr *tar.Header, path string) error {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		return nil // no xattrs, or a file system without them
	}
	list := make([]byte, size)
	if size, err = unix.Llistxattr(path, list); err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") || name == "security.selinux" {
			continue
		}
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			continue
		}
		value := make([]byte, vsize)
		if vsize, err = unix.Lgetxattr(path, name, value); err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(value[:vsize])
	}
	return nil
}
