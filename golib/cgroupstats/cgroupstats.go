// Package cgroupstats reads what a process's cgroups account for it: CPU
// time, memory and the number of tasks. It finds the cgroups from the
// host's own view (/proc/<pid>/cgroup and the host's cgroup mounts), never
// from anything inside a container, and works on cgroup v1, v2 and hybrid
// hosts: a v1 controller is read where one is mounted, v2 otherwise.
package cgroupstats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnavailable says the host keeps no cgroup of its own for the process,
// or none that accounts for one of the resources.
var ErrUnavailable = errors.New("no cgroup accounts for the container")

// Sample is one reading of a process's cgroups.
type Sample struct {
	CPUUsage    uint64            // nanoseconds of CPU time, all its tasks
	MemoryUsage uint64            // bytes charged, page cache included
	MemoryLimit uint64            // bytes; 0 when unlimited
	MemoryStats map[string]uint64 // memory.stat
	Pids        uint64            // tasks now
	PidsLimit   uint64            // 0 when unlimited
}

// mount is one cgroup hierarchy as the host mounts it.
type mount struct {
	dir         string
	root        string          // the cgroup path the mount shows at dir
	controllers map[string]bool // v1 only
	v2          bool
}

// Paths maps a v1 controller name (or "" for the v2 hierarchy) to the
// cgroup path a process is in, as /proc/<pid>/cgroup lists it.
type Paths map[string]string

// PathsOf reads the cgroups of pid, in the host's pid namespace.
func PathsOf(pid int) (Paths, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	paths := Paths{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(scanner.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			paths[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	return paths, scanner.Err()
}

// Same says whether two processes share every cgroup.
func (p Paths) Same(other Paths) bool {
	if len(p) != len(other) {
		return false
	}
	for k, v := range p {
		if other[k] != v {
			return false
		}
	}
	return true
}

// Read takes one sample of the cgroups in paths.
func Read(paths Paths) (Sample, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return Sample{}, err
	}
	dirOf := func(v1Controller, v2File string) (string, error) {
		for _, m := range mounts {
			if p, ok := paths[v1Controller]; ok && m.controllers[v1Controller] {
				return under(m, p), nil
			}
		}
		for _, m := range mounts {
			if p, ok := paths[""]; ok && m.v2 {
				dir := under(m, p)
				if _, err := os.Stat(filepath.Join(dir, v2File)); err == nil {
					return dir, nil
				}
			}
		}
		return "", fmt.Errorf("%w: the host has no %s controller for it", ErrUnavailable, v1Controller)
	}
	var s Sample
	cpu, err := dirOf("cpuacct", "cpu.stat")
	if err != nil {
		return Sample{}, err
	}
	memory, err := dirOf("memory", "memory.current")
	if err != nil {
		return Sample{}, err
	}
	pids, err := dirOf("pids", "pids.current")
	if err != nil {
		return Sample{}, err
	}
	if err := readCPU(cpu, &s); err != nil {
		return Sample{}, err
	}
	if err := readMemory(memory, &s); err != nil {
		return Sample{}, err
	}
	if s.Pids, err = readNumber(filepath.Join(pids, "pids.current")); err != nil {
		return Sample{}, err
	}
	if s.PidsLimit, err = readNumber(filepath.Join(pids, "pids.max")); err != nil {
		return Sample{}, err
	}
	return s, nil
}

func readCPU(dir string, s *Sample) error {
	usage, err := readNumber(filepath.Join(dir, "cpuacct.usage"))
	if err == nil {
		s.CPUUsage = usage
		return nil
	}
	stat, err := readKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	s.CPUUsage = stat["usage_usec"] * 1000
	return nil
}

func readMemory(dir string, s *Sample) error {
	var err error
	if s.MemoryUsage, err = readNumber(filepath.Join(dir, "memory.usage_in_bytes")); err == nil {
		s.MemoryLimit, err = readNumber(filepath.Join(dir, "memory.limit_in_bytes"))
	} else if s.MemoryUsage, err = readNumber(filepath.Join(dir, "memory.current")); err == nil {
		s.MemoryLimit, err = readNumber(filepath.Join(dir, "memory.max"))
	}
	if err != nil {
		return err
	}
	s.MemoryStats, err = readKeyed(filepath.Join(dir, "memory.stat"))
	return err
}

// under is the directory of cgroup path p in mount m.
func under(m mount, p string) string {
	rel, err := filepath.Rel(m.root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = p
	}
	return filepath.Join(m.dir, rel)
}

// cgroupMounts lists the host's cgroup hierarchies from /proc/self/mountinfo.
func cgroupMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []mount
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super-options
		fields := strings.Fields(scanner.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 >= len(fields) {
			continue
		}
		switch fields[sep+1] {
		case "cgroup2":
			mounts = append(mounts, mount{dir: unescape(fields[4]), root: fields[3], v2: true})
		case "cgroup":
			controllers := map[string]bool{}
			for _, o := range strings.Split(fields[sep+3], ",") {
				controllers[o] = true
			}
			mounts = append(mounts, mount{dir: unescape(fields[4]), root: fields[3], controllers: controllers})
		}
	}
	return mounts, scanner.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readNumber reads a one-number cgroup file; "max" is 0 (no limit).
func readNumber(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(data))
	if text == "max" {
		return 0, nil
	}
	return strconv.ParseUint(text, 10, 64)
}

// readKeyed reads a "name value" per line cgroup file such as memory.stat.
func readKeyed(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, nil
}
