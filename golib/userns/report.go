package userns

import (
	"os"
	"strings"
)

// Self is what a process sees of its own user namespace.
type Self struct {
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	UIDMap string `json:"uidMap"` // /proc/self/uid_map, one line a range
	GIDMap string `json:"gidMap"`
	CapEff string `json:"capEff"` // the effective capabilities, in hex as /proc shows them
	// UserNS and MountNS identify the namespaces (their /proc/self/ns links).
	UserNS  string `json:"userNs"`
	MountNS string `json:"mountNs"`
}

// ReadSelf reads what this process sees of its namespaces.
func ReadSelf() Self {
	s := Self{UID: os.Getuid(), GID: os.Getgid()}
	s.UIDMap = normalizedMap("/proc/self/uid_map")
	s.GIDMap = normalizedMap("/proc/self/gid_map")
	s.UserNS, _ = os.Readlink("/proc/self/ns/user")
	s.MountNS, _ = os.Readlink("/proc/self/ns/mnt")
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				s.CapEff = strings.TrimSpace(v)
			}
		}
	}
	return s
}

// normalizedMap reads an ID map file with its column padding squeezed.
func normalizedMap(file string) string {
	data, _ := os.ReadFile(file)
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		lines = append(lines, strings.Join(strings.Fields(line), " "))
	}
	return strings.Join(lines, "\n")
}
