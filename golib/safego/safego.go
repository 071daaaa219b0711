// Package safego runs the goroutines k3-core's operations start, so that a
// panic on one of them ends that operation with an error instead of ending
// the process. k3-core is a library loaded into Node: a panic that no
// goroutine recovers kills the user's whole program, and a recover only
// catches panics of its own goroutine, so every goroutine needs its own.
//
// A recovered panic is a *PanicError, carrying the panic's value and the
// stack where it happened; the engine reports any operation whose error
// holds one as GenericFailure, with the panic's message in details.error.
package safego

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// PanicError is a panic recovered on a goroutine.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, for logs.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Message is the panic's value in words.
func (e *PanicError) Message() string { return fmt.Sprint(e.Value) }

// Run calls fn on the calling goroutine and returns its error, or a
// *PanicError if fn panics.
func Run(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// Go runs fn on a new goroutine, as Run does; then, on that goroutine, it
// calls done (when not nil) with fn's error or panic, so a caller waiting
// for fn hears of its end however fn ended. done only hands the result
// on (a channel send, a WaitGroup's Done); it is not itself recovered.
func Go(fn func() error, done func(error)) {
	running.Add(1)
	go func() {
		defer running.Add(-1)
		err := Run(fn)
		if done != nil {
			done(err)
		}
	}()
}

// running counts the goroutines Go and Group.Go started that have not
// ended yet.
var running atomic.Int64

// Running is how many goroutines this package started are still running:
// with nothing in flight it is back to what it was, which is how the tests
// check that an aborted operation stopped all of its work.
func Running() int { return int(running.Load()) }

// Group is an errgroup.Group whose goroutines recover: a function that
// panics returns its *PanicError, which Wait reports like any error.
type Group struct {
	group *errgroup.Group
}

// NewGroup returns an empty Group.
func NewGroup() *Group { return &Group{group: &errgroup.Group{}} }

// WithContext returns a Group and a context cancelled when a function of
// the group fails or panics, or when Wait returns.
func WithContext(ctx context.Context) (*Group, context.Context) {
	g, ctx := errgroup.WithContext(ctx)
	return &Group{group: g}, ctx
}

// Go runs fn on a new goroutine of the group, waiting first for a free
// slot when the group has a limit.
func (g *Group) Go(fn func() error) {
	g.group.Go(func() error {
		running.Add(1)
		defer running.Add(-1)
		return Run(fn)
	})
}

// SetLimit bounds the group's goroutines running at once (n < 0: no bound).
func (g *Group) SetLimit(n int) { g.group.SetLimit(n) }

// Wait waits for every function of the group and returns the first error.
func (g *Group) Wait() error { return g.group.Wait() }
