package engine

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/errcat"
)

// A file that ends early is a corrupt local file for every operation that
// reads images, never a registry that closed the connection; from a
// registry the same error is the connection's.
func TestAnUnexpectedEndIsLocalOrRegistryByOrigin(t *testing.T) {
	cut := fmt.Errorf("layer sha256:abc: %w", io.ErrUnexpectedEOF)
	corrupt := map[string]string{
		opLoad: "InvalidArchive", opPull: "LayerVerificationFailure", opCopy: "LayerVerificationFailure",
		opInspect: "InspectImageFailure", opSave: "LayerVerificationFailure", opPush: "PushImageFailure",
		opImport: "InvalidImportArchive",
	}
	for op, want := range corrupt {
		local := imageFailure(op, fromLocal, cut)
		if local.Class != want || !strings.Contains(local.Reason, "truncated") || !strings.Contains(local.Reason, "layer sha256:abc") {
			t.Errorf("%s from local files: %s %q, want %s saying it is truncated", op, local.Class, local.Reason, want)
		}
		if op == opLoad || op == opImport {
			continue // an archive or an imported tar has no registry
		}
		if remote := imageFailure(op, fromRegistry, cut); remote.Class != "RegistryConnectionFailure" {
			t.Errorf("%s from a registry: %s, want RegistryConnectionFailure", op, remote.Class)
		}
	}
	for op, row := range faultClasses {
		if _, readsFiles := row[faultCorrupt]; readsFiles && corrupt[op] == "" {
			t.Errorf("the test does not cover %s, which reads image files", op)
		}
	}
	if e := imageFailure(opLoad, fromLocal, fmt.Errorf("something new")); e.Class != errcat.Generic {
		t.Errorf("an unknown failure is %s, want GenericFailure", e.Class)
	}
}
