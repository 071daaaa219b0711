package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"
)

// PollInterval is how often Follow looks for new events.
var PollInterval = 100 * time.Millisecond

// UntilGrace is how long after until Follow still reads: an event is
// stamped a moment before its line is written.
var UntilGrace = 200 * time.Millisecond

// Follow calls emit with each event of the journal at root stamped at or
// after since, oldest first, as they are appended, until ctx ends or the
// clock passes until (the zero time: never). Lines that are not events
// are passed over: a journal is never a reason to fail.
func Follow(ctx context.Context, root string, since, until time.Time, emit func(Event)) error {
	r := &reader{path: Journal(root), since: since.UnixNano(), emit: emit}
	if !until.IsZero() {
		r.until = until.UnixNano()
	}
	r.reopen()
	// The events before the last rotation, unless the rotation came after the open above.
	if old, err := os.Open(filepath.Join(root, oldName)); err == nil {
		if !r.same(old) {
			(&reader{since: r.since, until: r.until, emit: emit, file: old}).drain()
		}
		old.Close()
	}
	defer r.close()
	for {
		r.drain()
		if r.rotated() {
			r.reopen()
			continue
		}
		if r.until != 0 && time.Now().UnixNano() > r.until+int64(UntilGrace) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(PollInterval):
		}
	}
}

// reader reads one journal file from where it last stopped.
type reader struct {
	path         string
	since, until int64
	emit         func(Event)
	file         *os.File
	partial      []byte // a line not yet ended by its newline
}

func (r *reader) reopen() {
	r.close()
	r.file, _ = os.Open(r.path) // none yet: the next look finds it
}

func (r *reader) close() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
	r.partial = nil
}

func (r *reader) same(f *os.File) bool {
	if r.file == nil {
		return false
	}
	a, errA := r.file.Stat()
	b, errB := f.Stat()
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// rotated is true when the path names a file other than the one open.
func (r *reader) rotated() bool {
	info, err := os.Stat(r.path)
	if err != nil {
		return false
	}
	if r.file == nil {
		return true
	}
	open, err := r.file.Stat()
	return err == nil && !os.SameFile(open, info)
}

// drain emits every whole line the file has now.
func (r *reader) drain() {
	if r.file == nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.file.Read(buf)
		r.partial = append(r.partial, buf[:n]...)
		for {
			i := bytes.IndexByte(r.partial, '\n')
			if i < 0 {
				break
			}
			r.line(r.partial[:i])
			r.partial = r.partial[i+1:]
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				r.close()
			}
			return
		}
	}
}

func (r *reader) line(data []byte) {
	var ev Event
	if json.Unmarshal(data, &ev) != nil || ev.Type == "" {
		return
	}
	if ev.TimeNano < r.since || (r.until != 0 && ev.TimeNano > r.until) {
		return
	}
	r.emit(ev)
}
