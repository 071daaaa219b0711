package bundle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// endsAfter is a context whose Err reports a cancel from its n+1th call
// on: a cancel that lands at a chosen point of the copy.
type endsAfter struct {
	context.Context
	calls *int
}

func (c endsAfter) Err() error {
	*c.calls--
	if *c.calls < 0 {
		return context.Canceled
	}
	return nil
}

func TestCopyInStopsWhenCancelledAndRemovesTheFileItWasWriting(t *testing.T) {
	src := t.TempDir()
	big := filepath.Join(src, "big")
	f, err := os.Create(big)
	must(t, err)
	must(t, f.Truncate(2*copyChunk+1)) // three chunks; sparse, so cheap to make
	must(t, f.Close())

	for _, allowed := range []int{0, 2} { // before anything; after the file's first chunk
		upper := t.TempDir()
		root := Root{Layers: Stack{upper, t.TempDir()}}
		calls := allowed
		_, err := root.CopyIn(endsAfter{context.Background(), &calls}, big, "/big")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel after %d looks: CopyIn returned %v, want context.Canceled", allowed, err)
		}
		if entries, _ := os.ReadDir(upper); len(entries) != 0 {
			t.Errorf("cancel after %d looks: %d entries left in the layer", allowed, len(entries))
		}
	}
}
