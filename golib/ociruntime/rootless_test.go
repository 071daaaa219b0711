package ociruntime

import (
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/k3-core/k3-core/golib/bundle"
)

func sysMount(t *testing.T, network string) specs.Mount {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := bundle.Create(dir, &v1.ConfigFile{Config: v1.Config{Cmd: []string{"true"}}}, bundle.Options{Network: network}); err != nil {
		t.Fatal(err)
	}
	if err := fitConfig(dir); err != nil {
		t.Fatal(err)
	}
	spec, err := bundle.ReadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Mounts {
		if m.Destination == "/sys" {
			return m
		}
	}
	t.Fatal("no /sys mount")
	return specs.Mount{}
}

// A user namespace may mount sysfs only for a network namespace of its own.
func TestFitConfigBindsTheHostsSysForTheHostsNetwork(t *testing.T) {
	if m := sysMount(t, "none"); m.Type != "sysfs" {
		t.Fatalf("network none: /sys is %+v, want its own sysfs", m)
	}
	m := sysMount(t, "host")
	if m.Type != "bind" || m.Source != "/sys" || !slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "ro") {
		t.Fatalf("network host: /sys is %+v, want the host's bound read-only", m)
	}
}

func TestRuntimeAsUserRunsInTheContainersUserNamespace(t *testing.T) {
	r := Runtime{Path: "/usr/sbin/runc"}
	if got := r.command("kill", "c1", "SIGTERM").Args; len(got) != 4 || got[0] != "/usr/sbin/runc" {
		t.Fatalf("root's command: %q", got)
	}
	u := r.AsUser("/home/u/store", 4242)
	want := []string{"nsenter", "--user", "--target", "4242", "--preserve-credentials", "--", "/usr/sbin/runc",
		"--root", "/home/u/store/runtime", "--rootless", "true", "kill", "c1", "SIGTERM"}
	if got := u.command("kill", "c1", "SIGTERM").Args; len(got) != len(want) || filepath.Base(got[0]) != "nsenter" || !slices.Equal(got[1:], want[1:]) {
		t.Fatalf("a user's command: %q, want %q", got, want)
	}
	// An orphaned container's record is deleted from here: there may be no
	// process left to join.
	want = []string{"/usr/sbin/runc", "--root", "/home/u/store/runtime", "--rootless", "true", "delete", "--force", "c1"}
	if got := u.forgetting().command("delete", "--force", "c1").Args; !slices.Equal(got, want) {
		t.Fatalf("a user's forgetting command: %q, want %q", got, want)
	}
	if err := Pause(u, "c1"); err != errNoFreezer {
		t.Fatalf("a user's pause: %v", err)
	}
}
