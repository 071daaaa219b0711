package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/safego"
)

// An operation whose background goroutine panics fails as GenericFailure
// with the panic's message in details.error and its stack only in the
// cause, however the operation's own mapping classed the error; the test
// binary living on is the process staying alive.
func TestAPanicInAnOperationsGoroutineIsGenericFailure(t *testing.T) {
	background := func() error {
		g, ctx := safego.WithContext(context.Background())
		g.Go(func() error {
			var layers map[string]int
			layers["sha256:abc"]++ // a runtime panic, as a real bug would be
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return ctx.Err()
		})
		return g.Wait()
	}
	operations["panicsInBackground"] = op{run: func(*Engine, context.Context, *Request) (any, error) {
		return nil, background()
	}}
	// The same failure after an operation's mapping made it ExportContainerFailure.
	operations[opExport+"Panics"] = op{run: func(*Engine, context.Context, *Request) (any, error) {
		newErr := func(class, reason string, cause error) *errcat.Error {
			return errcat.New(opExport, class, reason, cause)
		}
		return nil, outputFailure(opExport, newErr, background(), "/tmp/out.tar", 0)
	}}
	defer delete(operations, "panicsInBackground")
	defer delete(operations, opExport+"Panics")

	for _, method := range []string{"panicsInBackground", opExport + "Panics"} {
		_, err := New().Call(context.Background(), method, []byte(`{"args":[]}`), nil)
		var cerr *errcat.Error
		if !errors.As(err, &cerr) || cerr.Class != errcat.Generic {
			t.Fatalf("%s: got %v, want GenericFailure", method, err)
		}
		wire := cerr.ToWire()
		reason, _ := wire.Details["error"].(string)
		if !strings.Contains(reason, "assignment to entry in nil map") || strings.Contains(reason, "goroutine") {
			t.Errorf("%s: details.error %q, want the panic's message without a stack", method, reason)
		}
		if !strings.Contains(wire.Cause, "goroutines_test.go") {
			t.Errorf("%s: the cause has no stack:\n%s", method, wire.Cause)
		}
	}
}
