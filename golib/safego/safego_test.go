package safego

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestEveryGoroutineInGolibRecovers finds every go statement and errgroup
// in golib: a goroutine an operation starts must run through this package.
// Only k3-monitor, a process of its own that outlives the caller, may
// start bare goroutines.
func TestEveryGoroutineInGolibRecovers(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	exempt := map[string]bool{filepath.Join(root, "safego"): true, filepath.Join(root, "cmd", "k3-monitor"): true}
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && exempt[path] {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, imp := range file.Imports {
			if imp.Path.Value == `"golang.org/x/sync/errgroup"` {
				t.Errorf("%s: imports errgroup; use safego.Group, whose goroutines recover", fset.Position(imp.Pos()))
			}
		}
		checked++
		ast.Inspect(file, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: a bare go statement; start it with safego.Go so a panic cannot end the process", fset.Position(g.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("only %d files checked: is %s golib?", checked, root)
	}
}

func TestRunningCountsTheGoroutinesStillRunning(t *testing.T) {
	before := Running()
	release := make(chan struct{})
	ended := make(chan error, 2)
	Go(func() error { <-release; return nil }, func(err error) { ended <- err })
	g := NewGroup()
	started := make(chan struct{})
	g.Go(func() error { close(started); <-release; return nil })
	<-started
	if got := Running(); got != before+2 {
		t.Fatalf("Running() = %d with two goroutines blocked, want %d", got, before+2)
	}
	close(release)
	<-ended
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// Go's goroutine counts itself down after done has run.
	deadline := time.Now().Add(time.Minute)
	for Running() != before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := Running(); got != before {
		t.Fatalf("Running() = %d once both ended, want %d", got, before)
	}
}
