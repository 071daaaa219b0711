package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
)

var (
	// ErrCommandNotFound: the exec'd command is not in the container (as
	// docker exec, whose CLI then exits 127).
	ErrCommandNotFound = errors.New("command not found in the container")
	// ErrCommandNotExecutable: the command exists but cannot be executed
	// (docker's CLI exits 126).
	ErrCommandNotExecutable = errors.New("command cannot be executed in the container")
)

// CommandError is a command the runtime could not start, in its own words.
type CommandError struct {
	Kind    error // ErrCommandNotFound or ErrCommandNotExecutable
	Message string
}

func (e *CommandError) Error() string { return e.Message }
func (e *CommandError) Unwrap() error { return e.Kind }

// The runtime's words for a command it did not find: runc says "executable
// file not found in $PATH" or "no such file or directory", crun "executable
// file `x` not found in $PATH" or "No such file or directory".
var (
	notFoundWords      = regexp.MustCompile(`(?i)not found in \$PATH|no such file or directory`)
	notExecutableWords = regexp.MustCompile(`(?i)permission denied|exec format error`)
)

const (
	execOutputGrace = 2 * time.Second
	startGrace      = 10 * time.Second
)

// ExecResult is how an exec'd process ended and what it wrote.
type ExecResult struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// Exec runs process in the running container id, as `runc exec --process`
// does, feeding it stdin and collecting its output, and waits for its end.
// When ctx ends the process is killed. scratch is a directory Exec may use
// for its files (the process spec, the pid file, the runtime's log); the
// caller removes it.
func Exec(ctx context.Context, runtime Runtime, id string, process *specs.Process, stdin []byte, scratch string) (ExecResult, error) {
	var stdout, stderr bytes.Buffer
	code, err := runExec(ctx, runtime, id, process, scratch, nil, &stderr, func(cmd *exec.Cmd) {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
		// A background child of the process may keep its output open long
		// after it ended: what it wrote by then is kept, the rest not waited for.
		cmd.WaitDelay = execOutputGrace
	}, nil)
	if err != nil {
		return ExecResult{}, err
	}
	return ExecResult{ExitCode: code, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nil
}

// runExec runs the runtime's exec of process with the extra exec arguments,
// after setup has given it its stdio, and returns the process's exit code;
// started, if not nil, is told once the runtime runs. runtimeStderr is where
// the runtime's own stderr goes, for its message.
func runExec(ctx context.Context, runtime Runtime, id string, process *specs.Process, scratch string, extra []string, runtimeStderr *bytes.Buffer, setup func(*exec.Cmd), started func(*os.Process)) (int, error) {
	spec, err := json.Marshal(process)
	if err != nil {
		return 0, err
	}
	specPath := filepath.Join(scratch, "process.json")
	pidPath := filepath.Join(scratch, "pid")
	logPath := filepath.Join(scratch, "runtime.log")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return 0, err
	}
	args := append([]string{"--log", logPath, "--log-format", "json", "exec", "--process", specPath, "--pid-file", pidPath}, extra...)
	cmd := runtime.command(append(args, id)...)
	setup(cmd)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", runtime.Path, err)
	}
	if started != nil {
		started(cmd.Process)
	}
	ended := make(chan error, 1)
	safego.Go(cmd.Wait, func(err error) { ended <- err })
	var waitErr error
	select {
	case waitErr = <-ended:
	case <-ctx.Done():
		killExecd(pidPath, cmd.Process, ended)
		return 0, ctx.Err()
	}
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil || errors.Is(waitErr, exec.ErrWaitDelay):
		return 0, nil
	case errors.As(waitErr, &exitErr) && fileExists(pidPath):
		// The runtime exits with its process's code, 128+n for signal n.
		return exitErr.ExitCode(), nil
	}
	// The process never started: the runtime says why, in its log and on
	// its stderr.
	msg := lastLogMessage(logPath)
	if msg == "" {
		msg = strings.TrimSpace(runtimeStderr.String())
	}
	if msg == "" {
		msg = waitErr.Error()
	}
	switch {
	case notFoundWords.MatchString(msg):
		return 0, &CommandError{Kind: ErrCommandNotFound, Message: msg}
	case notExecutableWords.MatchString(msg):
		return 0, &CommandError{Kind: ErrCommandNotExecutable, Message: msg}
	}
	return 0, &RuntimeError{Message: msg}
}

// killExecd kills the exec'd process, found by the pid the runtime writes
// once it has started it (the runtime is still waiting for it, so that pid
// cannot be reused yet), and returns when the runtime has ended. Killing the
// runtime instead, while it starts the process, would leave the process
// running unwatched; only a runtime stuck for startGrace is killed.
func killExecd(pidPath string, runtime *os.Process, ended <-chan error) {
	giveUp := time.After(startGrace)
	for {
		if data, err := os.ReadFile(pidPath); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		select {
		case <-ended:
			return
		case <-giveUp:
			runtime.Kill()
			<-ended
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lastLogMessage is the last error the runtime logged as JSON lines.
func lastLogMessage(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	msg := ""
	for _, line := range bytes.Split(data, []byte("\n")) {
		var entry struct{ Level, Msg string }
		if json.Unmarshal(line, &entry) == nil && entry.Level == "error" && entry.Msg != "" {
			msg = entry.Msg
		}
	}
	return msg
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
