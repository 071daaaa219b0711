package outfile

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// settledGoroutines waits until the process runs want goroutines, or
// fails with their stacks after a minute.
func settledGoroutines(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > want {
		buf := make([]byte, 1<<20)
		t.Fatalf("%s: %d goroutines, want %d:\n%s", what, got, want, buf[:runtime.Stack(buf, true)])
	}
}

// writeSome gives the output several compressor blocks, so its goroutines
// are all at work.
func writeSome(t *testing.T, f *File) error {
	t.Helper()
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	for i := 0; i < 8; i++ {
		if _, err := f.Writer().Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// An aborted compressed file leaves no goroutine of its compressor behind,
// and nothing under its name.
func TestAbortStopsTheCompressor(t *testing.T) {
	for _, name := range []string{"out.tar.gz", "out.tar.zst", "out.tar"} {
		dir := t.TempDir()
		before := runtime.NumGoroutine()
		f, err := Create(context.Background(), filepath.Join(dir, name), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSome(t, f); err != nil {
			t.Fatal(err)
		}
		f.Abort()
		settledGoroutines(t, before, name)
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: %d files left after the abort", name, len(entries))
		}
	}
}

// A socket whose reader stops reading: cancelling the call ends the blocked
// writes, and the abort stops the compressor's goroutines, which pgzip's
// Close alone leaves blocked after a failed write.
func TestCancelledStreamStopsTheCompressor(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd, None} {
		before := runtime.NumGoroutine()
		path, conns := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		f, err := Connect(ctx, path, c)
		if err != nil {
			t.Fatal(err)
		}
		conn := <-conns // never read from
		written := make(chan error, 1)
		go func() { // the test's own writer, writing until the socket blocks it and the cancel ends it
			for {
				if err := writeSome(t, f); err != nil {
					written <- err
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-written; !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: the blocked write returned %v, want context.Canceled", c, err)
		}
		f.Abort()
		conn.Close()
		settledGoroutines(t, before, string(c))
	}
}

// Commit after the call was cancelled keeps the output from appearing.
func TestCommitAfterCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.tar.zst")
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Create(ctx, target, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSome(t, f); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := f.Commit(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit returned %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left after a cancelled commit", len(entries))
	}
}
