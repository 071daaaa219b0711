package bundle

import (
	"slices"
	"testing"
)

// capabilities follows docker's precedence (moby TweakCapabilities).
func TestCapabilities(t *testing.T) {
	all, err := supportedCaps()
	if err != nil {
		t.Fatal(err)
	}
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	cases := []struct {
		name string
		opts Options
		want []string
	}{
		{"defaults", Options{}, defaultCaps},
		{"add, any spelling", Options{CapAdd: []string{"sys_admin", "CAP_NET_ADMIN"}}, append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN", "CAP_NET_ADMIN")},
		{"adding a default changes nothing", Options{CapAdd: []string{"CHOWN"}}, defaultCaps},
		{"drop", Options{CapDrop: []string{"NET_RAW", "cap_mknod"}}, without(defaultCaps, "CAP_NET_RAW", "CAP_MKNOD")},
		{"added and dropped is added", Options{CapAdd: []string{"KILL"}, CapDrop: []string{"KILL"}}, append(without(defaultCaps, "CAP_KILL"), "CAP_KILL")},
		{"drop ALL keeps only the added", Options{CapDrop: []string{"ALL"}, CapAdd: []string{"CHOWN"}}, []string{"CAP_CHOWN"}},
		{"drop ALL", Options{CapDrop: []string{"all"}}, nil},
		{"add ALL but the dropped", Options{CapAdd: []string{"ALL"}, CapDrop: []string{"CHOWN"}}, without(all, "CAP_CHOWN")},
		{"privileged ignores capDrop", Options{Privileged: true, CapDrop: []string{"ALL"}}, all},
	}
	for _, c := range cases {
		got, err := capabilities(c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestIsolationDefaultsAndRelaxing(t *testing.T) {
	iso, err := isolationOf(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if iso.seccomp == nil || iso.seccomp.DefaultAction != "SCMP_ACT_ERRNO" || iso.noNewPrivileges || !iso.systemPaths {
		t.Errorf("defaults are not docker's: %+v", iso)
	}
	privileged, err := isolationOf(Options{Privileged: true, SecurityOpt: []string{"seccomp=/no/such/file"}})
	if err != nil {
		t.Fatal("privileged drops seccomp, so its profile is not read:", err)
	}
	if privileged.seccomp != nil || privileged.systemPaths || !privileged.writableSys {
		t.Errorf("privileged still confined: %+v", privileged)
	}
	for _, bad := range []Options{{CapAdd: []string{"NOPE"}}, {SecurityOpt: []string{"seccomp="}}, {SecurityOpt: []string{"label=disable"}}} {
		if err := CheckIsolation(bad); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}
