package cgroupstats

import (
	"errors"
	"testing"
)

// With no cgroup listed for a resource, the answer says it is unavailable.
func TestNoCgroupIsUnavailable(t *testing.T) {
	if _, err := Read(Paths{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Read(no paths) = %v, want ErrUnavailable", err)
	}
}

func TestHost(t *testing.T) {
	total, online, err := HostCPU()
	if err != nil || total == 0 || online < 1 {
		t.Fatalf("HostCPU() = %d, %d, %v", total, online, err)
	}
	if mem, err := HostMemory(); err != nil || mem < 1<<20 {
		t.Fatalf("HostMemory() = %d, %v", mem, err)
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/sys/fs/cgroup/a\040b`); got != "/sys/fs/cgroup/a b" {
		t.Fatalf("unescape = %q", got)
	}
}

// A container in its monitor's very cgroups has none of its own.
func TestSame(t *testing.T) {
	a := Paths{"memory": "/a", "pids": "/a", "": "/"}
	if !a.Same(Paths{"memory": "/a", "pids": "/a", "": "/"}) {
		t.Fatal("identical paths are not the same")
	}
	if a.Same(Paths{"memory": "/a", "pids": "/b", "": "/"}) || a.Same(Paths{"memory": "/a", "pids": "/a"}) {
		t.Fatal("different paths are the same")
	}
}
