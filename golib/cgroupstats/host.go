package cgroupstats

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go builds for.
const clockTicks = 100

// HostCPU reads the host's total CPU time (nanoseconds, all CPUs, since
// boot) and the number of CPUs online, from /proc/stat.
func HostCPU() (total uint64, online int, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		switch {
		case len(fields) > 1 && fields[0] == "cpu":
			var ticks uint64
			for _, f := range fields[1:] {
				n, _ := strconv.ParseUint(f, 10, 64)
				ticks += n
			}
			total = ticks * (1e9 / clockTicks)
		case len(fields) > 0 && strings.HasPrefix(fields[0], "cpu"):
			online++
		}
	}
	return total, online, scanner.Err()
}

// HostMemory reads the host's MemTotal, in bytes, from /proc/meminfo.
func HostMemory() (uint64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib * 1024, err
		}
	}
	return 0, os.ErrNotExist
}
