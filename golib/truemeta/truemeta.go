// Package truemeta owns how an unpacked tree records the metadata its files
// cannot carry themselves, and which extended attributes are the store's
// own bookkeeping rather than the image's.
//
// Inside a user namespace a file can only belong to a mapped ID, mknod of a
// device is refused, and trusted.* attributes cannot be set. The unpacker
// then writes what it could (a file owned by the namespace's root, an empty
// regular file for a device) and records the truth in extended attributes
// of the user.* namespace, which an ordinary user may set; the one tar
// writer reads them back, so archives show the true metadata:
//
//   - user.containers.override_stat = "uid:gid:0mode[:type]", the format
//     containers/storage and fuse-overlayfs use: mode is the permission bits
//     with setuid, setgid and sticky, in octal; type is one of file, dir,
//     symlink, pipe, socket, char-MAJOR-MINOR, block-MAJOR-MINOR, absent
//     when the file on disk already has the true type.
//   - user.k3.trusted.NAME holds the value of trusted.NAME.
//
// None of these, nor overlayfs's own (trusted.overlay.*, user.overlay.*),
// ever reaches an archive.
package truemeta

import (
	"archive/tar"
	"fmt"
	"strconv"
	"strings"
)

const (
	// StatXattr holds an entry's true owner, mode and type.
	StatXattr = "user.containers.override_stat"
	// ownPrefix starts the attributes this store keeps for itself.
	ownPrefix = "user.k3."
	// trustedPrefix starts the attributes that stand for trusted.* ones.
	trustedPrefix = ownPrefix + "trusted."
)

// Stat is the metadata a file on disk may not hold.
type Stat struct {
	Uid, Gid int
	Mode     int64 // permission bits with setuid, setgid and sticky
	// Typeflag is the tar type of the entry; 0 when the file on disk has
	// the right type already.
	Typeflag           byte
	Devmajor, Devminor int64
}

// Encode renders s as the value of StatXattr.
func (s Stat) Encode() string {
	v := fmt.Sprintf("%d:%d:0%o", s.Uid, s.Gid, s.Mode&0o7777)
	switch s.Typeflag {
	case 0:
	case tar.TypeChar:
		v += fmt.Sprintf(":char-%d-%d", s.Devmajor, s.Devminor)
	case tar.TypeBlock:
		v += fmt.Sprintf(":block-%d-%d", s.Devmajor, s.Devminor)
	default:
		v += ":" + typeNames[s.Typeflag]
	}
	return v
}

var typeNames = map[byte]string{tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink", tar.TypeFifo: "pipe", 'S': "socket"}

// Decode reads a StatXattr value.
func Decode(v string) (Stat, error) {
	parts := strings.Split(v, ":")
	bad := fmt.Errorf("%s %q is not uid:gid:mode[:type]", StatXattr, v)
	if len(parts) < 3 || len(parts) > 4 {
		return Stat{}, bad
	}
	var s Stat
	var err error
	if s.Uid, err = strconv.Atoi(parts[0]); err != nil || s.Uid < 0 {
		return Stat{}, bad
	}
	if s.Gid, err = strconv.Atoi(parts[1]); err != nil || s.Gid < 0 {
		return Stat{}, bad
	}
	if s.Mode, err = strconv.ParseInt(parts[2], 8, 32); err != nil || s.Mode&^0o7777 != 0 {
		return Stat{}, bad
	}
	if len(parts) == 3 {
		return s, nil
	}
	t := parts[3]
	for flag, name := range typeNames {
		if t == name {
			s.Typeflag = flag
			return s, nil
		}
	}
	var kind string
	if kind, t, _ = strings.Cut(t, "-"); kind == "char" || kind == "block" {
		major, minor, _ := strings.Cut(t, "-")
		s.Typeflag = tar.TypeChar
		if kind == "block" {
			s.Typeflag = tar.TypeBlock
		}
		if s.Devmajor, err = strconv.ParseInt(major, 10, 64); err == nil {
			s.Devminor, err = strconv.ParseInt(minor, 10, 64)
		}
		if err == nil && s.Devmajor >= 0 && s.Devminor >= 0 {
			return s, nil
		}
	}
	return Stat{}, bad
}

// Internal reports whether the attribute name is bookkeeping of this store
// or of overlayfs, never part of an image.
func Internal(name string) bool {
	return name == StatXattr || strings.HasPrefix(name, ownPrefix) ||
		strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// StandIn is the attribute that records trusted.NAME where it cannot be
// set; ok is false for any other name.
func StandIn(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "trusted.")
	return trustedPrefix + rest, ok
}

// Original is the attribute a stand-in records; ok is false for a name that
// is not a stand-in.
func Original(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, trustedPrefix)
	return "trusted." + rest, ok
}
