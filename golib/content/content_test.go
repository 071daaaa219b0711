package content

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestVerify(t *testing.T) {
	raw := []byte("hello")
	if err := Verify("x", raw, digest.FromBytes(raw).String()); err != nil {
		t.Fatal(err)
	}
	if err := Verify("x", raw, digest.SHA512.FromBytes(raw).String()); err != nil {
		t.Fatalf("sha512 digest: %v", err)
	}
	var mismatch *DigestMismatchError
	if err := Verify("x", []byte("tampered"), digest.FromBytes(raw).String()); !errors.As(err, &mismatch) {
		t.Fatalf("tampered content: %v", err)
	}
	if err := Verify("x", raw, "md5:abc"); err == nil {
		t.Fatal("an unknown algorithm was accepted")
	}
}
