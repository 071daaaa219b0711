// Package content owns content addressing: checking that bytes are what
// their digest says, with any algorithm go-digest knows.
package content

import (
	// go-digest panics on an algorithm whose hash is not linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// DigestMismatchError reports content that does not hash to its digest.
type DigestMismatchError struct{ What, Want, Got string }

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("digest mismatch: %s should be %s but is %s", e.What, e.Want, e.Got)
}

// Verify returns nil when raw hashes to want.
func Verify(what string, raw []byte, want string) error {
	d, err := digest.Parse(want)
	if err != nil {
		return fmt.Errorf("%s: invalid digest %q: %w", what, want, err)
	}
	if !d.Algorithm().Available() {
		return fmt.Errorf("%s: digest algorithm %s is not supported", what, d.Algorithm())
	}
	if got := d.Algorithm().FromBytes(raw); got != d {
		return &DigestMismatchError{What: what, Want: want, Got: got.String()}
	}
	return nil
}
