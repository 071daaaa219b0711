// Package engine owns k3-core's operations as the outside world calls them:
// a method name and JSON arguments in, a JSON-able result or a catalogued
// *errcat.Error out; ops.go lists every operation and where its handler
// is. It holds the state shared by all calls of one process
// (registry clients, the inspect cache) and turns panics into GenericFailure,
// since a panic in a library loaded into Node would end the user's process:
// the operation's own, and, through package safego, those of the goroutines
// it starts.
//
// Errors follow one scheme. A failure an operation foresees (its arguments,
// a container that does not exist, a state that forbids the call) names its
// class where it is found. Any other failure is read as a fault, what went
// wrong in the engine's own words (faults.go), by one of three readers,
// after what the operation was doing: reading an image
// (classifyImageError), writing an output file (classifyOutputError) or
// running the OCI runtime (classifyRuntimeError). faultClasses then names
// the class each operation documents for that fault; a fault it does not
// list is its GenericFailure. Tests check every class against the
// catalogue.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/registry"
	"github.com/k3-core/k3-core/golib/safego"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

// Engine runs operations. One per process is enough; it is safe for
// concurrent use.
type Engine struct {
	registries *registry.Pool
	inspector  *inspect.Inspector
	storesMu   sync.Mutex
	stores     map[string]*store.Store
}

// New returns an Engine with empty caches.
func New() *Engine {
	return &Engine{registries: registry.NewPool(), inspector: inspect.New(), stores: map[string]*store.Store{}}
}

// Request is one call as the binding delivers it.
type Request struct {
	// Args are the method's positional arguments.
	Args json.RawMessage `json:"args"`
	// Root is the state directory the caller's K3Core uses.
	Root string `json:"root"`
	// Runtime is the OCI runtime the caller chose ("" for runc, else crun).
	Runtime string `json:"runtime"`
	// Monitor is the path of the k3-monitor binary built beside the library.
	Monitor string `json:"monitor"`
	// Userns is the path of the k3-userns helper built beside the library,
	// which package userns starts inside a user namespace.
	Userns string `json:"userns"`
	// Emit sends a progress event to the caller; never nil.
	Emit func(event any) `json:"-"`
}

// Call runs method with its JSON request ({args, root}). Every error it
// returns is an *errcat.Error.
func (e *Engine) Call(ctx context.Context, method string, request []byte, emit func(any)) (result any, err error) {
	req := &Request{Emit: emit}
	if req.Emit == nil {
		req.Emit = func(any) {}
	}
	if jerr := json.Unmarshal(request, req); jerr != nil {
		return nil, errcat.New(method, errcat.Generic, "request could not be read: "+jerr.Error(), jerr)
	}
	if req.Userns != "" {
		treeops.UseHelper(req.Userns)
	}
	op, ok := operations[method]
	if !ok {
		return nil, errcat.New(method, errcat.Generic, fmt.Sprintf("unknown method %q", method), nil)
	}
	err = safego.Run(func() error {
		var opErr error
		result, opErr = op.run(e, ctx, req)
		return opErr
	})
	if err == nil {
		return result, nil
	}
	// A panic, in the operation or in a goroutine it started, is a bug
	// whatever the operation's own mapping made of it.
	var panicked *safego.PanicError
	if errors.As(err, &panicked) {
		return nil, errcat.New(method, errcat.Generic, "internal error: "+panicked.Message(), fmt.Errorf("%w\n%s", panicked, panicked.Stack))
	}
	// A host that refuses the user namespace an ordinary user's file work
	// runs in is the same condition whatever the operation.
	var refused *treeops.RefusedError
	if errors.As(err, &refused) {
		return nil, refused.Host.ForOp(method)
	}
	var otherwise *treeops.OtherwiseError
	if errors.As(err, &otherwise) {
		return nil, otherwise.ForOp(method)
	}
	if cerr, ok := err.(*errcat.Error); ok {
		return nil, cerr
	}
	return nil, errcat.New(method, errcat.Generic, err.Error(), err)
}

// ping answers at once: the binding's tests and benchmarks use it to measure
// the cost of a call crossing into Go and back.
func (e *Engine) ping(_ context.Context, req *Request) (any, error) {
	return req.Args, nil
}

// store returns the open store at root, opening it on first use.
func (e *Engine) store(root string) (*store.Store, error) {
	e.storesMu.Lock()
	defer e.storesMu.Unlock()
	if s, ok := e.stores[root]; ok {
		return s, nil
	}
	s, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	e.stores[root] = s
	return s, nil
}
