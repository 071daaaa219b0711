package archive

import (
	"bufio"
	"bytes"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Decompress recognises gzip or zstd by the stream's first bytes rather
// than a media type or file name, which registries and tools get wrong
// often enough; anything else passes through as it is. pgzip inflates ahead
// on another core, so a reader unpacks while it inflates.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
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
	default:
		return io.NopCloser(br), nil
	}
}

// Compression names the compression a stream's first bytes announce:
// "gzip", "zstd", or "" for none.
func Compression(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	}
	return ""
}
