// Package inspecttest holds the check the fuzz tests of inspect's local
// sources share: reading an archive must fail, if at all, with an error
// the engine classifies.
package inspecttest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/k3-core/k3-core/golib/content"
	"github.com/k3-core/k3-core/golib/inspect"
)

// Source is an inspect.Source over an open archive.
type Source interface {
	inspect.Source
	io.Closer
}

// ReadArchive writes archive to a file, opens it with open and inspects it
// for the host platform. It fails t when the error is not a missing image
// or bad content: anything else would reach the caller as a registry or
// generic failure.
func ReadArchive(t *testing.T, archive []byte, open func(path string) (Source, error)) {
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := open(p)
	if err == nil {
		_, err = inspect.Read(context.Background(), src, inspect.HostPlatform())
		src.Close()
	}
	var notFound *inspect.NotFoundError
	var bad *inspect.ContentError
	var noPlatform *inspect.PlatformNotFoundError
	var mismatch *content.DigestMismatchError
	if err != nil && !errors.As(err, &notFound) && !errors.As(err, &bad) && !errors.As(err, &noPlatform) && !errors.As(err, &mismatch) {
		t.Fatalf("unclassified error %T: %v", err, err)
	}
}
