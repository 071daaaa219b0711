package ctxio

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderStopsAtTheFirstReadAfterItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := Reader(ctx, strings.NewReader("abcdef"))
	head := make([]byte, 3)
	if _, err := io.ReadFull(r, head); err != nil || string(head) != "abc" {
		t.Fatalf("before the cancel: %q, %v", head, err)
	}
	cancel()
	if n, err := r.Read(head); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("after the cancel: %d bytes, %v; want 0, context.Canceled", n, err)
	}
}
