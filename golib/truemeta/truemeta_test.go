package truemeta

import (
	"archive/tar"
	"testing"
)

// What is recorded reads back as it was, in containers/storage's format.
func TestEncodeDecode(t *testing.T) {
	for _, c := range []struct {
		s    Stat
		text string
	}{
		{Stat{Uid: 0, Gid: 42, Mode: 0o640}, "0:42:0640"},
		{Stat{Uid: 200000, Gid: 1, Mode: 0o4755}, "200000:1:04755"},
		{Stat{Mode: 0o666, Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, "0:0:0666:char-1-3"},
		{Stat{Gid: 6, Mode: 0o660, Typeflag: tar.TypeBlock, Devmajor: 8}, "0:6:0660:block-8-0"},
		{Stat{Uid: 33, Gid: 33, Mode: 0o600, Typeflag: tar.TypeFifo}, "33:33:0600:pipe"},
	} {
		if got := c.s.Encode(); got != c.text {
			t.Errorf("%+v encodes as %q, want %q", c.s, got, c.text)
		}
		back, err := Decode(c.text)
		if err != nil || back != c.s {
			t.Errorf("%q decodes as %+v (%v), want %+v", c.text, back, err, c.s)
		}
	}
	for _, bad := range []string{"", "0:0", "a:0:0644", "0:0:0644:char-x-1", "0:0:0644:tape", "0:0:017777", "-1:0:0644"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("%q decodes", bad)
		}
	}
}

// Only the store's and overlayfs's own attributes are internal; trusted.*
// has a stand-in and back.
func TestNames(t *testing.T) {
	for name, internal := range map[string]bool{StatXattr: true, "user.k3.unpacked": true, "user.k3.trusted.x": true,
		"user.overlay.opaque": true, "trusted.overlay.opaque": true, "user.kept": false, "trusted.x": false, "security.capability": false} {
		if Internal(name) != internal {
			t.Errorf("Internal(%q) = %v", name, !internal)
		}
	}
	standIn, ok := StandIn("trusted.x")
	if back, isStandIn := Original(standIn); !ok || !isStandIn || back != "trusted.x" {
		t.Errorf("trusted.x -> %q -> %q", standIn, back)
	}
	if _, ok := StandIn("user.x"); ok {
		t.Error("user.x has a stand-in")
	}
}
