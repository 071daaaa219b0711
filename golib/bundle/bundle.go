// Package bundle owns one container's bundle directory: the OCI runtime
// config.json generated from its image's config and the create options, the
// container's writable layer (diff/), and changes made to that layer from
// outside, as `docker cp` makes them.
//
//	<bundle>/config.json   OCI runtime spec
//	<bundle>/diff/         the container's own changes, as an overlay upper dir
//	<bundle>/rootfs/       mount point for the merged tree when it runs
package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Options are what createContainer lets the caller override.
type Options struct {
	Name       string            `json:"name,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	// Network is "none" (the default: a network namespace of its own, with
	// no interfaces but loopback) or "host".
	Network string  `json:"network,omitempty"`
	Mounts  []Mount `json:"mounts,omitempty"`
	// CapAdd and CapDrop change docker's default capabilities ("NET_ADMIN",
	// "CAP_NET_ADMIN" or "ALL"); Privileged gives every capability, no
	// seccomp filter and no masked or read-only paths; SecurityOpt takes
	// docker's --security-opt values (isolation.go).
	CapAdd      []string `json:"capAdd,omitempty"`
	CapDrop     []string `json:"capDrop,omitempty"`
	Privileged  bool     `json:"privileged,omitempty"`
	SecurityOpt []string `json:"securityOpt,omitempty"`
}

// Mount binds a host path into the container.
type Mount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// DiffDir is the container's writable layer inside bundle dir.
func DiffDir(dir string) string { return filepath.Join(dir, "diff") }

// Create writes a new bundle at dir, which must not exist yet.
func Create(dir string, img *v1.ConfigFile, opts Options) error {
	spec, err := RuntimeSpec(img, opts)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for _, d := range []string{"diff", "rootfs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
}

// RuntimeSpec builds the OCI runtime config a container of img runs with.
func RuntimeSpec(img *v1.ConfigFile, opts Options) (*specs.Spec, error) {
	iso, err := isolationOf(opts)
	if err != nil {
		return nil, err
	}
	cfg := img.Config
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	if opts.Entrypoint != nil {
		entrypoint, cmd = opts.Entrypoint, nil // as docker: a new entrypoint drops the image's cmd
	}
	if opts.Cmd != nil {
		cmd = opts.Cmd
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	cwd := cfg.WorkingDir
	if opts.WorkingDir != "" {
		cwd = opts.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	user := cfg.User
	if opts.User != "" {
		user = opts.User
	}
	uid, gid := numericUser(user)
	hostname := opts.Hostname
	if hostname == "" {
		hostname = opts.Name
	}
	spec := &specs.Spec{
		Version:  specVersion,
		Hostname: hostname,
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args:    args,
			Env:     mergeEnv(cfg.Env, opts.Env),
			Cwd:     cwd,
			User:    specs.User{UID: uid, GID: gid},
			Rlimits: hostRlimits(),
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
		},
		Annotations: opts.Labels,
	}
	iso.apply(spec)
	if opts.Network == "host" {
		var kept []specs.LinuxNamespace
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type != specs.NetworkNamespace {
				kept = append(kept, ns)
			}
		}
		spec.Linux.Namespaces = kept
	}
	for _, m := range opts.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: []string{"rbind", mode}})
	}
	return spec, nil
}

// specVersion is the runtime-spec version the config declares. Nothing here
// needs more than 1.0, and older runtimes (crun 1.8 in Debian 12) refuse
// versions newer than they know, such as the Go module's own 1.3.0.
const specVersion = "1.0.2"

// hostRlimits copies the host's open-files limit: asking for more than the
// host's hard limit makes the runtime fail ("error setting rlimit type 7").
func hostRlimits() []specs.POSIXRlimit {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	return []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: lim.Max, Soft: lim.Cur}}
}

// numericUser reads "uid[:gid]" for the config written at create time;
// ResolveUser settles names, a uid's passwd gid (else 0) and its groups when
// the container starts, from the container's own /etc/passwd and /etc/group.
func numericUser(user string) (uint32, uint32) {
	u, g, _ := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0
	}
	gid, err := strconv.ParseUint(g, 10, 32)
	if err != nil {
		gid = 0
	}
	return uint32(uid), uint32(gid)
}

// mergeEnv overrides image variables by name with the caller's.
func mergeEnv(image, extra []string) []string {
	out := append([]string{}, image...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
		} else {
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// ReadSpec reads a bundle's config.json, as a check that the bundle is whole.
func ReadSpec(dir string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("config.json is corrupt: %w", err)
	}
	return &spec, nil
}
