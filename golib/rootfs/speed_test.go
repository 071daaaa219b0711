package rootfs

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSpeed times WriteTar against GNU tar on a tree shaped like a Debian
// root (about 11,600 entries, 380 MB). It only prints; it runs when asked
// for by name: go test -run TestSpeed -v ./golib/rootfs/
func TestSpeed(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "Speed") {
		t.Skip("timing only; run it with -run TestSpeed -v")
	}
	base := t.TempDir()
	tree, top := filepath.Join(base, "tree"), filepath.Join(base, "top")
	entries, size := buildDebianish(t, tree)
	os.Mkdir(top, 0o755)
	t.Logf("tree: %d entries, %.0f MB", entries, float64(size)/1e6)
	s := Stack{top, tree}
	out := filepath.Join(base, "out.tar")

	gnu := func() {
		cmd := exec.Command("tar", "--numeric-owner", "-cf", out, "-C", tree, ".")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, b)
		}
	}
	ours := func() {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := s.WriteTar(context.Background(), f, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// GNU tar notices an archive on /dev/null and skips reading; WriteTar
	// cannot tell, so this is the cost of reading and formatting alone.
	devNull := func() {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := s.WriteTar(context.Background(), f, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	gnuNull := func() {
		cmd := exec.Command("sh", "-c", "tar --numeric-owner -cf - -C "+tree+" . | cat >/dev/null")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, b)
		}
	}
	measure := func() {
		if _, err := s.Measure(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	pipe := func() {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			buf := make([]byte, 1<<20)
			for {
				if _, err := r.Read(buf); err != nil {
					break
				}
			}
			close(done)
		}()
		if _, err := s.WriteTar(context.Background(), w, Options{}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		<-done
		r.Close()
	}
	for _, c := range []struct {
		name string
		run  func()
	}{
		{"GNU tar -cf file", gnu},
		{"WriteTar to file", ours},
		{"GNU tar -cf - | cat", gnuNull},
		{"WriteTar to pipe", pipe},
		{"WriteTar to /dev/null", devNull},
		{"Measure", measure},
	} {
		c.run() // warm the page cache
		best := time.Duration(math.MaxInt64)
		for range 5 {
			start := time.Now()
			c.run()
			best = min(best, time.Since(start))
		}
		t.Log(fmt.Sprintf("%-24s %v (best of 5)", c.name, best.Round(time.Millisecond)))
	}
	compareCopyFileRange(t, filepath.Join(tree, "big0"), out)
}

// compareCopyFileRange times the two ways to append a large file's contents
// at a tar's 512-byte offset: copy_file_range, and read and write through a
// 1 MiB buffer as the sink does.
func compareCopyFileRange(t *testing.T, src, dst string) {
	buf := make([]byte, bufSize)
	for _, how := range []string{"copy_file_range", "read+write"} {
		best := time.Duration(math.MaxInt64)
		for range 5 {
			in, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(buf[:512])
			start := time.Now()
			if how == "copy_file_range" {
				fi, _ := in.Stat()
				_, err = io.CopyN(out, in, fi.Size()) // (*os.File).ReadFrom: copy_file_range
			} else {
				_, err = io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf)
			}
			best = min(best, time.Since(start))
			in.Close()
			out.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Log(fmt.Sprintf("14 MB at offset 512, %-16s %v", how, best.Round(10*time.Microsecond)))
	}
}

// buildDebianish writes about 700 directories and 10,900 files whose sizes
// spread log-uniformly from 100 B to 256 KiB, plus a few large ones.
func buildDebianish(t *testing.T, root string) (entries int, size int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, 8<<20)
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	write := func(p string, n int64) {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		for left := n; left > 0; left -= int64(len(chunk)) {
			if _, err := f.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		entries++
		size += n
	}
	for d := range 700 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d%40), fmt.Sprintf("sub%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		entries++
		for f := range 15 {
			n := int64(math.Exp(math.Log(100) + rng.Float64()*(math.Log(256<<10)-math.Log(100))))
			write(filepath.Join(dir, fmt.Sprintf("file%02d.so", f)), n)
		}
	}
	for i := range 5 {
		write(filepath.Join(root, fmt.Sprintf("big%d", i)), 14<<20)
	}
	return entries + 40, size
}
