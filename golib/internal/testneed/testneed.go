// Package testneed decides what a Go test does when the machine lacks
// something the test needs (root, a tool, a mount): on a developer's machine
// it skips with the reason; under CI (CI=true) it fails, so a green CI means
// every such test ran.
package testneed

import (
	"os"
	"testing"
)

// Missing reports that the test cannot run here, and why.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, and what this test needs is missing: %s", reason)
	}
	t.Skip(reason)
}
