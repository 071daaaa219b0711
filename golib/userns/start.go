package userns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/safego"
)

// syncEnv names, in the helper's environment, the pipe it waits on until its
// ID maps are written.
const syncEnv = "_K3_USERNS_SYNC"

// Start starts cmd, a command of k3-core's helper binary (whose main calls
// FinishEntry first), in a new user namespace and mount namespace: it is
// root there, with every capability of that namespace, and sees the IDs of
// h.UIDMap and h.GIDMap. cmd's stdin, stdout, stderr, ExtraFiles and
// SysProcAttr work as for any exec.Cmd; Start adds the namespaces and one
// extra file after the caller's.
func Start(h Host, cmd *exec.Cmd) error {
	if err := h.Check(); err != nil {
		return err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncW.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, syncR)
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, fmt.Sprintf("%s=%d", syncEnv, 2+len(cmd.ExtraFiles)))
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	// The new process holds every capability of its new namespace, but an
	// execution by an ID that is not the namespace's root drops them, and
	// its IDs are mapped only once it runs. Raised as ambient capabilities
	// they survive that execution, so the helper need not execute itself a
	// second time once its maps are in place.
	cmd.SysProcAttr.AmbientCaps = everyCapability()
	err = cmd.Start()
	syncR.Close()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) {
		return limitReached(err)
	}
	if err != nil {
		return fmt.Errorf("starting %s in a user namespace: %w", cmd.Path, err)
	}
	if err := writeMaps(h, cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	// One byte tells the helper its maps are in place.
	if _, err := syncW.Write([]byte{1}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("releasing the helper in its user namespace: %w", err)
	}
	return nil
}

// limitReached is the kernel's refusal of a new namespace where Detect saw
// none: the limit is not 0 here but is used up, here or in a namespace
// enclosing this one (k3-core in a container), each running container
// holding one.
func limitReached(err error) *HostError {
	var errno syscall.Errno
	errors.As(err, &errno)
	return &HostError{Class: ClassDisabled,
		Reason: fmt.Sprintf("the kernel refuses this user another user namespace (%v): user.max_user_namespaces is reached, in this namespace or one that encloses it", errno),
		Fix:    "as root where the limit is set (this host, or the container k3-core runs in): sysctl -w user.max_user_namespaces=15000; or remove running containers (each holds one); or run as root"}
}

// Join is the command that runs path with args in the user namespace of
// process pid, which this process's user created, as that namespace's root
// (the user's own ID maps to it), in this process's mount namespace.
func Join(ctx context.Context, pid int, path string, args ...string) *exec.Cmd {
	full := append([]string{"--user", "--target", strconv.Itoa(pid), "--preserve-credentials", "--", path}, args...)
	return exec.CommandContext(ctx, "nsenter", full...)
}

// Run starts cmd as Start does and waits for it.
func Run(h Host, cmd *exec.Cmd) error {
	if err := Start(h, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// writeMaps installs the ID maps of process pid: through newuidmap and
// newgidmap when the subordinate ranges are mapped, else by writing the
// user's single ID itself (which the kernel allows only after setgroups is
// denied).
func writeMaps(h Host, pid int) error {
	if h.multipleIDs() {
		// The two tools are independent: run at once, they start the
		// helper sooner.
		maps := safego.NewGroup()
		for _, m := range []struct {
			tool string
			ids  []Range
		}{{h.NewUIDMap, h.UIDMap()}, {h.NewGIDMap, h.GIDMap()}} {
			maps.Go(func() error {
				args := []string{strconv.Itoa(pid)}
				for _, r := range m.ids {
					args = append(args, strconv.FormatInt(r.Inside, 10), strconv.FormatInt(r.Host, 10), strconv.FormatInt(r.Count, 10))
				}
				if out, err := exec.Command(m.tool, args...).CombinedOutput(); err != nil {
					return fmt.Errorf("%s %s failed: %s", m.tool, strings.Join(args, " "), firstLine(out, err))
				}
				return nil
			})
		}
		return maps.Wait()
	}
	proc := fmt.Sprintf("/proc/%d/", pid)
	for _, w := range []struct{ file, data string }{
		{"uid_map", fmt.Sprintf("0 %d 1\n", h.UID)},
		{"setgroups", "deny"},
		{"gid_map", fmt.Sprintf("0 %d 1\n", h.GID)},
	} {
		if err := os.WriteFile(proc+w.file, []byte(w.data), 0); err != nil {
			return fmt.Errorf("writing the user namespace's %s: %w", w.file, err)
		}
	}
	return nil
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		s = err.Error()
	}
	return s
}

// everyCapability lists every capability this kernel knows.
func everyCapability() []uintptr {
	last := unix.CAP_LAST_CAP
	if text, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(text))); err == nil {
			last = n
		}
	}
	caps := make([]uintptr, 0, last+1)
	for c := 0; c <= last; c++ {
		caps = append(caps, uintptr(c))
	}
	return caps
}

// FinishEntry is the first call of the helper binary's main. In a helper
// that Start launched it waits until the ID maps are written (it holds its
// namespace's capabilities already, as ambient ones). Anywhere else it
// returns at once.
func FinishEntry() {
	fdText, ok := os.LookupEnv(syncEnv)
	if !ok {
		return
	}
	os.Unsetenv(syncEnv)
	fd, err := strconv.Atoi(fdText)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k3-core: bad %s=%q\n", syncEnv, fdText)
		os.Exit(125)
	}
	sync := os.NewFile(uintptr(fd), "userns-sync")
	var b [1]byte
	n, _ := sync.Read(b[:])
	sync.Close()
	if n != 1 {
		// The starter failed to map the namespace and has said why.
		os.Exit(125)
	}
}
