package treeops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/changes"
	"github.com/k3-core/k3-core/golib/outfile"
	"github.com/k3-core/k3-core/golib/rootfs"
)

// Serve is the helper's side: it reads one request on standard input, does
// it in this process, and reports on standard output. It returns the
// helper's exit status.
func Serve() int {
	// The caller ends the helper by killing it: nothing here needs undoing.
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	var req request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		out.Encode(reply{Error: toWire(fmt.Errorf("reading the request: %w", err))})
		return 1
	}
	data := os.NewFile(3, "data")
	h := &serving{out: out, in: in}
	result, err := h.serve(ctx, req, data)
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

// serving is the helper's side of one request: where it reports, and
// where an export's approval comes from.
type serving struct {
	out *json.Encoder
	in  *bufio.Reader
}

func (h *serving) progress(a, b int64) { h.out.Encode(reply{Progress: &[2]int64{a, b}}) }

// approved reports the measure and waits for the caller's "go".
func (h *serving) approved(ctx context.Context, stack rootfs.Stack) error {
	size, err := stack.Measure(ctx)
	if err != nil {
		return err
	}
	h.out.Encode(reply{Measured: &size})
	if line, _ := h.in.ReadString('\n'); line != "go\n" {
		return errors.New("the export was not approved")
	}
	return nil
}

func (h *serving) serve(ctx context.Context, req request, data *os.File) (any, error) {
	progress := h.progress
	switch req.Op {
	case opUnpack:
		// Read from the pipe in large blocks: the tar reader's own reads (a
		// 512-byte header each) would each be a system call.
		in := bufio.NewReaderSize(data, pipeSize)
		return unpack(ctx, in, req.Dir, req.Lower, func(n int64) { progress(n, 0) }, req.Way)
	case opExport:
		if req.Approve {
			if err := h.approved(ctx, rootfs.Stack(req.Stack)); err != nil {
				return nil, err
			}
		}
		// Written as the caller's own writes to its files are.
		return rootfs.Stack(req.Stack).WriteTar(ctx, outfile.WriteBehind(data), rootfs.Options{Progress: progress})
	case opLayer:
		return writeLayer(ctx, req.Dir, req.Skip, data)
	case opRemoveAll:
		return nil, os.RemoveAll(req.Dir)
	case opCopyIn:
		return req.Root.CopyIn(ctx, req.Src, req.Dest)
	case opRemove:
		return req.Root.Remove(req.Dest)
	case opChanges:
		return changes.List(ctx, req.Dir, bundle.Stack(req.Stack))
	}
	return nil, fmt.Errorf("unknown request %q", req.Op)
}
