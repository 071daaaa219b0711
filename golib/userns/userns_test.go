package userns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/errcat"
)

// helperEnv makes the test binary act as the helper: TestMain prints what it
// sees of its namespaces on fd 3 and exits.
const helperEnv = "K3_USERNS_TEST_HELPER"

// asUserEnv marks the copy of the test binary that runs as the ordinary user.
const asUserEnv = "K3_USERNS_TEST_AS_USER"

// testUser is the ordinary user the namespace tests run as; useradd gives it
// a subordinate range, as Debian does.
const testUser = "k3nsgo"

func TestMain(m *testing.M) {
	FinishEntry()
	if os.Getenv(helperEnv) == "1" {
		report := os.NewFile(3, "report")
		json.NewEncoder(report).Encode(ReadSelf())
		report.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSubordinateRangesByNameOrNumberOneAfterAnother(t *testing.T) {
	f := writeFile(t, t.TempDir(), "subuid", "other:100000:65536\nalice:165536:65536\n1001:300000:10\nalice:400000:0\n")
	got := subordinate(f, "alice", 1001)
	want := []Range{{Inside: 1, Host: 165536, Count: 65536}, {Inside: 65537, Host: 300000, Count: 10}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ranges = %v, want %v", got, want)
	}
	if got := subordinate(f, "bob", 1002); got != nil {
		t.Fatalf("a user with no lines has ranges %v", got)
	}
	if got := subordinate(filepath.Join(t.TempDir(), "missing"), "alice", 1001); got != nil {
		t.Fatalf("no file gives ranges %v", got)
	}
}

func TestMapsTheUserAsRootAndTheRangeAbove(t *testing.T) {
	h := Host{UID: 1001, GID: 1002, SubUIDs: []Range{{1, 100000, 65536}}, SubGIDs: []Range{{1, 200000, 65536}},
		NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"}
	if got := fmt.Sprint(h.UIDMap()); got != "[{0 1001 1} {1 100000 65536}]" {
		t.Fatalf("uid map %s", got)
	}
	if got := fmt.Sprint(h.GIDMap()); got != "[{0 1002 1} {1 200000 65536}]" {
		t.Fatalf("gid map %s", got)
	}
	if err := h.CheckMultipleIDs(); err != nil {
		t.Fatal(err)
	}
	h.NewGIDMap = ""
	if got := fmt.Sprint(h.UIDMap()); got != "[{0 1001 1}]" {
		t.Fatalf("without newgidmap the uid map is %s, want the single ID", got)
	}
}

func hostClass(t *testing.T, err error) string {
	t.Helper()
	var he *HostError
	if !errors.As(err, &he) || !errors.Is(err, ErrHost) {
		t.Fatalf("error %v is not a HostError", err)
	}
	if he.Reason == "" || he.Fix == "" {
		t.Fatalf("error %+v lacks a reason or a fix", he)
	}
	// Every operation reports it under its class, with the fix in details.
	for _, op := range []string{"startContainer", "exportContainer", "pullAnImage"} {
		wire := he.ForOp(op).ToWire()
		if wire.Class != he.Class || wire.Details["fix"] != he.Fix || wire.Details["error"] != he.Reason || wire.Details["statusCode"] != 403 {
			t.Fatalf("%s reports %+v", op, wire)
		}
	}
	return he.Class
}

func TestHostConditionsAreTypedWithReasonAndFix(t *testing.T) {
	full := Host{UID: 1001, GID: 1001, User: "alice", SubUIDs: []Range{{1, 100000, 65536}}, SubGIDs: []Range{{1, 100000, 65536}},
		NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"}
	noSub := full
	noSub.SubGIDs = nil
	if got := hostClass(t, noSub.CheckMultipleIDs()); got != ClassNoSubordinateIDs {
		t.Fatalf("no subgid: class %s", got)
	}
	if err := noSub.Check(); err != nil {
		t.Fatalf("a user with no subordinate IDs still gets a namespace of one ID: %v", err)
	}
	noTool := full
	noTool.NewUIDMap = ""
	if got := hostClass(t, noTool.CheckMultipleIDs()); got != ClassNewuidmapMissing {
		t.Fatalf("no newuidmap: class %s", got)
	}
	if got := hostClass(t, noTool.CheckRanges()); got != ClassNewuidmapMissing {
		t.Fatalf("ranges without newuidmap: CheckRanges class %s", got)
	}
	if err := noSub.CheckRanges(); err != nil {
		t.Fatalf("no range: a namespace of one ID, not %v", err)
	}
	noRangeNoTool := noTool
	noRangeNoTool.SubUIDs, noRangeNoTool.SubGIDs = nil, nil
	if err := noRangeNoTool.CheckRanges(); err != nil {
		t.Fatalf("no range and no newuidmap: a namespace of one ID, not %v", err)
	}
	if err := full.CheckRanges(); err != nil {
		t.Fatal(err)
	}
	off := full
	off.Disabled = "user.max_user_namespaces is 0"
	if got := hostClass(t, off.Check()); got != ClassDisabled {
		t.Fatalf("disabled: class %s", got)
	}
	if got := hostClass(t, Start(off, exec.Command("true"))); got != ClassDisabled {
		t.Fatalf("Start on a disabled host: class %s", got)
	}
}

func TestDetectReadsTheKernelSwitches(t *testing.T) {
	dir := t.TempDir()
	saved := []*string{&maxUserNamespacesFile, &apparmorRestrictFile}
	old := []string{maxUserNamespacesFile, apparmorRestrictFile}
	defer func() {
		for i, p := range saved {
			*p = old[i]
		}
	}()
	// Each switch is named, and the fix turns that one back on.
	fixOf := func() string {
		var he *HostError
		if !errors.As(Detect().Check(), &he) {
			t.Fatal("a disabled host passes Check")
		}
		return he.Fix
	}
	maxUserNamespacesFile = writeFile(t, dir, "max", "0\n")
	apparmorRestrictFile = filepath.Join(dir, "absent")
	if d := Detect().Disabled; !strings.Contains(d, "max_user_namespaces") {
		t.Fatalf("max_user_namespaces=0: disabled = %q", d)
	}
	if fix := fixOf(); !strings.Contains(fix, "sysctl -w user.max_user_namespaces=") || strings.Contains(fix, "apparmor") {
		t.Fatalf("max_user_namespaces=0: fix %q", fix)
	}
	maxUserNamespacesFile = writeFile(t, dir, "max", "15000\n")
	apparmorRestrictFile = writeFile(t, dir, "apparmor", "1\n")
	if d := Detect().Disabled; !strings.Contains(d, "apparmor_restrict_unprivileged_userns") {
		t.Fatalf("apparmor restriction: disabled = %q", d)
	}
	if fix := fixOf(); !strings.Contains(fix, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0") || strings.Contains(fix, "max_user_namespaces") {
		t.Fatalf("apparmor restriction: fix %q", fix)
	}
	apparmorRestrictFile = writeFile(t, dir, "apparmor", "0\n")
	if d := Detect().Disabled; d != "" {
		t.Fatalf("allowed host: disabled = %q", d)
	}
}

// startSelf starts this test binary as the helper in a user namespace of h
// and returns what it saw, read from an extra file (so the caller's extra
// files reach the helper through its second execution).
func startSelf(t *testing.T, h Host) Self {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{w}
	err = Start(h, cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var self Self
	decodeErr := json.NewDecoder(r).Decode(&self)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, stderr.String())
	}
	if decodeErr != nil {
		t.Fatalf("helper report: %v (stderr %s)", decodeErr, stderr.String())
	}
	return self
}

// fullCaps is true of a CapEff that holds every capability up to
// CAP_SETFCAP and CAP_SYS_ADMIN, as a namespace's root has.
func fullCaps(capEff string) bool {
	v, err := strconv.ParseUint(capEff, 16, 64)
	const setuid, setgid, sysAdmin, chown, mknod = 7, 6, 21, 0, 27
	return err == nil && v&(1<<setuid|1<<setgid|1<<sysAdmin|1<<chown|1<<mknod) == 1<<setuid|1<<setgid|1<<sysAdmin|1<<chown|1<<mknod
}

// TestStartAsOrdinaryUser runs the namespace tests as an ordinary user: as
// root it creates the user and runs a copy of this test binary as that user
// with setpriv.
func TestStartAsOrdinaryUser(t *testing.T) {
	if os.Getenv(asUserEnv) == "1" {
		startAsUser(t)
		return
	}
	if os.Geteuid() != 0 {
		startAsUser(t)
		return
	}
	for _, tool := range []string{"setpriv", "useradd", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (apt-get install util-linux passwd uidmap): %v", tool, err)
		}
	}
	if exec.Command("id", "-u", testUser).Run() != nil {
		if out, err := exec.Command("useradd", "-m", testUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
	}
	out, err := exec.Command("id", "-u", testUser).Output()
	if err != nil {
		t.Fatal(err)
	}
	uid := strings.TrimSpace(string(out))
	// The test binary sits in a private build directory: the user runs a copy.
	dir, err := os.MkdirTemp("", "k3-userns-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := writeFile(t, dir, "userns.test", "")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(bin, 0o755)
	cmd := exec.Command("setpriv", "--reuid", uid, "--regid", uid, "--init-groups", "--",
		bin, "-test.run", "^TestStartAsOrdinaryUser$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/home/" + testUser, asUserEnv + "=1"}
	output, err := cmd.CombinedOutput()
	t.Logf("as %s:\n%s", testUser, output)
	if err != nil || !bytes.Contains(output, []byte("--- PASS: TestStartAsOrdinaryUser")) {
		t.Fatalf("as %s: %v", testUser, err)
	}
}

func startAsUser(t *testing.T) {
	h := Detect()
	if h.UID == 0 {
		t.Fatal("running as root, not as an ordinary user")
	}
	if err := h.CheckMultipleIDs(); err != nil {
		t.Fatalf("the test user should have a subordinate range and newuidmap: %v", err)
	}
	outside := ReadSelf()

	t.Run("subordinate range", func(t *testing.T) {
		s := startSelf(t, h)
		want := fmt.Sprintf("0 %d 1\n1 %d %d", h.UID, h.SubUIDs[0].Host, h.SubUIDs[0].Count)
		if s.UID != 0 || s.GID != 0 || s.UIDMap != want {
			t.Fatalf("inside: uid %d gid %d uid_map %q, want 0 0 %q", s.UID, s.GID, s.UIDMap, want)
		}
		if !strings.HasPrefix(s.GIDMap, fmt.Sprintf("0 %d 1\n1 %d ", h.GID, h.SubGIDs[0].Host)) {
			t.Fatalf("gid_map %q", s.GIDMap)
		}
		if !fullCaps(s.CapEff) {
			t.Fatalf("CapEff %s inside: not root's capabilities", s.CapEff)
		}
		if s.UserNS == outside.UserNS || s.MountNS == outside.MountNS {
			t.Fatalf("not in new namespaces: %s %s (outside %s %s)", s.UserNS, s.MountNS, outside.UserNS, outside.MountNS)
		}
	})

	t.Run("single ID without a subordinate range", func(t *testing.T) {
		one := h
		one.SubUIDs, one.SubGIDs = nil, nil
		s := startSelf(t, one)
		if s.UID != 0 || s.UIDMap != fmt.Sprintf("0 %d 1", h.UID) || s.GIDMap != fmt.Sprintf("0 %d 1", h.GID) {
			t.Fatalf("inside: uid %d maps %q %q", s.UID, s.UIDMap, s.GIDMap)
		}
		if !fullCaps(s.CapEff) {
			t.Fatalf("CapEff %s inside: not root's capabilities", s.CapEff)
		}
	})

	t.Run("a failing newuidmap is an error and leaves no process", func(t *testing.T) {
		broken := h
		broken.NewUIDMap = "/bin/false"
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), helperEnv+"=1")
		err := Start(broken, cmd)
		if err == nil || !strings.Contains(err.Error(), "/bin/false") {
			t.Fatalf("Start with a failing newuidmap: %v", err)
		}
		if cmd.ProcessState == nil {
			t.Fatal("the helper was not waited for")
		}
	})
}

func TestEveryClassIsInTheCatalogueForEveryOperation(t *testing.T) {
	for _, class := range []string{ClassDisabled, ClassNewuidmapMissing, ClassNoSubordinateIDs, ClassOverlayUnavailable, ClassFreezerNotDelegated} {
		for _, op := range []string{"startContainer", "pauseContainer", "commitContainer", "exportContainer"} {
			if e, ok := errcat.Lookup(op, class); !ok || e.StatusCode != 403 || len(e.Hint) == 0 {
				t.Errorf("class %s of %s: %+v, %v", class, op, e, ok)
			}
		}
	}
}
