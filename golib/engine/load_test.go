package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/archive/tartest"
	"github.com/k3-core/k3-core/golib/errcat"
)

// An OCI archive is extracted to the store's staging area before its images
// are listed; one whose listing fails (here: an index entry without a media
// type) must not leave that copy behind.
func TestFailedOCIArchiveLeavesNoStaging(t *testing.T) {
	missing := "sha256:" + strings.Repeat("0", 64)
	archive := tartest.Tar(t,
		tartest.File("oci-layout", `{"imageLayoutVersion":"1.0.0"}`),
		tartest.File("index.json", `{"schemaVersion":2,"manifests":[{"digest":"`+missing+`","size":2}]}`),
		tartest.File("blobs/sha256/"+strings.Repeat("1", 64), "{}"))
	top := t.TempDir()
	input, root := filepath.Join(top, "image.tar"), filepath.Join(top, "store")
	if err := os.WriteFile(input, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New().loadImage(context.Background(), &Request{Args: args(input), Root: root, Emit: func(any) {}})
	if cerr, ok := err.(*errcat.Error); !ok || cerr.Class != "InvalidArchive" {
		t.Fatalf("load of an index entry without a media type: %v", err)
	}
	if staged, _ := os.ReadDir(filepath.Join(root, "tmp")); len(staged) != 0 {
		t.Fatalf("staging left behind: %v", staged)
	}
}
