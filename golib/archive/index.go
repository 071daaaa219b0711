// Package archive owns reading tar archives that hold images (OCI archives
// and `docker save` tarballs): it indexes an archive once and then reads any
// member by name without scanning or unpacking the rest.
package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Member is one regular file inside an archive.
type Member struct {
	Offset int64
	Size   int64
}

// Index maps member names (cleaned, without a leading "./") to their place.
type Index struct {
	file    *os.File
	members map[string]Member
	links   map[string]string
}

// Open indexes the tar archive at p. Member data is skipped with seeks, so
// indexing a multi-GB archive reads only its headers.
func Open(p string) (*Index, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	idx := &Index{file: f, members: map[string]Member{}, links: map[string]string{}}
	counter := &countingReader{r: f}
	tr := tar.NewReader(counter)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("not a readable tar archive: %w", err)
		}
		name := cleanName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			idx.members[name] = Member{Offset: counter.n, Size: hdr.Size}
		case tar.TypeSymlink:
			// docker save writes repeated layers as symlinks to the first copy.
			idx.links[name] = cleanName(path.Join(path.Dir(name), hdr.Linkname))
		case tar.TypeLink:
			idx.links[name] = cleanName(hdr.Linkname)
		}
	}
	return idx, nil
}

func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// Close releases the archive file.
func (x *Index) Close() error { return x.file.Close() }

// Stat returns the member named n, following links inside the archive.
func (x *Index) Stat(n string) (Member, error) {
	n = cleanName(n)
	for hops := 0; hops < 16; hops++ {
		if m, ok := x.members[n]; ok {
			return m, nil
		}
		target, ok := x.links[n]
		if !ok {
			break
		}
		n = target
	}
	return Member{}, fmt.Errorf("%s: %w in the archive", n, fs.ErrNotExist)
}

// ReadFile returns the whole member n, refusing members over limit bytes.
func (x *Index) ReadFile(n string, limit int64) ([]byte, error) {
	m, err := x.Stat(n)
	if err != nil {
		return nil, err
	}
	if m.Size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", n, m.Size, limit)
	}
	buf := make([]byte, m.Size)
	if _, err := x.file.ReadAt(buf, m.Offset); err != nil {
		return nil, fmt.Errorf("reading %s: %w", n, err)
	}
	return buf, nil
}

// Section returns a reader of member n's bytes, which may be read while
// other members are.
func (x *Index) Section(n string) (*io.SectionReader, error) {
	m, err := x.Stat(n)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(x.file, m.Offset, m.Size), nil
}

// countingReader tracks the offset tar.Reader has reached, and passes seeks
// through so that skipping member data costs no reads.
type countingReader struct {
	r io.ReadSeeker
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := c.r.Seek(offset, whence)
	if err == nil {
		c.n = pos
	}
	return pos, err
}
