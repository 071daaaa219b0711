package bundle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ResolveUser sets the config's process user from the user string the image
// or the caller gave ("name", "uid", "name:group", "uid:gid"), reading names
// from the container's own /etc/passwd and /etc/group in its mounted rootfs,
// as docker does when the container starts. An unknown name is an error:
// running as root instead would be a silent privilege escalation.
func ResolveUser(bundleDir, user string) error {
	if user == "" {
		return nil
	}
	rootfs := filepath.Join(bundleDir, "rootfs")
	name, group, hasGroup := strings.Cut(user, ":")
	uid, gid, err := lookupUser(rootfs, name)
	if err != nil {
		return err
	}
	if hasGroup {
		if gid, err = lookupGroup(rootfs, group); err != nil {
			return err
		}
	}
	path := filepath.Join(bundleDir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("config.json is corrupt: %w", err)
	}
	spec.Process.User = specs.User{UID: uid, GID: gid}
	out, err := json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// lookupUser reads a numeric uid as it is (its gid from passwd when listed,
// else the same number), or a name from /etc/passwd.
func lookupUser(rootfs, name string) (uint32, uint32, error) {
	id, numeric := strconv.ParseUint(name, 10, 32)
	var found [2]uint32
	ok := false
	err := scanColonFile(filepath.Join(rootfs, "etc", "passwd"), func(f []string) bool {
		if len(f) < 4 || (numeric == nil && f[2] != name) || (numeric != nil && f[0] != name) {
			return false
		}
		u, err1 := strconv.ParseUint(f[2], 10, 32)
		g, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return false
		}
		found, ok = [2]uint32{uint32(u), uint32(g)}, true
		return true
	})
	switch {
	case ok:
		return found[0], found[1], nil
	case numeric == nil:
		return uint32(id), uint32(id), nil
	case err != nil:
		return 0, 0, fmt.Errorf("unable to find user %s: %v", name, err)
	}
	return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
}

func lookupGroup(rootfs, name string) (uint32, error) {
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(id), nil
	}
	var gid uint32
	ok := false
	err := scanColonFile(filepath.Join(rootfs, "etc", "group"), func(f []string) bool {
		if len(f) < 3 || f[0] != name {
			return false
		}
		g, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return false
		}
		gid, ok = uint32(g), true
		return true
	})
	if ok {
		return gid, nil
	}
	if err != nil {
		return 0, fmt.Errorf("unable to find group %s: %v", name, err)
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", name)
}

// scanColonFile calls match for each line's fields until it returns true.
func scanColonFile(path string, match func([]string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") && match(strings.Split(line, ":")) {
			return nil
		}
	}
	return sc.Err()
}
