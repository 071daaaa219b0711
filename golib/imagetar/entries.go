package imagetar

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/k3-core/k3-core/golib/ctxio"
)

// entry is one member of the archive being assembled.
type entry struct {
	name     string // without a trailing slash
	dir      bool
	linkname string // a symlink when set
	mtime    time.Time
	data     []byte                        // small members
	layer    *stagedLayer                  // a staged layer, written once staged
	size     int64                         // other large members: their size...
	open     func() (io.ReadCloser, error) // ...and how to read them
}

// headerStyle is how one Docker version spells tar headers.
type headerStyle struct {
	ownerNames bool // uname/gname "root", as Docker up to 20.10 looked them up
	typeBits   bool // file type bits in the mode (040755), as Docker up to 23 kept them
}

// walkOrder sorts entries as filepath.Walk visits a directory tree, which
// is how Docker tars its staging directory: component by component, so
// "a/b" comes before "a.json".
func walkOrder(entries []entry) {
	sort.SliceStable(entries, func(i, j int) bool { return walksBefore(entries[i].name, entries[j].name) })
}

func walksBefore(x, y string) bool {
	a, b := strings.Split(x, "/"), strings.Split(y, "/")
	for k := 0; k < len(a) && k < len(b); k++ {
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return len(a) < len(b)
}

// header builds the USTAR header Go's archive/tar writes for entry, as
// Docker's archiver does: root-owned, times to the second, no PAX records
// (every name here fits USTAR).
func (s headerStyle) header(e entry) *tar.Header {
	h := &tar.Header{Name: e.name, ModTime: e.mtime.Truncate(time.Second), Format: tar.FormatUSTAR}
	const typeDir, typeReg, typeLink = 0o40000, 0o100000, 0o120000
	switch {
	case e.dir:
		h.Typeflag, h.Name, h.Mode = tar.TypeDir, e.name+"/", 0o755
		if s.typeBits {
			h.Mode |= typeDir
		}
	case e.linkname != "":
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.linkname, 0o777
		if s.typeBits {
			h.Mode |= typeLink
		}
	default:
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, e.size
		if e.data != nil {
			h.Size = int64(len(e.data))
		}
		if s.typeBits {
			h.Mode |= typeReg
		}
	}
	if s.ownerNames {
		h.Uname, h.Gname = "root", "root"
	}
	return h
}

// writeEntries writes the members in walk order and ends the archive as
// Go's tar writer does: two zero blocks, no padding to a record size. Each
// header is the one archive/tar writes; the content is copied by us, so that
// a staged layer goes from file to file inside the kernel.
func writeEntries(ctx context.Context, w io.Writer, entries []entry, style headerStyle, copied func(int64)) error {
	walkOrder(entries)
	for _, e := range entries {
		if e.layer != nil {
			if err := e.layer.wait(ctx); err != nil {
				return err
			}
			e.size = e.layer.size
		}
		header, err := headerBlock(style.header(e))
		if err != nil {
			return err
		}
		if _, err := w.Write(header); err != nil {
			return err
		}
		size := e.size
		switch {
		case e.data != nil:
			size = int64(len(e.data))
			_, err = w.Write(e.data)
		case e.layer != nil:
			err = e.layer.copyTo(ctx, w, copied)
		case e.open != nil:
			err = copyMember(ctx, w, e, copied)
		}
		if err != nil {
			return err
		}
		if pad := (blockSize - size%blockSize) % blockSize; pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(make([]byte, 2*blockSize))
	return err
}

const blockSize = 512

// headerBlock is the 512-byte header archive/tar writes for h.
func headerBlock(h *tar.Header) ([]byte, error) {
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
		return nil, err
	}
	if buf.Len() != blockSize {
		return nil, fmt.Errorf("tar header for %s needs %d bytes, not one USTAR block", h.Name, buf.Len())
	}
	return buf.Bytes(), nil
}

// copyMember streams a member of known size, checking that it has that size.
func copyMember(ctx context.Context, w io.Writer, e entry, copied func(int64)) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyBuffer(w, &countingReader{ReadCloser: io.NopCloser(ctxio.Reader(ctx, io.LimitReader(r, e.size))), add: copied}, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != e.size {
		return fmt.Errorf("%s has %d bytes, not the %d its descriptor says", e.name, n, e.size)
	}
	// Reading to the end lets a verifying reader check the digest.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return nil
}
