package userns

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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
	err = cmd.Start()
	syncR.Close()
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
		for _, m := range []struct {
			tool string
			ids  []Range
		}{{h.NewUIDMap, h.UIDMap()}, {h.NewGIDMap, h.GIDMap()}} {
			args := []string{strconv.Itoa(pid)}
			for _, r := range m.ids {
				args = append(args, strconv.FormatInt(r.Inside, 10), strconv.FormatInt(r.Host, 10), strconv.FormatInt(r.Count, 10))
			}
			if out, err := exec.Command(m.tool, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s %s failed: %s", m.tool, strings.Join(args, " "), firstLine(out, err))
			}
		}
		return nil
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

// FinishEntry is the first call of the helper binary's main. In a helper
// that Start launched it waits until the ID maps are written, then executes
// the helper again with the same arguments: the kernel grants a process the
// full capabilities of its user namespace when it executes a program as
// that namespace's root, and not before. Anywhere else it returns at once.
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
	err = syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "k3-core: executing the helper again in its user namespace: %v\n", err)
	os.Exit(125)
}
