package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"

	"github.com/k3-core/k3-core/golib/safego"
)

// Goroutines is the internal operation engineGoroutines, for tests only (it
// is not part of the API): how many goroutines the engine runs now. An
// aborted operation must stop all of its work, so once its promise has
// settled both counts are back where they were before it began.
type Goroutines struct {
	// Started counts the goroutines started through safego and still running.
	Started int `json:"started"`
	// Total counts every goroutine of the process, the libraries' own
	// (compressors, HTTP requests) included, except those of what the
	// engine keeps open across operations by design: the reader and writer
	// of each kept-alive HTTP connection of the registry clients, and each
	// open store's database connection opener.
	Total int `json:"total"`
	// Stacks are those goroutines' stacks, when asked for with
	// engineGoroutines({stacks: true}), to tell which one is left.
	Stacks []string `json:"stacks,omitempty"`
}

func (e *Engine) engineGoroutines(_ context.Context, req *Request) (any, error) {
	var args []struct {
		Stacks bool `json:"stacks"`
	}
	json.Unmarshal(req.Args, &args) // absent or malformed: the counts alone
	stacks := countedGoroutines()
	g := Goroutines{Started: safego.Running(), Total: len(stacks)}
	if len(args) > 0 && args[0].Stacks {
		g.Stacks = stacks
	}
	return g, nil
}

func countedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var counted []string
	for _, stack := range bytes.Split(buf, []byte("\n\n")) {
		if !keptOpen(stack) {
			counted = append(counted, string(stack))
		}
	}
	return counted
}

func keptOpen(stack []byte) bool {
	return bytes.Contains(stack, []byte("net/http.(*persistConn)")) ||
		bytes.Contains(stack, []byte("database/sql.(*DB).connectionOpener"))
}
