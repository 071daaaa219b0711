package content

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The blob a FileWriter leaves is byte for byte what plain writes would
// give, and its digest is that of those bytes, whatever mix of small
// writes, gathered small files and large background copies made it.
func TestFileWriterMatchesPlainWrites(t *testing.T) {
	dir := t.TempDir()
	var want bytes.Buffer
	out, err := os.Create(filepath.Join(dir, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	fw := NewFileWriter(out)
	for i, size := range []int{0, 1, 511, 4096, 100 << 10, 300 << 10, 3 << 20, 17, 9 << 20, 128 << 10} {
		header := []byte(fmt.Sprintf("header %d;", i))
		fw.Write(header)
		want.Write(header)
		data := make([]byte, size)
		rand.Read(data)
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		os.WriteFile(name, data, 0o644)
		src, _ := os.Open(name)
		if err := fw.CopyFile(src, int64(size)); err != nil {
			t.Fatal(err)
		}
		want.Write(data)
	}
	digest, n, err := fw.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out.Name())
	if !bytes.Equal(got, want.Bytes()) || n != int64(want.Len()) {
		t.Fatalf("blob differs from plain writes (%d bytes, want %d)", n, want.Len())
	}
	if sum := sha256.Sum256(want.Bytes()); digest.Encoded() != fmt.Sprintf("%x", sum) {
		t.Fatalf("digest %s, want sha256:%x", digest, sum)
	}
}

// A file that shrank since it was listed fails the blob, small or large.
func TestFileWriterRefusesShrunkFiles(t *testing.T) {
	for _, size := range []int64{1000, 1 << 20} {
		dir := t.TempDir()
		out, _ := os.Create(filepath.Join(dir, "blob"))
		fw := NewFileWriter(out)
		name := filepath.Join(dir, "src")
		os.WriteFile(name, make([]byte, size/2), 0o644)
		src, _ := os.Open(name)
		copyErr := fw.CopyFile(src, size)
		_, _, err := fw.Close()
		if err == nil {
			err = copyErr
		}
		if err == nil || !strings.Contains(err.Error(), "not the") {
			t.Errorf("size %d: %v", size, err)
		}
	}
}
