package safego

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func panicMessage(t *testing.T, err error) string {
	t.Helper()
	var perr *PanicError
	if !errors.As(err, &perr) {
		t.Fatalf("want a *PanicError, got %v", err)
	}
	if !strings.Contains(string(perr.Stack), "safego_test.go") {
		t.Errorf("the stack does not show where the panic happened:\n%s", perr.Stack)
	}
	return perr.Message()
}

func TestRunTurnsAPanicIntoAnError(t *testing.T) {
	err := Run(func() error { panic("boom") })
	if msg := panicMessage(t, err); msg != "boom" {
		t.Errorf("message %q", msg)
	}
	want := errors.New("plain")
	if err := Run(func() error { return want }); err != want {
		t.Errorf("an ordinary error changed: %v", err)
	}
}

func TestGoReportsAPanicOnItsGoroutine(t *testing.T) {
	done := make(chan error, 1)
	var nilMap map[string]int
	Go(func() error {
		nilMap["x"] = 1 // a runtime panic, not a panic call
		return nil
	}, func(err error) { done <- err })
	if msg := panicMessage(t, <-done); !strings.Contains(msg, "nil map") {
		t.Errorf("message %q", msg)
	}
	Go(func() error { return nil }, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Errorf("a function that succeeded reported %v", err)
	}
}

func TestGroupWaitReturnsAPanicOfOneOfItsGoroutines(t *testing.T) {
	g, ctx := WithContext(context.Background())
	g.SetLimit(2)
	for i := 0; i < 4; i++ {
		g.Go(func() error {
			if i == 2 {
				panic("layer 2 broke")
			}
			return nil
		})
	}
	err := g.Wait()
	if msg := panicMessage(t, err); msg != "layer 2 broke" {
		t.Errorf("message %q", msg)
	}
	if ctx.Err() == nil {
		t.Error("the group's context was not cancelled")
	}
	plain := NewGroup()
	plain.Go(func() error { return nil })
	if err := plain.Wait(); err != nil {
		t.Errorf("a group whose functions succeeded reported %v", err)
	}
}
