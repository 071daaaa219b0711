// Package events owns the store's event journal: the record of every
// change to a container or an image, as `docker events` reports them. The
// journal is <root>/events.jsonl, one JSON event a line. Every process that
// changes the store appends to it (the engine after each change, k3-monitor
// when a container ends), each event in a single O_APPEND write, so lines
// from different processes never interleave. When it grows past MaxSize it
// is renamed to events.1.jsonl (the one before is dropped) and a new one
// begins; Follow reads across that rename.
package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// MaxSize is the size past which the journal is rotated.
var MaxSize int64 = 4 << 20

const (
	journalName = "events.jsonl"
	oldName     = "events.1.jsonl"
	lockName    = "events.lock"
)

// Event is one change, in docker's shape.
type Event struct {
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    Actor  `json:"Actor"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// Actor is what changed: a container's or an image's ID, with its name,
// image and, for a container that died, exitCode.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// New is an event of now.
func New(kind, action, id string, attributes map[string]string) Event {
	now := time.Now()
	if attributes == nil {
		attributes = map[string]string{}
	}
	return Event{Type: kind, Action: action, Actor: Actor{ID: id, Attributes: attributes}, Time: now.Unix(), TimeNano: now.UnixNano()}
}

// Journal is the path of the journal of the store at root.
func Journal(root string) string { return filepath.Join(root, journalName) }

// Append adds ev to the journal of the store at root. The lock is held
// only to decide on a rotation together: appends themselves need none.
func Append(root string, ev Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(root, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	f, err := os.OpenFile(Journal(root), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	info, statErr := f.Stat()
	f.Close()
	if err != nil {
		return err
	}
	if statErr == nil && info.Size() > MaxSize {
		return os.Rename(Journal(root), filepath.Join(root, oldName))
	}
	return nil
}
