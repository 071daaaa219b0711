// Package ctxio owns the one reader that stops a copy when its call is
// cancelled: copies of layers, archives and uploads check their context
// between reads, so an abort ends them within one read.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r, failing with ctx's error on the first read after ctx ends.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
