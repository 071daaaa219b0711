package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A container is confined as docker confines one by default: docker's
// capabilities, its seccomp profile, its masked and read-only paths. Only the
// create options relax that, with docker's names: capAdd, capDrop,
// privileged, securityOpt.

// defaultCaps is docker's default capability set (moby daemon/pkg/oci/caps,
// docker v29.7.2), given as bounding, effective and permitted; inheritable
// and ambient stay empty, as in docker since 20.10.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths are docker's (moby daemon/pkg/oci/defaults.go,
// docker v29.7.2); no maintained Go module exports them. Docker also masks
// each CPU's thermal_throttle directory where the host has one: see
// hostMaskedPaths.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
		"/sys/devices/virtual/powercap", "/sys/firmware",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// isolation is what the create options leave of docker's confinement.
type isolation struct {
	caps            []string
	seccomp         *specs.LinuxSeccomp // nil: unconfined
	noNewPrivileges bool
	systemPaths     bool // keep the masked and read-only paths
	writableSys     bool
}

// CheckIsolation says, in words for details.error, why the options' capAdd,
// capDrop, privileged or securityOpt cannot be applied.
func CheckIsolation(opts Options) error {
	_, err := isolationOf(opts)
	return err
}

func isolationOf(opts Options) (isolation, error) {
	caps, err := capabilities(opts)
	if err != nil {
		return isolation{}, err
	}
	iso := isolation{caps: caps, systemPaths: !opts.Privileged, writableSys: opts.Privileged}
	profile, profileOpt := "builtin", ""
	for _, opt := range opts.SecurityOpt {
		key, value, hasValue := strings.Cut(opt, "=")
		switch {
		case key == "no-new-privileges" && !hasValue:
			iso.noNewPrivileges = true
		case key == "no-new-privileges":
			if iso.noNewPrivileges, err = strconv.ParseBool(value); err != nil {
				return isolation{}, fmt.Errorf("securityOpt %q: no-new-privileges takes true or false", opt)
			}
		case key == "seccomp" && value != "":
			profile, profileOpt = value, opt
		case key == "systempaths" && value == "unconfined":
			iso.systemPaths = false
		case key == "apparmor" || key == "label":
			return isolation{}, fmt.Errorf("securityOpt %q: %s is not supported: containers run without AppArmor profiles or SELinux labels", opt, key)
		default:
			return isolation{}, fmt.Errorf("securityOpt %q is not one of seccomp=unconfined|builtin|<profile file or JSON>, no-new-privileges[=true|false], systempaths=unconfined", opt)
		}
	}
	if !opts.Privileged {
		if iso.seccomp, err = seccompProfile(profile, caps); err != nil {
			return isolation{}, fmt.Errorf("securityOpt %q: %w", profileOpt, err)
		}
	}
	return iso, nil
}

// capabilities applies capDrop then capAdd to docker's defaults, as docker
// does: adding ALL keeps every capability but the dropped ones, dropping ALL
// keeps only the added ones; privileged gives every capability.
func capabilities(opts Options) ([]string, error) {
	all, err := supportedCaps()
	if err != nil {
		return nil, err
	}
	add, err := capNames("capAdd", opts.CapAdd, all)
	if err != nil {
		return nil, err
	}
	drop, err := capNames("capDrop", opts.CapDrop, all)
	if err != nil {
		return nil, err
	}
	if opts.Privileged {
		return all, nil
	}
	base := defaultCaps
	switch {
	case slices.Contains(add, "ALL"):
		base, add = all, nil
	case slices.Contains(drop, "ALL"):
		base = nil
	}
	var caps []string
	for _, c := range base {
		if !slices.Contains(drop, c) {
			caps = append(caps, c)
		}
	}
	for _, c := range add {
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// capNames upper-cases names and adds the CAP_ prefix docker lets callers
// leave out; "ALL" stays as it is.
func capNames(option string, names, supported []string) ([]string, error) {
	var out []string
	for _, name := range names {
		c := strings.ToUpper(name)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if c != "ALL" && !slices.Contains(supported, c) {
			if slices.Contains(knownCaps(), c) {
				return nil, fmt.Errorf("%s: capability %s is not available here (not in this kernel, or withheld from this process)", option, c)
			}
			return nil, fmt.Errorf("%s: unknown capability %q", option, name)
		}
		out = append(out, c)
	}
	return out, nil
}

// supportedCaps names every capability a container can have: those the
// kernel has and this process may pass on (its bounding set, which the
// runtime inherits; a host may withhold some, as this one may run in a
// container itself). That is "ALL", as docker takes it from its own.
var supportedCaps = sync.OnceValues(func() ([]string, error) {
	list, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("cannot tell which capabilities this kernel has: %w", err)
	}
	own, err := capability.NewPid2(0)
	if err == nil {
		err = own.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read this process's capabilities: %w", err)
	}
	list = slices.DeleteFunc(list, func(c capability.Cap) bool { return !own.Get(capability.BOUNDING, c) })
	return capNamesOf(list), nil
})

func knownCaps() []string { return capNamesOf(capability.ListKnown()) }

func capNamesOf(list []capability.Cap) []string {
	names := make([]string, len(list))
	for i, c := range list {
		names[i] = "CAP_" + strings.ToUpper(c.String())
	}
	return names
}

// seccompProfile is docker's default profile ("builtin"), none
// ("unconfined"), or a profile in docker's format, given as JSON or as the
// path of a file holding it. moby/profiles resolves the profile's
// conditional rules against the container's capabilities (adding
// CAP_SYS_ADMIN also allows mount, unshare, ...), as docker does.
func seccompProfile(profile string, caps []string) (*specs.LinuxSeccomp, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	switch {
	case profile == "unconfined":
		return nil, nil
	case profile == "builtin":
		return seccomp.GetDefaultProfile(spec)
	case strings.HasPrefix(strings.TrimSpace(profile), "{"):
		return loadSeccomp(profile, spec)
	case filepath.IsAbs(profile):
		data, err := os.ReadFile(profile)
		if err != nil {
			return nil, err
		}
		return loadSeccomp(string(data), spec)
	}
	return nil, fmt.Errorf("give unconfined, builtin, a profile as JSON, or the absolute path of a profile file")
}

func loadSeccomp(body string, spec *specs.Spec) (*specs.LinuxSeccomp, error) {
	profile, err := seccomp.LoadProfile(body, spec)
	if err != nil {
		return nil, fmt.Errorf("not a docker seccomp profile: %w", err)
	}
	return profile, nil
}

// apply writes the isolation into spec.
func (iso isolation) apply(spec *specs.Spec) {
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: iso.caps, Effective: iso.caps, Permitted: iso.caps}
	spec.Process.NoNewPrivileges = iso.noNewPrivileges
	spec.Linux.Seccomp = iso.seccomp
	if iso.systemPaths {
		spec.Linux.MaskedPaths = append(slices.Clone(maskedPaths), hostMaskedPaths()...)
		spec.Linux.ReadonlyPaths = readonlyPaths
	}
	if iso.writableSys {
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" {
				spec.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			}
		}
	}
}

// hostMaskedPaths are the per-CPU thermal_throttle directories docker masks
// too (GHSA-6fw5-f8r9-fgfm), on hosts that have them.
func hostMaskedPaths() []string {
	found, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	return found
}
