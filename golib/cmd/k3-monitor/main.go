// Command k3-monitor watches over one running container, as conmon does for
// podman: k3-core starts it detached, it runs the OCI runtime in the
// foreground, writes the container's stdout and stderr to the bundle's log
// as JSON lines with timestamps, records the container's start event once
// its process exists, and when the container ends records its exit code,
// unmounts its rootfs and records its die event in the store's journal
// (package events): so every die has its start, whatever becomes of the
// starter. The bundle's run.json (ociruntime.RunRecord) names its run. It outlives the Node process that
// started it, so a container keeps running, and its exit is still recorded,
// after that process is gone.
//
// Usage: k3-monitor RUNTIME BUNDLE ID ATTRIBUTES
//
// ATTRIBUTES is a JSON object of the container's event attributes (name,
// image); the die event adds its exitCode. BUNDLE is <root>/containers/ID.
//
// It reports on fd 3 one line: "started <pid>" once the container runs,
// "failed <message>" when it could not start, or "refused <json>" (a
// userns.HostError) when the host forbids what it needed.
//
// For an ordinary user k3-core starts it in a new user and mount namespace
// (package userns) with ociruntime.UserStartEnv set: it then mounts the
// rootfs and resolves the container's user itself, in its namespaces, and
// gives the runtime the global options of rootless mode.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/k3-core/k3-core/golib/events"
	"github.com/k3-core/k3-core/golib/ociruntime"
	"github.com/k3-core/k3-core/golib/userns"
)

// Exit is what exit.json records.
type Exit struct {
	ExitCode   int    `json:"ExitCode"`
	FinishedAt string `json:"FinishedAt"`
	Error      string `json:"Error,omitempty"`
}

func main() {
	userns.FinishEntry()
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: k3-monitor RUNTIME BUNDLE ID ATTRIBUTES")
		os.Exit(2)
	}
	runtime, bundle, id := os.Args[1], os.Args[2], os.Args[3]
	attributes := map[string]string{}
	json.Unmarshal([]byte(os.Args[4]), &attributes)
	report := os.NewFile(3, "report")
	var runtimeArgs []string
	if asUser, ok := os.LookupEnv(ociruntime.UserStartEnv); ok {
		os.Unsetenv(ociruntime.UserStartEnv)
		var u ociruntime.UserStart
		err := json.Unmarshal([]byte(asUser), &u)
		if err == nil {
			err = ociruntime.PrepareAsUser(bundle, u)
		}
		if err != nil {
			reportFailure(report, err)
			unmount(bundle)
			os.Exit(1)
		}
		runtimeArgs = u.RuntimeArgs
	}
	os.Exit(monitor(runtime, runtimeArgs, bundle, id, attributes, report))
}

// reportFailure tells the starter why the container could not start.
func reportFailure(report *os.File, err error) {
	var hostErr *userns.HostError
	if errors.As(err, &hostErr) {
		data, _ := json.Marshal(hostErr)
		fmt.Fprintf(report, "refused %s\n", data)
		return
	}
	fmt.Fprintf(report, "failed %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
}

func monitor(runtime string, runtimeArgs []string, bundle, id string, attributes map[string]string, report *os.File) int {
	logFile, err := os.OpenFile(filepath.Join(bundle, "container.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(report, "failed opening the log: %v\n", err)
		return 1
	}
	defer logFile.Close()
	pidFile := filepath.Join(bundle, "container.pid")
	os.Remove(pidFile)
	os.Remove(filepath.Join(bundle, "exit.json"))
	// Before the runtime runs: a run this monitor watches is always named
	// by the bundle, even if its starter is killed before recording it.
	run := ociruntime.RunRecord{MonitorPid: os.Getpid(), BootID: ociruntime.BootID(), Runtime: runtime}
	if err := ociruntime.WriteRun(bundle, run); err != nil {
		fmt.Fprintf(report, "failed recording the run: %v\n", err)
		return 1
	}

	cmd := exec.Command(runtime, append(runtimeArgs, "run", "--bundle", bundle, "--pid-file", pidFile, id)...)
	cmd.Stdin = nil
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(report, "failed starting %s: %v\n", runtime, err)
		return 1
	}
	var errTail tail
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Add(1)
		go func(name string, r io.Reader) {
			defer wg.Done()
			copyLines(name, r, logFile, &mu, &errTail)
		}(s.name, s.r)
	}

	// The runtime writes the pid file once the container process exists.
	started := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if data, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(data)) > 0 {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
				started <- pid
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() {
		wg.Wait() // all output read before the exit is recorded
		waited <- cmd.Wait()
	}()

	var waitErr error
	select {
	case pid := <-started:
		recordStart(bundle, id, run, pid, attributes)
		fmt.Fprintf(report, "started %d\n", pid)
		report.Close()
		waitErr = <-waited
	case waitErr = <-waited:
		close(done)
		if _, err := os.Stat(pidFile); err != nil {
			// It never ran: the runtime's own words are the reason.
			msg := strings.TrimSpace(errTail.String())
			if msg == "" && waitErr != nil {
				msg = waitErr.Error()
			}
			fmt.Fprintf(report, "failed %s\n", strings.ReplaceAll(msg, "\n", " "))
			report.Close()
			unmount(bundle)
			return 1
		}
		// It ran and ended before we saw the pid file.
		recordStart(bundle, id, run, 0, attributes)
		fmt.Fprintf(report, "started 0\n")
		report.Close()
	}
	finished := time.Now()
	exit := Exit{ExitCode: exitCode(waitErr), FinishedAt: finished.UTC().Format(time.RFC3339Nano)}
	// The runtime's record of the container goes with it, so the ID can run again.
	exec.Command(runtime, append(runtimeArgs, "delete", "--force", id)...).Run()
	unmount(bundle)
	ociruntime.WriteJSON(bundle, "exit.json", exit)
	// After exit.json, so a watcher that sees the die sees the container exited.
	attributes["exitCode"] = strconv.Itoa(exit.ExitCode)
	die := events.New("container", "die", id, attributes)
	die.Time, die.TimeNano = finished.Unix(), finished.UnixNano()
	events.Append(filepath.Dir(filepath.Dir(bundle)), die)
	return 0
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if status, ok := ee.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

func unmount(bundle string) {
	syscall.Unmount(filepath.Join(bundle, "rootfs"), syscall.MNT_DETACH)
}

// recordStart records that the container process exists: in the run
// record, then as the start event, both before the starter hears of it. So
// the monitor records every start whose die it records, even when its
// starter is killed, or aborted, before recording the run in the store.
func recordStart(bundle, id string, run ociruntime.RunRecord, pid int, attributes map[string]string) {
	run.Started, run.Pid, run.StartedAt = true, pid, time.Now().UTC().Format(time.RFC3339Nano)
	ociruntime.WriteRun(bundle, run)
	events.Append(filepath.Dir(filepath.Dir(bundle)), events.New("container", "start", id, attributes))
}

// logLine is one line of container.log, as `docker logs` keeps them.
type logLine struct {
	Stream string `json:"stream"`
	Time   string `json:"time"`
	Log    string `json:"log"`
}

// maxLogPiece is the longest piece of a line one log record holds: a longer
// line is written as several records, as docker's json-file driver splits
// lines at 16 KiB, so neither the monitor nor a reader ever holds a whole
// line of unbounded length. Only the last piece ends with a newline.
const maxLogPiece = 16 << 10

func copyLines(stream string, r io.Reader, w io.Writer, mu *sync.Mutex, errTail *tail) {
	br := bufio.NewReaderSize(r, maxLogPiece)
	var carry []byte // the start of a character cut at the end of the last piece
	for {
		piece, err := br.ReadSlice('\n')
		line := append(carry, piece...)
		carry = nil
		if err == bufio.ErrBufferFull {
			// Cut at a character boundary, so no piece holds half a UTF-8 character.
			cut := runeBoundary(line)
			line, carry = line[:cut], append([]byte{}, line[cut:]...)
		}
		if len(line) > 0 {
			data, _ := json.Marshal(logLine{Stream: stream, Time: time.Now().UTC().Format(time.RFC3339Nano), Log: string(line)})
			mu.Lock()
			w.Write(append(data, '\n'))
			mu.Unlock()
			if stream == "stderr" {
				errTail.add(string(line))
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// runeBoundary returns where b ends if an unfinished UTF-8 character at its
// end is left out.
func runeBoundary(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// tail keeps the last lines of the runtime's stderr, for its error message.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 5 {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "")
}
