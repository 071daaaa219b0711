package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/store"
)

// lifecycle is the state changes of the containers of st, as this call runs them.
func (e *Engine) lifecycle(st *store.Store, call *Request) lifecycle.Containers {
	return lifecycle.Containers{Store: st, Runtime: call.Runtime, Monitor: call.Monitor}
}

func (e *Engine) startContainer(ctx context.Context, call *Request) (any, error) {
	const op = "startContainer"
	_, st, c, err := e.containerCall(op, "InvalidStartContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	started, err := e.lifecycle(st, call).Start(ctx, c.ID)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.summary(st, started), nil
}

func timeoutOption(raw json.RawMessage, fallback time.Duration) (time.Duration, string) {
	if isNull(raw) {
		return fallback, ""
	}
	p, err := objectParam(raw, "options")
	if err != nil {
		return 0, err.Error()
	}
	if isNull(p.raw["timeout"]) {
		return fallback, ""
	}
	var secs float64
	if err := json.Unmarshal(p.raw["timeout"], &secs); err != nil || secs < 0 || secs > 1e6 {
		return 0, "options.timeout must be a number of seconds, 0 or more"
	}
	return time.Duration(secs * float64(time.Second)), ""
}

func (e *Engine) stopContainer(ctx context.Context, call *Request) (any, error) {
	const op = "stopContainer"
	list, st, c, err := e.containerCall(op, "InvalidStopContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	timeout, reason := timeoutOption(list[1], 10*time.Second)
	if reason != "" {
		return nil, errcat.New(op, "InvalidStopContainerParameters", reason, nil).With("containerId", c.ID)
	}
	stopped, _, err := e.lifecycle(st, call).Stop(ctx, c.ID, timeout)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.summary(st, stopped), nil
}

func (e *Engine) restartContainer(ctx context.Context, call *Request) (any, error) {
	const op = "restartContainer"
	list, st, c, err := e.containerCall(op, "InvalidRestartContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	timeout, reason := timeoutOption(list[1], 10*time.Second)
	if reason != "" {
		return nil, errcat.New(op, "InvalidRestartContainerParameters", reason, nil).With("containerId", c.ID)
	}
	restarted, err := e.lifecycle(st, call).Restart(ctx, c.ID, timeout)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.summary(st, restarted), nil
}

var signalPattern = regexp.MustCompile(`^(SIG)?[A-Z][A-Z0-9+-]*$|^[0-9]{1,2}$`)

func (e *Engine) killContainer(ctx context.Context, call *Request) (any, error) {
	const op = "killContainer"
	list, st, c, err := e.containerCall(op, "InvalidKillContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	signal, _, err := stringParam(list[1], "signal")
	if err == nil && signal != "" && !signalPattern.MatchString(signal) {
		err = fmt.Errorf("signal %q is not a signal name (SIGTERM, HUP) or number", signal)
	}
	if err != nil {
		return nil, errcat.New(op, "InvalidKillContainerParameters", err.Error(), nil).With("containerId", c.ID)
	}
	if signal == "" {
		signal = "SIGKILL"
	}
	if err := e.lifecycle(st, call).Kill(ctx, c.ID, signal); err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return map[string]any{"Id": c.ID, "Signal": signal}, nil
}

// waitContainer resolves with the exit code once the container has exited,
// as `docker wait` does (a container not started yet is waited for too).
func (e *Engine) waitContainer(ctx context.Context, call *Request) (any, error) {
	const op = "waitContainer"
	_, st, c, err := e.containerCall(op, "InvalidWaitContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	exited, err := lifecycle.Wait(ctx, st, c.ID)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return map[string]any{"Id": c.ID, "ExitCode": exited.Run.ExitCode, "FinishedAt": exited.Run.FinishedAt}, nil
}

// pauseContainer freezes every process of a running container.
func (e *Engine) pauseContainer(ctx context.Context, call *Request) (any, error) {
	const op = "pauseContainer"
	_, st, c, err := e.containerCall(op, "InvalidPauseContainerParameters", call, 1)
	if err != nil {
		return nil, err
	}
	paused, err := e.lifecycle(st, call).Pause(ctx, c.ID)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.summary(st, paused), nil
}

// unpauseContainer thaws a paused container.
func (e *Engine) unpauseContainer(ctx context.Context, call *Request) (any, error) {
	const op = "unpauseContainer"
	_, st, c, err := e.containerCall(op, "InvalidUnpauseContainerParameters", call, 1)
	if err != nil {
		return nil, err
	}
	unpaused, err := e.lifecycle(st, call).Unpause(ctx, c.ID)
	if err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return e.summary(st, unpaused), nil
}
