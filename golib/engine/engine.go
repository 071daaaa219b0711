// Package engine owns k3-core's operations as the outside world calls them:
// a method name and JSON arguments in, a JSON-able result or a catalogued
// *errcat.Error out. It holds the state shared by all calls of one process
// (registry clients, the inspect cache) and turns panics into GenericFailure,
// since a panic in a library loaded into Node would end the user's process.
package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/inspect"
	"github.com/k3-core/k3-core/golib/registry"
)

// Engine runs operations. One per process is enough; it is safe for
// concurrent use.
type Engine struct {
	registries *registry.Pool
	inspector  *inspect.Inspector
}

// New returns an Engine with empty caches.
func New() *Engine {
	return &Engine{registries: registry.NewPool(), inspector: inspect.New()}
}

type operation func(e *Engine, ctx context.Context, args json.RawMessage) (any, error)

var operations = map[string]operation{
	"inspectAnImage": (*Engine).inspectAnImage,
	"ping":           (*Engine).ping,
}

// Call runs method with its JSON arguments. Every error it returns is an
// *errcat.Error.
func (e *Engine) Call(ctx context.Context, method string, args []byte) (result any, err error) {
	op, ok := operations[method]
	if !ok {
		return nil, errcat.New(method, errcat.Generic, fmt.Sprintf("unknown method %q", method), nil)
	}
	defer func() {
		if r := recover(); r != nil {
			result = nil
			err = errcat.New(method, errcat.Generic, fmt.Sprintf("internal error: %v", r), fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	result, err = op(e, ctx, args)
	if err == nil {
		return result, nil
	}
	if cerr, ok := err.(*errcat.Error); ok {
		return nil, cerr
	}
	return nil, errcat.New(method, errcat.Generic, err.Error(), err)
}

// ping answers at once: the binding's tests and benchmarks use it to measure
// the cost of a call crossing into Go and back.
func (e *Engine) ping(_ context.Context, args json.RawMessage) (any, error) {
	return json.RawMessage(args), nil
}
