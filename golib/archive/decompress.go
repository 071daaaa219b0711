package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// Decompress recognises gzip, zstd, bzip2 or xz by the stream's first bytes rather
// than a media type or file name, which registries and tools get wrong
// often enough; anything else passes through as it is. pgzip inflates ahead
// on another core, so a reader unpacks while it inflates.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(10)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch Compression(head) {
	case "gzip":
		gz, err := pgzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		// Hide pgzip's WriteTo from io.Copy: it reports a failed write
		// (ENOSPC, EIO) as io.ErrShortWrite and loses the reason.
		return struct{ io.ReadCloser }{gz}, nil
	case "zstd":
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(br)), nil
	case "xz":
		x, err := xz.NewReader(br)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	default:
		return io.NopCloser(br), nil
	}
}

// Compression names the compression a stream's first bytes announce:
// "gzip", "zstd", "bzip2", "xz", or "" for none.
func Compression(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9' &&
		string(head[4:10]) == "1AY&SY": // a tar may name a file "BZh...": the first block's magic too
		return "bzip2"
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	}
	return ""
}
