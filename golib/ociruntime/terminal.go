package ociruntime

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
)

// TerminalIO is the caller's side of an exec's terminal.
type TerminalIO struct {
	In     io.Reader              // typed into the terminal until it ends
	Out    io.Writer              // what the terminal shows
	Resize <-chan console.WinSize // new sizes of the terminal
}

// ExecTerminal runs process in the running container id on a
// pseudo-terminal, as `runc exec --tty` does, connects the terminal to tio,
// and returns the process's exit code once it has ended and the terminal's
// last output has been copied. The runtime, in the foreground, makes the
// container's terminal and relays it to its own stdin and stdout, which are
// the slave side of a terminal made here: a resize is set on that one, and
// the runtime, told by SIGWINCH, passes it on. When ctx ends the process is
// killed.
func ExecTerminal(ctx context.Context, runtime Runtime, id string, process *specs.Process, scratch string, tio TerminalIO) (int, error) {
	master, c, slave, err := openTerminal()
	if err != nil {
		return 0, err
	}
	defer master.Close()
	var t *attached
	var stderr bytes.Buffer
	process.Terminal = true
	code, err := runExec(ctx, runtime, id, process, scratch, []string{"--tty"}, &stderr, func(cmd *exec.Cmd) {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, &stderr
	}, func(p *os.Process) {
		slave.Close() // the runtime has its own: its end closes the terminal
		t = attach(master, c, tio, p)
	})
	slave.Close()
	if t != nil {
		t.detach()
	}
	return code, err
}

// openTerminal makes a pseudo-terminal: its master as a non-blocking file
// (so that closing it ends a read in progress) and as a console for its
// size, and its slave.
func openTerminal() (*os.File, console.Console, *os.File, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	fd, err := rawFdOf(master)
	var c console.Console
	var slaveName string
	if err == nil {
		c, slaveName, err = console.NewPtyFromFile(rawFd{File: master, fd: fd})
	}
	if err == nil {
		err = c.Resize(console.WinSize{Width: 80, Height: 24})
	}
	var slave *os.File
	if err == nil {
		slave, err = os.OpenFile(slaveName, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		master.Close()
		return nil, nil, nil, err
	}
	return master, c, slave, nil
}

// rawFd hands containerd/console the terminal's descriptor without
// os.File.Fd, which would put it back in blocking mode.
type rawFd struct {
	*os.File
	fd uintptr
}

func (r rawFd) Fd() uintptr { return r.fd }

func rawFdOf(f *os.File) (uintptr, error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	err = conn.Control(func(raw uintptr) { fd = raw })
	return fd, err
}

// attached is a terminal being copied to and from its caller.
type attached struct {
	master  *os.File
	outDone chan struct{}
	stop    chan struct{}
}

func attach(master *os.File, c console.Console, tio TerminalIO, runtime *os.Process) *attached {
	t := &attached{master: master, outDone: make(chan struct{}), stop: make(chan struct{})}
	// The output ends with EIO once the runtime has closed the slave.
	safego.Go(func() error { return copyAll(tio.Out, master) }, func(error) { close(t.outDone) })
	safego.Go(func() error { return copyAll(master, tio.In) }, nil)
	safego.Go(func() error {
		for {
			select {
			case size, ok := <-tio.Resize:
				if !ok {
					return nil
				}
				if c.Resize(size) == nil {
					runtime.Signal(syscall.SIGWINCH)
				}
			case <-t.stop:
				return nil
			}
		}
	}, nil)
	return t
}

func copyAll(dst io.Writer, src io.Reader) error {
	_, err := io.Copy(dst, src)
	return err
}

// detach waits for the terminal's last output, then closes it.
func (t *attached) detach() {
	select {
	case <-t.outDone:
	case <-time.After(execOutputGrace):
	}
	close(t.stop)
	t.master.Close() // ends the copies still running
	<-t.outDone
}
