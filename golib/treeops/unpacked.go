package treeops

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/rootfs"
	"github.com/k3-core/k3-core/golib/userns"
)

// Each unpacked tree (a layer's directory, a container's writable layer)
// records on its top directory how its files were written: "root", or
// "userns" with the ID maps of the namespace, whose files then belong to
// that user's subordinate IDs. A tree written one way and read another would
// show wrong owners, or fail half way; it is converted when it can be (a
// layer, by root, from its blob) and otherwise refused.
const wayXattr = "user.k3.unpacked"

// Way is how this process writes trees.
func Way() string {
	if helper() == "" {
		if os.Geteuid() == 0 {
			return "root"
		}
		return fmt.Sprintf("user %d", os.Geteuid())
	}
	h := userns.Detect()
	return fmt.Sprintf("userns uid %s gid %s", mapText(h.UIDMap()), mapText(h.GIDMap()))
}

func mapText(m []userns.Range) string {
	var parts []string
	for _, r := range m {
		parts = append(parts, fmt.Sprintf("%d:%d:%d", r.Inside, r.Host, r.Count))
	}
	return strings.Join(parts, ",")
}

// Record notes on the top directory dir that this process wrote its tree.
func Record(dir string) error { return record(dir, Way()) }

func record(dir, way string) error {
	if err := unix.Setxattr(dir, wayXattr, []byte(way), 0); err != nil && err != unix.ENOTSUP {
		return fmt.Errorf("recording how %s was unpacked: %w", dir, err)
	}
	return nil
}

// Recorded is how the tree at dir was written. A tree from before the
// record was kept has none: root's are owned by root, and then "root".
func Recorded(dir string) (string, error) {
	buf := make([]byte, 1024)
	n, err := unix.Getxattr(dir, wayXattr, buf)
	switch {
	case err == nil:
		return string(buf[:n]), nil
	case err == unix.ENODATA || err == unix.ENOTSUP:
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return "", err
		}
		if st.Uid == 0 {
			return "root", nil
		}
		return fmt.Sprintf("user %d", st.Uid), nil
	}
	return "", err
}

// ClassOtherwise is the catalogue class of a tree written another way.
const ClassOtherwise = "UnpackedOtherwise"

// OtherwiseError is a tree written another way than this process writes.
type OtherwiseError struct {
	Dir, Recorded, Way string
}

func (e *OtherwiseError) Error() string {
	return fmt.Sprintf("%s was unpacked as %q, and this process works as %q: its files' owners would be wrong", e.Dir, e.Recorded, e.Way)
}

// ForOp is the error as operation op reports it.
func (e *OtherwiseError) ForOp(op string) *errcat.Error {
	fix := "use this store as the user who made it, or a store of your own (pull the image again there)"
	if os.Geteuid() == 0 {
		fix = "remove the container and create it again from its image"
	}
	return errcat.New(op, ClassOtherwise, e.Error(), e).With("fix", fix)
}

// ErrOtherwise is what every OtherwiseError matches with errors.Is.
var ErrOtherwise = errors.New("unpacked another way")

func (e *OtherwiseError) Is(target error) bool { return target == ErrOtherwise }

// ReadShifts is how this process reads the trees dirs (a stack) as they
// were written: root reads any, turning the owners of one a user namespace
// wrote back into the container's by the mapping it recorded; an ordinary
// user reads only trees written its own way.
func ReadShifts(dirs []string) ([]rootfs.Shift, error) {
	shifts := make([]rootfs.Shift, len(dirs))
	for i, dir := range dirs {
		if helper() != "" || os.Geteuid() != 0 {
			if err := Check(dir); err != nil {
				return nil, err
			}
			continue
		}
		recorded, err := Recorded(dir)
		if err != nil {
			return nil, err
		}
		if recorded == "root" {
			continue
		}
		uids, gids, ok := parseWay(recorded)
		if !ok {
			return nil, &OtherwiseError{Dir: dir, Recorded: recorded, Way: Way()}
		}
		shifts[i] = func(uid, gid uint32) (uint32, uint32) { return inside(uids, uid), inside(gids, gid) }
	}
	return shifts, nil
}

// parseWay reads the maps of a "userns uid M gid M" record.
func parseWay(way string) (uids, gids []userns.Range, ok bool) {
	f := strings.Fields(way)
	if len(f) != 5 || f[0] != "userns" || f[1] != "uid" || f[3] != "gid" {
		return nil, nil, false
	}
	uids, ok1 := parseMap(f[2])
	gids, ok2 := parseMap(f[4])
	return uids, gids, ok1 && ok2
}

func parseMap(text string) ([]userns.Range, bool) {
	var m []userns.Range
	for _, part := range strings.Split(text, ",") {
		var r userns.Range
		if n, err := fmt.Sscanf(part, "%d:%d:%d", &r.Inside, &r.Host, &r.Count); n != 3 || err != nil {
			return nil, false
		}
		m = append(m, r)
	}
	return m, true
}

// inside is the namespace's ID for host ID id; one the map does not hold
// (which a file written in the namespace cannot have) stays as it is.
func inside(m []userns.Range, id uint32) uint32 {
	for _, r := range m {
		if int64(id) >= r.Host && int64(id) < r.Host+r.Count {
			return uint32(r.Inside + int64(id) - r.Host)
		}
	}
	return id
}

// Check refuses the tree at dir when this process writes trees another way.
func Check(dir string) error {
	recorded, err := Recorded(dir)
	if err != nil {
		return err
	}
	if way := Way(); recorded != way {
		return &OtherwiseError{Dir: dir, Recorded: recorded, Way: way}
	}
	return nil
}
