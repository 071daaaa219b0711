package engine

import (
	"bufio"
	"encoding/json"
	"os"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/safego"
)

// terminalBridge connects an exec's terminal to the Node process the
// library is loaded in, with two socket pairs: one carries what is typed
// and shown, the other JSON lines {"cols", "rows"} that resize it. Node
// gets its ends as descriptors in a progress event ({terminal: {data,
// control}}) and owns them from then on; the engine keeps the others.
type terminalBridge struct {
	data, control *os.File // the engine's ends
	nodeData      int
	nodeControl   int
	handedOver    bool // Node has its ends
	resize        chan console.WinSize
	closed        chan struct{}
}

func newTerminalBridge() (*terminalBridge, error) {
	data, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	control, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(data[0])
		unix.Close(data[1])
		return nil, err
	}
	// Non-blocking, so that closing them ends the reads in progress.
	unix.SetNonblock(data[0], true)
	unix.SetNonblock(control[0], true)
	b := &terminalBridge{
		data:        os.NewFile(uintptr(data[0]), "terminal"),
		control:     os.NewFile(uintptr(control[0]), "terminal control"),
		nodeData:    data[1],
		nodeControl: control[1],
		resize:      make(chan console.WinSize),
		closed:      make(chan struct{}),
	}
	safego.Go(b.readControl, nil)
	return b, nil
}

// readControl turns each line {"cols": C, "rows": R} into a resize.
func (b *terminalBridge) readControl() error {
	lines := bufio.NewScanner(b.control)
	for lines.Scan() {
		var size struct{ Cols, Rows uint16 }
		if json.Unmarshal(lines.Bytes(), &size) != nil || size.Cols == 0 || size.Rows == 0 {
			continue
		}
		select {
		case b.resize <- console.WinSize{Width: size.Cols, Height: size.Rows}:
		case <-b.closed:
			return nil
		}
	}
	return lines.Err()
}

// io is the terminal's side as the runtime package wants it.
func (b *terminalBridge) io() ociruntime.TerminalIO {
	return ociruntime.TerminalIO{In: b.data, Out: b.data, Resize: b.resize}
}

// handOver sends Node its ends, in a progress event.
func (b *terminalBridge) handOver(emit func(any)) {
	b.handedOver = true
	emit(map[string]any{"terminal": map[string]int{"data": b.nodeData, "control": b.nodeControl}})
}

// close ends the engine's side, so Node sees its sockets end, and Node's
// too while they were not handed over.
func (b *terminalBridge) close() {
	close(b.closed)
	b.data.Close()
	b.control.Close()
	if !b.handedOver {
		unix.Close(b.nodeData)
		unix.Close(b.nodeControl)
	}
}
