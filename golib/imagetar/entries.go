package imagetar

import (
	"archive/tar"
	"io"
	"sort"
	"strings"
	"time"
)

// entry is one member of the archive being assembled.
type entry struct {
	name     string // without a trailing slash
	dir      bool
	linkname string // a symlink when set
	mtime    time.Time
	data     []byte                        // small members
	size     int64                         // large members: their size...
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
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := strings.Split(entries[i].name, "/"), strings.Split(entries[j].name, "/")
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return len(a) < len(b)
	})
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
// Go's tar writer does: two zero blocks, no padding to a record size.
func writeEntries(w io.Writer, entries []entry, style headerStyle, copied func(int64)) error {
	walkOrder(entries)
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := tw.WriteHeader(style.header(e)); err != nil {
			return err
		}
		switch {
		case e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		case e.open != nil:
			if err := copyMember(tw, e, copied); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyMember(tw *tar.Writer, e entry, copied func(int64)) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := tw.Write(buf[:n]); werr != nil {
				return werr
			}
			copied(int64(n))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
