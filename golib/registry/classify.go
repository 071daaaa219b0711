package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k3-core/k3-core/golib/content"
)

// Kind is what a registry failure means to the caller.
type Kind int

const (
	// Other is a failure none of the kinds below describe.
	Other Kind = iota
	// NotFound: the repository, tag or digest is unknown.
	NotFound
	// Unauthorized: the registry refused the credentials (or their absence).
	Unauthorized
	// Unreachable: DNS, refused, reset, TLS or timeout; no usable answer.
	Unreachable
	// BadContent: the registry answered with something that cannot be trusted
	// or read (digest mismatch, malformed manifest).
	BadContent
)

// Failure is a classified registry error: its kind, the low-level reason in
// plain words, and the machine-readable code where one exists.
type Failure struct {
	Kind   Kind
	Reason string
	Code   string
}

// Classify maps an error from go-containerregistry or the network onto a
// Failure. HTTP status decides first and the registry's error code second,
// because registries disagree on codes far more than on statuses.
func Classify(err error) Failure {
	if err == nil {
		return Failure{Kind: Other}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return Failure{Kind: Unreachable, Reason: "connection timeout", Code: "ETIMEDOUT"}
	}
	var mismatch *content.DigestMismatchError
	if errors.As(err, &mismatch) {
		return Failure{Kind: BadContent, Reason: mismatch.Error(), Code: "DIGEST_MISMATCH"}
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return classifyHTTP(terr)
	}
	if f, ok := classifyNetwork(err); ok {
		return f
	}
	msg := err.Error()
	if strings.Contains(msg, "does not match requested digest") {
		return Failure{Kind: BadContent, Reason: "digest mismatch: " + msg, Code: "DIGEST_MISMATCH"}
	}
	return Failure{Kind: Other, Reason: msg}
}

func classifyHTTP(terr *transport.Error) Failure {
	code, message := "", ""
	if len(terr.Errors) > 0 {
		code = string(terr.Errors[0].Code)
		message = terr.Errors[0].Message
	}
	if message == "" {
		message = strings.ToLower(http.StatusText(terr.StatusCode))
	}
	switch {
	case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
		if code == "" {
			code = "UNAUTHORIZED"
			if terr.StatusCode == http.StatusForbidden {
				code = "DENIED"
			}
		}
		// Matches the documented form "unauthorized: authentication required".
		return Failure{Kind: Unauthorized, Reason: strings.ToLower(code) + ": " + message, Code: code}
	case terr.StatusCode == http.StatusNotFound:
		if code == "" {
			code = "MANIFEST_UNKNOWN"
			message = "manifest unknown"
		}
		return Failure{Kind: NotFound, Reason: message, Code: code}
	case terr.StatusCode == http.StatusTooManyRequests:
		return Failure{Kind: Unreachable, Reason: "registry rate limit: " + message, Code: "TOOMANYREQUESTS"}
	case terr.StatusCode >= 500:
		return Failure{Kind: Unreachable, Reason: fmt.Sprintf("registry answered %d %s", terr.StatusCode, http.StatusText(terr.StatusCode)), Code: fmt.Sprintf("HTTP_%d", terr.StatusCode)}
	}
	switch code {
	case "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN":
		return Failure{Kind: NotFound, Reason: message, Code: code}
	case "UNAUTHORIZED", "DENIED":
		return Failure{Kind: Unauthorized, Reason: strings.ToLower(code) + ": " + message, Code: code}
	case "MANIFEST_INVALID", "DIGEST_INVALID", "UNSUPPORTED":
		return Failure{Kind: BadContent, Reason: message, Code: code}
	}
	return Failure{Kind: Other, Reason: fmt.Sprintf("registry answered %d: %s", terr.StatusCode, message), Code: code}
}

func classifyNetwork(err error) (Failure, bool) {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return Failure{Kind: Unreachable, Reason: "no such host: " + dnsErr.Name, Code: "ENOTFOUND"}, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return Failure{Kind: Unreachable, Reason: "connection refused", Code: "ECONNREFUSED"}, true
	case errors.Is(err, syscall.ECONNRESET):
		return Failure{Kind: Unreachable, Reason: "connection reset", Code: "ECONNRESET"}, true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Failure{Kind: Unreachable, Reason: "host unreachable", Code: "EHOSTUNREACH"}, true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Failure{Kind: Unreachable, Reason: "connection closed by registry", Code: "ECONNRESET"}, true
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &recordErr) {
		return Failure{Kind: Unreachable, Reason: "TLS failure: " + err.Error(), Code: "TLS"}, true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return Failure{Kind: Unreachable, Reason: "connection timeout", Code: "ETIMEDOUT"}, true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Failure{Kind: Unreachable, Reason: opErr.Err.Error(), Code: "ENET"}, true
	}
	return Failure{}, false
}
