package layer

import (
	"archive/tar"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/truemeta"
)

// In a user namespace that does not map every ID (see Confined) an entry's
// owner may be unmapped, a device cannot be made and trusted.* attributes
// cannot be set. The unpacker then writes what it can and records the rest
// with package truemeta's attributes, which the tar writer reads back:
// nothing of the entry is lost, and nothing is silently wrong.

// attrs sets and reads an entry's extended attributes: through its open
// descriptor, or by its path for what cannot be opened.
type attrs struct {
	set func(name string, v []byte) error
	get func(name string, buf []byte) (int, error)
	del func(name string) error
}

func fdAttrs(fd int) attrs {
	return attrs{
		set: func(name string, v []byte) error { return unix.Fsetxattr(fd, name, v, 0) },
		get: func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) },
		del: func(name string) error { return unix.Fremovexattr(fd, name) },
	}
}

func pathAttrs(p string) attrs {
	return attrs{
		set: func(name string, v []byte) error { return unix.Lsetxattr(p, name, v, 0) },
		get: func(name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) },
		del: func(name string) error { return unix.Lremovexattr(p, name) },
	}
}

// chown gives an entry hdr's owner with set. It reports unmapped when a
// confined unpack cannot (the owner stays the namespace's root and the
// caller records the truth).
func (u *unpacker) chown(set func(uid, gid int) error, hdr *tar.Header) (unmapped bool, err error) {
	err = set(hdr.Uid, hdr.Gid)
	if err == unix.EINVAL && u.confined {
		return true, nil
	}
	return false, u.chownErr(err)
}

// unmappedOwner reports whether hdr's owner is outside this namespace.
func (u *unpacker) unmappedOwner(hdr *tar.Header) bool {
	return !mapped("/proc/self/uid_map", hdr.Uid) || !mapped("/proc/self/gid_map", hdr.Gid)
}

// mapped reports whether the ID map file maps id.
func mapped(file string, id int) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var inside, host, count int64
		if n, _ := fmt.Sscan(line, &inside, &host, &count); n == 3 && int64(id) >= inside && int64(id) < inside+count {
			return true
		}
	}
	return false
}

// recordTruth keeps, for a confined unpack, the metadata of hdr that the
// entry cannot hold: its owner when unmapped, and typeflag (with hdr's
// device numbers) when the file on disk is of another type; 0 keeps the
// type an earlier record gave the inode, as for a hardlink to it. An entry
// that holds its metadata itself loses any earlier record.
func (u *unpacker) recordTruth(a attrs, hdr *tar.Header, unmapped bool, typeflag byte) error {
	if !u.confined {
		return nil
	}
	t := truemeta.Stat{Uid: hdr.Uid, Gid: hdr.Gid, Mode: hdr.Mode & 0o7777, Typeflag: typeflag, Devmajor: hdr.Devmajor, Devminor: hdr.Devminor}
	if typeflag == 0 {
		if old, ok := readTruth(a); ok && old.Typeflag != 0 {
			t.Typeflag, t.Devmajor, t.Devminor = old.Typeflag, old.Devmajor, old.Devminor
		}
	}
	if !unmapped && t.Typeflag == 0 {
		if err := a.del(truemeta.StatXattr); err != nil && err != unix.ENODATA && err != unix.EPERM {
			return err
		}
		return nil
	}
	err := a.set(truemeta.StatXattr, []byte(t.Encode()))
	if err == unix.EPERM {
		// The kernel allows no user.* attribute on a symlink: its owner
		// outside the mapping cannot be kept (see the README).
		return nil
	}
	return err
}

// readTruth reads an entry's record, if it has one.
func readTruth(a attrs) (truemeta.Stat, bool) {
	var buf [128]byte
	n, err := a.get(truemeta.StatXattr, buf[:])
	if err != nil {
		return truemeta.Stat{}, false
	}
	t, err := truemeta.Decode(string(buf[:n]))
	return t, err == nil
}

// trueOwner is the owner and mode of the entry whose status is st, as its
// record says when it has one.
func trueOwner(a attrs, st *unix.Stat_t) (uid, gid int, mode uint32) {
	if t, ok := readTruth(a); ok {
		return t.Uid, t.Gid, uint32(t.Mode)
	}
	return int(st.Uid), int(st.Gid), st.Mode & 0o7777
}

// emptyStandIn makes, in place of a device a confined unpack cannot make,
// an empty regular file that records what it stands for.
func (u *unpacker) emptyStandIn(dir int, base string, hdr *tar.Header) error {
	fd, err := unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// The record holds the owner whether the chown could give it or not.
	_, err = u.chown(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr)
	if err == nil {
		err = unix.Fchmod(fd, fileMode(hdr))
	}
	if err == nil {
		err = u.setXattrs(hdr, true, fdAttrs(fd).set)
	}
	if err == nil {
		err = u.recordTruth(fdAttrs(fd), hdr, true, hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	return setTimes(dir, base, hdr)
}
