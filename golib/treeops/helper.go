package treeops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/fsat"
	"github.com/k3-core/k3-core/golib/layer"
	"github.com/k3-core/k3-core/golib/rootfs"
	"github.com/k3-core/k3-core/golib/safego"
	"github.com/k3-core/k3-core/golib/userns"
)

// The helper reads one request as JSON on its standard input, does it,
// and writes JSON lines on its standard output: progress now and then,
// then one with the result or the error. The operation's data (a layer
// stream, an export's output, a commit's blob) is its descriptor 3.
const (
	opUnpack    = "unpack"
	opExport    = "export"
	opLayer     = "layer"
	opRemoveAll = "removeAll"
	opCopyIn    = "copyIn"
	opRemove    = "remove"
	opChanges   = "changes"
)

// SubCommand is the helper's subcommand that serves a request.
const SubCommand = "tree"

type request struct {
	Op string `json:"op"`
	// Approve: an export first reports its measure and waits for a line
	// "go" on its standard input (see Export).
	Approve bool        `json:"approve,omitempty"`
	Dir     string      `json:"dir,omitempty"`
	Stack   []string    `json:"stack,omitempty"`
	Lower   []string    `json:"lower,omitempty"`
	Skip    []string    `json:"skip,omitempty"`
	Root    bundle.Root `json:"root"`
	Src     string      `json:"src,omitempty"`
	Dest    string      `json:"dest,omitempty"`
	Way     string      `json:"way,omitempty"` // what the unpacked tree records (see Way)
	// join is a process whose user namespace the helper joins (see Root).
	join int
}

type reply struct {
	Progress *[2]int64       `json:"progress,omitempty"`
	Measured *rootfs.Stats   `json:"measured,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *wireError      `json:"error,omitempty"`
}

// wireError carries an error across: its text, its errno, and which of the
// errors callers test for it wraps.
type wireError struct {
	Message string `json:"message"`
	Errno   int    `json:"errno,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// kinds are the errors callers tell apart with errors.Is.
var kinds = map[string]error{
	"unsafePath":          layer.ErrUnsafePath,
	"limit":               layer.ErrLimit,
	"notExist":            fs.ErrNotExist,
	"sourceNotFound":      bundle.ErrSourceNotFound,
	"destinationNotFound": bundle.ErrDestinationNotFound,
	"pathNotFound":        bundle.ErrPathNotFound,
	"changed":             fsat.ErrChanged,
	"canceled":            context.Canceled,
}

func toWire(err error) *wireError {
	w := &wireError{Message: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		w.Errno = int(errno)
	}
	for name, k := range kinds {
		if errors.Is(err, k) {
			w.Kind = name
			break
		}
	}
	return w
}

// remoteError is an error of the helper, matching what it matched there.
type remoteError struct {
	msg   string
	errno syscall.Errno
	kind  error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() []error {
	var errs []error
	if e.errno != 0 {
		errs = append(errs, e.errno)
	}
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	return errs
}

func (w *wireError) err() error {
	return &remoteError{msg: w.Message, errno: syscall.Errno(w.Errno), kind: kinds[w.Kind]}
}

// RefusedError is a host that refuses the user namespace the helper needs:
// whatever operation wanted the helper fails with the host's class.
type RefusedError struct{ Host *userns.HostError }

func (e *RefusedError) Error() string { return e.Host.Error() }

func (e *RefusedError) Unwrap() error { return e.Host }

// dataFile is the operation's data: a file handed over as it is, or bytes
// copied in from in or out to out through a pipe.
type dataFile struct {
	f   *os.File
	in  io.Reader
	out io.Writer
}

// run has the helper do req and decodes its result into result. approve,
// when set, is asked to approve an export's measure before it writes.
func run(ctx context.Context, helper string, req request, data *dataFile, progress func(a, b int64), result any, approve func(rootfs.Stats) error) error {
	req.Approve = approve != nil
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, helper, SubCommand)
	if req.join != 0 {
		cmd = userns.Join(ctx, req.join, helper, SubCommand)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	copied, handed, err := attach(cmd, data)
	if err != nil {
		return err
	}
	if req.join != 0 {
		err = cmd.Start()
	} else {
		err = userns.Start(userns.Detect(), cmd)
	}
	if handed != nil {
		handed.Close() // the helper has its own copy, or failed to start
	}
	if err != nil {
		stdin.Close()
		<-copied
		var host *userns.HostError
		if errors.As(err, &host) {
			return &RefusedError{Host: host}
		}
		return fmt.Errorf("starting the user-namespace helper: %w", err)
	}
	_, err = stdin.Write(append(body, '\n'))
	if !req.Approve || err != nil {
		stdin.Close()
	}
	var last *reply
	var refused error
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 64<<20)
	for lines.Scan() {
		var r reply
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
			continue
		}
		switch {
		case r.Measured != nil:
			// Without "go" the helper stops, writing nothing.
			if refused = approve(*r.Measured); refused == nil {
				stdin.Write([]byte("go\n"))
			}
			stdin.Close()
		case r.Progress != nil:
			if progress != nil {
				progress(r.Progress[0], r.Progress[1])
			}
		default:
			last = &r
		}
	}
	waitErr := cmd.Wait()
	copyErr := <-copied
	switch {
	case refused != nil:
		return refused
	case ctx.Err() != nil:
		return ctx.Err()
	case last != nil && last.Error != nil:
		return last.Error.err()
	case waitErr != nil || last == nil:
		return fmt.Errorf("the user-namespace helper failed: %v: %s", waitErr, bytes.TrimSpace(stderr.Bytes()))
	case copyErr != nil:
		return copyErr
	}
	if result != nil && len(last.Result) > 0 {
		return json.Unmarshal(last.Result, result)
	}
	return nil
}

// pipeSize is how much a data pipe holds: an ordinary user may grow a
// pipe up to /proc/sys/fs/pipe-max-size, 1 MiB by default.
const pipeSize = 1 << 20

// growPipe makes the pipe hold pipeSize; where the host allows less, it
// keeps the size it has.
func growPipe(p *os.File) {
	if raw, err := p.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}

// attach gives the helper the data as its descriptor 3, through a pipe
// when the data is not a file: handed is then the pipe's end the helper
// gets, to be closed here once it started, and copied reports the end of
// the copy through the pipe.
func attach(cmd *exec.Cmd, data *dataFile) (copied <-chan error, handed *os.File, err error) {
	done := make(chan error, 1)
	switch {
	case data == nil:
		done <- nil
		return done, nil, nil
	case data.f != nil:
		cmd.ExtraFiles = []*os.File{data.f}
		done <- nil
		return done, nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	growPipe(w)
	if data.in != nil {
		cmd.ExtraFiles, handed = []*os.File{r}, r
		safego.Go(func() error {
			defer w.Close()
			// Written in blocks as large as the pipe (the file's own
			// ReadFrom would write 32 KiB at a time), so each side wakes
			// the other less often.
			_, err := io.CopyBuffer(struct{ io.Writer }{w}, data.in, make([]byte, pipeSize))
			if errors.Is(err, syscall.EPIPE) {
				err = nil // the helper stopped reading: its error says why
			}
			return err
		}, func(err error) { done <- err })
		return done, handed, nil
	}
	cmd.ExtraFiles, handed = []*os.File{w}, w
	safego.Go(func() error {
		defer r.Close()
		_, err := io.Copy(data.out, r)
		return err
	}, func(err error) { done <- err })
	return done, handed, nil
}
