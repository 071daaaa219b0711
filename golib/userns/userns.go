// Package userns owns entering a user namespace as an ordinary user: what
// the host allows (user namespaces enabled, newuidmap and newgidmap
// installed, the user's subordinate IDs in /etc/subuid and /etc/subgid), the
// mapping k3-core uses (namespace ID 0 is the user's own ID, IDs 1 and up are
// the subordinate range), and starting a process of k3-core's own helper
// binary inside a new user and mount namespace, where it is root with every
// capability of that namespace.
//
// Node and the Go runtime are multi-threaded, and a multi-threaded process
// cannot unshare(CLONE_NEWUSER) itself. So the kernel creates the namespaces
// when the helper is cloned (CLONE_NEWUSER|CLONE_NEWNS), with the full
// capabilities of the new namespace raised as ambient ones so that they
// survive the helper's execution while its IDs are still unmapped; the
// helper then waits on a pipe while this process writes its ID maps (with
// newuidmap and newgidmap at once for a subordinate range, or directly for
// a single ID). This needs no cgo and
// no other program than newuidmap/newgidmap, and the caller keeps the
// started process's stdin, stdout and extra files as with any exec.Cmd.
package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/moby/sys/user"

	"github.com/k3-core/k3-core/golib/errcat"
)

// Where the host keeps what Detect reads; tests point them at fixtures.
var (
	subUIDFile            = "/etc/subuid"
	subGIDFile            = "/etc/subgid"
	maxUserNamespacesFile = "/proc/sys/user/max_user_namespaces"
	apparmorRestrictFile  = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
	passwdFile            = "/etc/passwd"
)

// Range is one run of IDs: Count IDs from Host, seen as Inside.. in the
// namespace.
type Range struct {
	Inside int64 `json:"inside"`
	Host   int64 `json:"host"`
	Count  int64 `json:"count"`
}

// Host describes this process's user and what the host lets it do with user
// namespaces.
type Host struct {
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	User string `json:"user"` // the name in /etc/passwd, "" when there is none
	// SubUIDs and SubGIDs are the user's subordinate ranges, in file order.
	SubUIDs []Range `json:"subUids"`
	SubGIDs []Range `json:"subGids"`
	// NewUIDMap and NewGIDMap are the paths of the setuid helpers, "" when
	// not installed.
	NewUIDMap string `json:"newuidmap"`
	NewGIDMap string `json:"newgidmap"`
	// Disabled says why the kernel refuses an ordinary user a user
	// namespace, "" when it allows one.
	Disabled string `json:"disabled,omitempty"`
}

// Detect reads what the host allows this process.
func Detect() Host {
	h := Host{UID: os.Getuid(), GID: os.Getgid()}
	if u, err := user.LookupUid(h.UID); err == nil {
		h.User = u.Name
	}
	h.SubUIDs = subordinate(subUIDFile, h.User, h.UID)
	h.SubGIDs = subordinate(subGIDFile, h.User, h.UID)
	h.NewUIDMap, _ = exec.LookPath("newuidmap")
	h.NewGIDMap, _ = exec.LookPath("newgidmap")
	h.Disabled = disabled()
	return h
}

// subordinate returns the ranges a subid file gives the user, by name or by
// number, placed one after another from namespace ID 1.
func subordinate(file, name string, uid int) []Range {
	entries, err := user.ParseSubIDFileFilter(file, func(e user.SubID) bool {
		return (name != "" && e.Name == name) || e.Name == strconv.Itoa(uid)
	})
	if err != nil {
		return nil
	}
	var ranges []Range
	next := int64(1)
	for _, e := range entries {
		if e.Count <= 0 {
			continue
		}
		ranges = append(ranges, Range{Inside: next, Host: e.SubID, Count: e.Count})
		next += e.Count
	}
	return ranges
}

// The switches that disable user namespaces, as Host.Disabled names them,
// and what turns each back on.
const (
	limitZero          = "user.max_user_namespaces is 0"
	apparmorRestricted = "kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor forbids unprivileged user namespaces)"
)

var enable = map[string]string{
	limitZero:          "as root: sysctl -w user.max_user_namespaces=15000 (and the same in /etc/sysctl.d to keep it), or run as root",
	apparmorRestricted: "as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns for node, or run as root",
}

// disabled says why the kernel refuses user namespaces, or "".
func disabled() string {
	if n, ok := readInt(maxUserNamespacesFile); ok && n == 0 {
		return limitZero
	}
	if n, ok := readInt(apparmorRestrictFile); ok && n == 1 {
		return apparmorRestricted
	}
	return ""
}

func readInt(file string) (int, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil
}

// UIDMap is the user-ID mapping: 0 is the user, 1.. the subordinate range
// (when newuidmap can install it).
func (h Host) UIDMap() []Range { return h.idMap(h.UID, h.SubUIDs) }

// GIDMap is the group-ID mapping, as UIDMap.
func (h Host) GIDMap() []Range { return h.idMap(h.GID, h.SubGIDs) }

func (h Host) idMap(own int, sub []Range) []Range {
	m := []Range{{Inside: 0, Host: int64(own), Count: 1}}
	if h.multipleIDs() {
		m = append(m, sub...)
	}
	return m
}

// multipleIDs is true when the namespace maps the subordinate ranges too:
// both files give the user a range and both setuid helpers are installed.
func (h Host) multipleIDs() bool {
	return len(h.SubUIDs) > 0 && len(h.SubGIDs) > 0 && h.NewUIDMap != "" && h.NewGIDMap != ""
}

// MultipleIDs is true when files can keep owners other than root inside
// the namespace.
func (h Host) MultipleIDs() bool { return h.multipleIDs() }

// Class names a host condition that stops or limits work in a user
// namespace; each is a class of k3-core's error catalogue.
const (
	ClassDisabled         = "UserNamespacesDisabled"
	ClassNewuidmapMissing = "NewuidmapMissing"
	ClassNoSubordinateIDs = "NoSubordinateIds"
	// ClassOverlayUnavailable: neither the kernel's overlay nor
	// fuse-overlayfs can mount a container's rootfs in the namespace.
	ClassOverlayUnavailable = "OverlayUnavailable"
	// ClassFreezerNotDelegated: no cgroup freezer for the user's containers,
	// so they cannot be paused.
	ClassFreezerNotDelegated = "FreezerNotDelegated"
)

// ErrHost is what every HostError matches with errors.Is.
var ErrHost = errors.New("the host does not allow this in a user namespace")

// HostError is a host condition that stops or limits work in a user
// namespace: Class is its catalogue class, Reason what is wrong on this
// host, Fix what the host's administrator can do about it.
type HostError struct {
	Class  string
	Reason string
	Fix    string
}

func (e *HostError) Error() string { return e.Reason }

func (e *HostError) Is(target error) bool { return target == ErrHost }

// ForOp is the error as operation op reports it: its catalogue class (one
// every operation shares), the reason as details.error and the fix as
// details.fix, which createFullMessage() shows.
func (e *HostError) ForOp(op string) *errcat.Error {
	return errcat.New(op, e.Class, e.Reason, e).With("fix", e.Fix)
}

// Check returns the condition that stops a user namespace on this host, or
// nil. Root needs no user namespace and is never refused here.
func (h Host) Check() error {
	if h.Disabled != "" {
		return &HostError{Class: ClassDisabled,
			Reason: "user namespaces are disabled for ordinary users: " + h.Disabled,
			Fix:    enable[h.Disabled]}
	}
	return nil
}

// CheckRanges returns Check's condition, or NewuidmapMissing when the user
// has subordinate ranges that no newuidmap and newgidmap can install: a
// namespace of the one ID would show the owners of files stored over those
// ranges wrong, so the work is refused rather than done with wrong owners.
// A user with no range gets a namespace of one ID.
func (h Host) CheckRanges() error {
	if err := h.Check(); err != nil {
		return err
	}
	if len(h.SubUIDs) > 0 && len(h.SubGIDs) > 0 && !h.multipleIDs() {
		return h.CheckMultipleIDs()
	}
	return nil
}

// CheckMultipleIDs returns why the namespace can map only the user's own ID,
// or nil when it maps the subordinate range too. With one ID every file in
// the namespace belongs to root, device nodes cannot be made and setuid or
// other owners cannot be kept: what each caller loses is its own to say.
func (h Host) CheckMultipleIDs() error {
	if err := h.Check(); err != nil {
		return err
	}
	if len(h.SubUIDs) == 0 || len(h.SubGIDs) == 0 {
		name := h.User
		if name == "" {
			name = strconv.Itoa(h.UID)
		}
		return &HostError{Class: ClassNoSubordinateIDs,
			Reason: fmt.Sprintf("user %s has no subordinate IDs in %s and %s, so a user namespace can map only this user's own ID (every file then belongs to root, and other owners are lost)", name, subUIDFile, subGIDFile),
			Fix:    fmt.Sprintf("as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s", name)}
	}
	if h.NewUIDMap == "" || h.NewGIDMap == "" {
		return &HostError{Class: ClassNewuidmapMissing,
			Reason: "newuidmap and newgidmap are not installed, so a user namespace can map only this user's own ID (every file then belongs to root, and other owners are lost)",
			Fix:    "install them as root: apt-get install uidmap (Debian, Ubuntu), dnf install shadow-utils (Fedora)"}
	}
	return nil
}
