// Package errcat owns k3-core's error catalogue: the typed failures every
// operation may report. The catalogue itself is catalogue.json, which the
// JavaScript layer reads too, so a class, its status code, type, message and
// hints are written down exactly once.
package errcat

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
)

//go:embed catalogue.json
var catalogueJSON []byte

// Entry is one error class as an operation reports it.
type Entry struct {
	StatusCode int      `json:"statusCode"`
	Type       string   `json:"type"`
	Message    string   `json:"message"`
	Hint       []string `json:"hint"`
}

type catalogue struct {
	Common     map[string]Entry            `json:"common"`
	Operations map[string]map[string]Entry `json:"operations"`
}

// loaded is the catalogue, decoded when first needed: the helper binaries
// (k3-userns, k3-monitor) import this package, and decoding it at every
// start of theirs cost 2-5 ms they mostly never use.
var loaded = sync.OnceValue(mustLoad)

func mustLoad() catalogue {
	var c catalogue
	if err := json.Unmarshal(catalogueJSON, &c); err != nil {
		panic("errcat: catalogue.json is malformed: " + err.Error())
	}
	return c
}

// Lookup returns the catalogue entry of class as operation op reports it.
func Lookup(op, class string) (Entry, bool) {
	cat := loaded()
	if e, ok := cat.Operations[op][class]; ok {
		return e, true
	}
	e, ok := cat.Common[class]
	return e, ok
}

// Generic is the class every operation uses for failures nothing else covers.
const Generic = "GenericFailure"

// Error is a failure of one operation, named by its catalogue class.
type Error struct {
	Op    string
	Class string
	// Reason is the specific low-level reason in plain words; it becomes
	// details.error.
	Reason string
	// Details holds extra keys of details (the operation's inputs and any
	// keys the class documents, such as requiredSpace).
	Details map[string]any
	// Cause is the underlying error, kept for logs and for details-free
	// context such as an errno or registry error code.
	Cause error
	// CauseCode is the machine-readable low-level code (ECONNREFUSED,
	// MANIFEST_UNKNOWN, ...) when there is one.
	CauseCode string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Class, e.Reason)
}

func (e *Error) Unwrap() error { return e.Cause }

// New makes an Error of class for op. It panics on a class the catalogue does
// not list for op, because that is a programming error a test must catch.
func New(op, class, reason string, cause error) *Error {
	if _, ok := Lookup(op, class); !ok {
		panic(fmt.Sprintf("errcat: class %q is not in the catalogue for %q", class, op))
	}
	return &Error{Op: op, Class: class, Reason: reason, Cause: cause, Details: map[string]any{}}
}

// With adds details keys and returns e, for chaining.
func (e *Error) With(key string, value any) *Error {
	e.Details[key] = value
	return e
}

// Wire is the JSON form an Error crosses the C boundary in.
type Wire struct {
	Op        string         `json:"op"`
	Class     string         `json:"class"`
	Details   map[string]any `json:"details"`
	Cause     string         `json:"cause,omitempty"`
	CauseCode string         `json:"causeCode,omitempty"`
}

// ToWire builds the documented details object: {type, statusCode, ...inputs, error}.
func (e *Error) ToWire() Wire {
	entry, _ := Lookup(e.Op, e.Class)
	details := map[string]any{}
	for k, v := range e.Details {
		details[k] = v
	}
	details["type"] = entry.Type
	details["statusCode"] = entry.StatusCode
	details["error"] = e.Reason
	w := Wire{Op: e.Op, Class: e.Class, Details: details, CauseCode: e.CauseCode}
	if e.Cause != nil {
		w.Cause = e.Cause.Error()
	}
	return w
}
