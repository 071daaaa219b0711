package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/store"
)

// execOptions is what the caller asked of one exec.
type execOptions struct {
	cmd        []string
	env        []string
	user       string
	workingDir string
	stdin      []byte
	tty        bool
}

// ExecResult is how the command ended and what it wrote, decoded as UTF-8.
type ExecResult struct {
	ExitCode int    `json:"ExitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// execContainer(id, cmd, {env, user, workingDir, stdin, tty}) runs cmd in
// the running container, as `docker exec` does: a process like the
// container's own (its capabilities, AppArmor profile, no-new-privileges,
// rlimits, environment, user and working directory), with the caller's
// changes; with tty, on a pseudo-terminal handed to Node (terminal.go).
func (e *Engine) execContainer(ctx context.Context, call *Request) (any, error) {
	const op = "execContainer"
	list, st, c, err := e.containerCall(op, "InvalidExecContainerParameters", call, 3)
	if err != nil {
		return nil, err
	}
	opts, reason := readExecOptions(list[1], list[2])
	if reason != "" {
		return nil, errcat.New(op, "InvalidExecContainerParameters", reason, nil).With("containerId", c.ID)
	}
	switch c.State {
	case "running":
	case "paused":
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s is paused; unpause it first", c.Name), nil).With("containerId", c.ID)
	default:
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s is %s", c.Name, c.State), nil).With("containerId", c.ID)
	}
	bundleDir := st.BundleDir(c.ID)
	process, err := execProcess(bundleDir, lifecycle.Rootfs(st, c), opts)
	if errors.Is(err, user.ErrNoPasswdEntries) || errors.Is(err, user.ErrNoGroupEntries) {
		return nil, errcat.New(op, "UserNotFound", err.Error(), err).With("containerId", c.ID).With("user", opts.user)
	}
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	runtime, err := lifecycle.RuntimeFor(call.Runtime, st, c)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	scratch, err := os.MkdirTemp(bundleDir, "exec-")
	if err != nil {
		return nil, runtimeFailure(op, c, bundleGone(bundleDir, err))
	}
	defer os.RemoveAll(scratch)
	var result ociruntime.ExecResult
	if opts.tty {
		result.ExitCode, err = execOnTerminal(ctx, call.Emit, runtime, c.ID, process, scratch)
	} else {
		result, err = ociruntime.Exec(ctx, runtime, c.ID, process, opts.stdin, scratch)
	}
	var cmdErr *ociruntime.CommandError
	switch {
	case err != nil && (initGone(c.Run.Pid) || !stillRunning(st, c.ID)):
		// It ended as the exec started ("container does not exist", "cannot
		// exec in a stopped container", a failed setns), before its monitor
		// recorded the exit. Asked first: the runtime's words for a
		// namespace that went away ("lstat /proc/N/ns/ipc: no such file or
		// directory") read like a command not found.
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s exited: %v", c.Name, err), err).With("containerId", c.ID)
	case errors.As(err, &cmdErr) && errors.Is(err, ociruntime.ErrCommandNotFound):
		return nil, errcat.New(op, "CommandNotFound", cmdErr.Message, err).With("containerId", c.ID).With("cmd", opts.cmd)
	case errors.As(err, &cmdErr):
		return nil, errcat.New(op, "CommandNotExecutable", cmdErr.Message, err).With("containerId", c.ID).With("cmd", opts.cmd)
	case err != nil:
		return nil, runtimeFailure(op, c, err)
	}
	return ExecResult{ExitCode: result.ExitCode, Stdout: string(result.Stdout), Stderr: string(result.Stderr)}, nil
}

// execOnTerminal runs the exec on a pseudo-terminal that Node gets, through
// a progress event, as soon as the exec begins.
func execOnTerminal(ctx context.Context, emit func(any), runtime ociruntime.Runtime, id string, process *specs.Process, scratch string) (int, error) {
	bridge, err := newTerminalBridge()
	if err != nil {
		return 0, err
	}
	defer bridge.close()
	bridge.handOver(emit)
	// As docker exec -t: a terminal type when the environment has none.
	process.Env = mergeEnv([]string{"TERM=xterm"}, process.Env)
	return ociruntime.ExecTerminal(ctx, runtime, id, process, scratch, bridge.io())
}

// stillRunning reads the container again, as its monitor sees it now.
func stillRunning(st *store.Store, id string) bool {
	found, err := st.FindContainers(id, false)
	if err != nil || len(found) != 1 {
		return false
	}
	c, err := lifecycle.Reconcile(st, found[0])
	return err == nil && c.State == "running"
}

// initGone says whether the container's init (pid, in the host's pid
// namespace) has ended: no such process, a zombie not yet reaped, or one
// on its way out that has already let go of its namespaces (which is what
// makes the runtime's setns fail, before the process is a zombie).
func initGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid <= 0 || err != nil {
		return true
	}
	// The state follows the command's closing parenthesis.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) == 0 || fields[0] == "Z" || fields[0] == "X" {
		return true
	}
	_, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	return errors.Is(err, os.ErrNotExist)
}

// bundleGone says that the container's files are missing, when they are.
func bundleGone(bundleDir string, err error) error {
	if _, statErr := os.Stat(bundleDir); errors.Is(statErr, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", lifecycle.ErrBundleMissing, err)
	}
	return err
}

// readExecOptions checks the command and the options; the reason is set
// when they are wrong.
func readExecOptions(rawCmd, rawOpts json.RawMessage) (execOptions, string) {
	var opts execOptions
	if isNull(rawCmd) {
		return opts, "cmd is required: an array of strings such as ['ls', '-l']"
	}
	if err := json.Unmarshal(rawCmd, &opts.cmd); err != nil || len(opts.cmd) == 0 || opts.cmd[0] == "" {
		return opts, "cmd must be a non-empty array of strings such as ['ls', '-l']"
	}
	if isNull(rawOpts) {
		return opts, ""
	}
	p, err := objectParam(rawOpts, "options")
	if err != nil {
		return opts, err.Error()
	}
	if raw := p.raw["env"]; !isNull(raw) {
		if json.Unmarshal(raw, &opts.env) != nil {
			return opts, "options.env must be an array of 'NAME=value' strings"
		}
		for _, kv := range opts.env {
			if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
				return opts, fmt.Sprintf("options.env entry %q is not NAME=value", kv)
			}
		}
	}
	if opts.user, _, err = p.str("user"); err != nil {
		return opts, err.Error()
	}
	if opts.workingDir, _, err = p.str("workingDir"); err != nil {
		return opts, err.Error()
	}
	if opts.workingDir != "" && !path.IsAbs(opts.workingDir) {
		return opts, "options.workingDir must be an absolute path in the container"
	}
	// The JS layer sends stdin, a string or a Buffer, as base64.
	if !isNull(p.raw["stdin"]) {
		return opts, "options.stdin must be a string or a Buffer"
	}
	if encoded, _, err := p.str("stdinBase64"); err != nil {
		return opts, err.Error()
	} else if opts.stdin, err = base64.StdEncoding.DecodeString(encoded); err != nil {
		return opts, "options.stdinBase64 is not base64"
	}
	if opts.tty, err = p.boolean("tty", false); err != nil {
		return opts, err.Error()
	}
	if opts.tty && len(opts.stdin) > 0 {
		return opts, "options.stdin cannot be given with options.tty: type into the terminal instead"
	}
	return opts, ""
}

// execProcess is the process spec of the exec: the container's own process
// (as the runtime started it, with its user already resolved) with the
// command, environment, user and working directory of this exec.
func execProcess(bundleDir, rootfs string, opts execOptions) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		return nil, bundleGone(bundleDir, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("the container's config.json is corrupt: %v", err)
	}
	process := spec.Process
	process.Args = opts.cmd
	process.Terminal = false
	process.ConsoleSize = nil
	process.Env = mergeEnv(process.Env, opts.env)
	if opts.workingDir != "" {
		process.Cwd = opts.workingDir
	}
	if opts.user != "" { // "" is the container's user, as docker exec -u ""
		if process.User, err = bundle.ProcessUser(rootfs, opts.user); err != nil {
			return nil, err
		}
	}
	return process, nil
}

// mergeEnv is env with each NAME=value of extra set, replacing a value of
// the same name, as docker exec's -e does.
func mergeEnv(env, extra []string) []string {
	out := append([]string{}, env...)
	for _, kv := range extra {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if oldName, _, _ := strings.Cut(old, "="); oldName == name {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
