package outfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// listen serves one connection on a Unix socket, as the JS layer does for
// a Writable, and hands it over.
func listen(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sink.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := make(chan net.Conn, 1)
	go func() { // a test's own peer, not engine code
		c, err := l.Accept()
		if err == nil {
			conns <- c
		}
	}()
	return path, conns
}

func TestConnectWritesCompressedIntoTheSocket(t *testing.T) {
	path, conns := listen(t)
	f, err := Connect(context.Background(), path, Zstd)
	if err != nil {
		t.Fatal(err)
	}
	conn := <-conns
	want := bytes.Repeat([]byte("k3 stream "), 100000)
	got := make(chan []byte)
	go func() { // the reader
		r, _ := zstd.NewReader(conn)
		b, _ := io.ReadAll(r)
		got <- b
	}()
	if _, err := f.Writer().Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes back, want %d", len(b), len(want))
	}
}

// A reader that takes nothing blocks the writes (that is the backpressure);
// the call's end stops a blocked write with the context's error.
func TestConnectStopsABlockedWriteWhenTheCallEnds(t *testing.T) {
	path, conns := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Connect(ctx, path, None)
	if err != nil {
		t.Fatal(err)
	}
	defer (<-conns).Close()
	done := make(chan error, 1)
	go func() { // the writer, which must block
		_, err := f.Writer().Write(make([]byte, 64<<20))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write no one reads returned %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked write ended with %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the blocked write did not end with the call")
	}
	f.Abort()
}

func TestConnectToNothingFails(t *testing.T) {
	if _, err := Connect(context.Background(), filepath.Join(t.TempDir(), "none.sock"), None); err == nil {
		t.Fatal("connected to a socket that does not exist")
	}
}

// The socket holds a few of the engine's 1 MiB writes, as far as the host's
// net.core.wmem_max allows, so that each goes in one call.
func TestConnectAsksForALargeSendBuffer(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	path, conns := listen(t)
	f, err := Connect(context.Background(), path, None)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	conn := <-conns
	defer conn.Close()
	got, err := unix.GetsockoptInt(int(f.file.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * min(socketBuffer, limit); got < want { // the kernel doubles what it is given
		t.Fatalf("SO_SNDBUF is %d, want at least %d (wmem_max %d)", got, want, limit)
	}
}
