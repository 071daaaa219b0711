// Package tartest builds small tar archives for tests and fuzz seeds,
// hostile ones included: names are written as given, "../" and all.
package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"testing"
)

// Member is one entry: a regular file holding Body, or a symlink to Link.
type Member struct{ Name, Body, Link string }

// File is a regular file member.
func File(name, body string) Member { return Member{Name: name, Body: body} }

// Symlink is a symlink member.
func Symlink(name, target string) Member { return Member{Name: name, Link: target} }

// Tar returns the archive of members in order, end-of-archive blocks
// included.
func Tar(t testing.TB, members ...Member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := &tar.Header{Name: m.Name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(m.Body))}
		if m.Link != "" {
			h = &tar.Header{Name: m.Name, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: m.Link}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", m.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(m.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
