package treeops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/changes"
	"github.com/k3-core/k3-core/golib/rootfs"
)

// Serve is the helper's side: it reads one request on standard input, does
// it in this process, and reports on standard output. It returns the
// helper's exit status.
func Serve() int {
	// The caller ends the helper by killing it: nothing here needs undoing.
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		out.Encode(reply{Error: toWire(fmt.Errorf("reading the request: %w", err))})
		return 1
	}
	data := os.NewFile(3, "data")
	result, err := serve(ctx, req, data, func(a, b int64) { out.Encode(reply{Progress: &[2]int64{a, b}}) })
	if err != nil {
		out.Encode(reply{Error: toWire(err)})
		return 1
	}
	raw, err := json.Marshal(result)
	if err != nil {
		out.Encode(reply{Error: toWire(err)})
		return 1
	}
	out.Encode(reply{Result: raw})
	return 0
}

func serve(ctx context.Context, req request, data *os.File, progress func(a, b int64)) (any, error) {
	switch req.Op {
	case opUnpack:
		return unpack(ctx, data, req.Dir, req.Lower, func(n int64) { progress(n, 0) }, req.Way)
	case opMeasure:
		return rootfs.Stack(req.Stack).Measure(ctx)
	case opExport:
		return rootfs.Stack(req.Stack).WriteTar(ctx, io.Writer(data), rootfs.Options{Progress: progress})
	case opLayer:
		return writeLayer(ctx, req.Dir, req.Skip, data)
	case opRemoveAll:
		return nil, os.RemoveAll(req.Dir)
	case opCopyIn:
		return req.Root.CopyIn(req.Src, req.Dest)
	case opRemove:
		return req.Root.Remove(req.Dest)
	case opChanges:
		return changes.List(ctx, req.Dir, bundle.Stack(req.Stack))
	}
	return nil, fmt.Errorf("unknown request %q", req.Op)
}
