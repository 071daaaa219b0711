package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/store"
)

// LogLine is one line a container wrote. A line longer than 16 KiB arrives
// as several LogLines, as docker's json-file driver splits it (the monitor
// does the splitting).
type LogLine struct {
	Stream string `json:"stream"`
	Time   string `json:"time"`
	Log    string `json:"log"`
}

// maxLogRecord bounds what one record of container.log may hold in memory.
// The monitor writes pieces of at most 16 KiB (at most ~100 KiB once JSON
// escaped), so only a damaged file has longer ones; they are skipped.
const maxLogRecord = 1 << 20

// followPoll is how often a followed log is looked at for new records.
const followPoll = 100 * time.Millisecond

// followBatch bounds one batch of a followed log, in entries and in bytes.
const followBatch, followBatchBytes = 256, 1 << 20

// logOptions are containerLogs' options, read.
type logOptions struct {
	tail   int // -1: all
	since  time.Time
	want   map[string]bool
	follow bool
}

// decode turns one record into the LogLine it holds, if the caller wants it.
func (o logOptions) decode(record []byte) (LogLine, bool) {
	var l LogLine
	if json.Unmarshal(record, &l) != nil || !o.want[l.Stream] {
		return l, false
	}
	if !o.since.IsZero() {
		if t, err := time.Parse(time.RFC3339Nano, l.Time); err == nil && t.Before(o.since) {
			return l, false
		}
	}
	l.Log = strings.TrimSuffix(l.Log, "\n")
	return l, true
}

// containerLogs(id, {tail, since, stdout, stderr, follow}) reads what the
// container wrote, oldest first, one record at a time: the log is never held
// whole, and tail reads back from the end only as far as it needs. With
// follow, the entries are emitted in batches as they are written (see
// followLog) and the call resolves once the container has exited and its
// log is drained.
func (e *Engine) containerLogs(ctx context.Context, call *Request) (any, error) {
	const op = "containerLogs"
	list, st, c, err := e.containerCall(op, "InvalidContainerLogsParameters", call, 2)
	if err != nil {
		return nil, err
	}
	invalid := func(reason string) error {
		return errcat.New(op, "InvalidContainerLogsParameters", reason, nil).With("containerId", c.ID)
	}
	opts := logOptions{tail: -1, want: map[string]bool{"stdout": true, "stderr": true}}
	if !isNull(list[1]) {
		p, err := objectParam(list[1], "options")
		if err != nil {
			return nil, invalid(err.Error())
		}
		if raw := p.raw["tail"]; !isNull(raw) {
			if json.Unmarshal(raw, &opts.tail) != nil || opts.tail < 0 {
				return nil, invalid("options.tail must be a whole number, 0 or more")
			}
		}
		if raw := p.raw["since"]; !isNull(raw) {
			if opts.since, err = parseSince(raw); err != nil {
				return nil, invalid("options.since must be an ISO 8601 time or epoch seconds")
			}
		}
		for _, stream := range []string{"stdout", "stderr"} {
			if opts.want[stream], err = p.boolean(stream, true); err != nil {
				return nil, invalid(err.Error())
			}
		}
		if opts.follow, err = p.boolean("follow", false); err != nil {
			return nil, invalid(err.Error())
		}
	}
	if _, err := os.Stat(st.BundleDir(c.ID)); err != nil {
		return nil, errcat.New(op, "ContainerBundleNotFound", "Bundle directory not found", err).With("containerId", c.ID).With("bundleHashId", c.ID)
	}
	path := filepath.Join(st.BundleDir(c.ID), "container.log")
	if opts.follow {
		return followLog(ctx, call, st, c, path, opts)
	}
	lines, err := readLog(path, opts)
	if err != nil {
		return nil, errcat.New(op, errcat.Generic, err.Error(), err).With("containerId", c.ID)
	}
	return lines, nil
}

func parseSince(raw json.RawMessage) (time.Time, error) {
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, err
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// openLog opens the log where opts.tail says reading starts; a log not
// there yet (the container never ran) reads as empty.
func openLog(path string, opts logOptions) (*os.File, *logReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	start := int64(0)
	if opts.tail >= 0 {
		info, err := f.Stat()
		if err == nil {
			start, err = tailStart(f, info.Size(), opts.tail, func(record []byte) bool {
				_, ok := opts.decode(record)
				return ok
			})
		}
		if err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, &logReader{br: bufio.NewReaderSize(f, 64<<10)}, nil
}

// readLog reads what is in the log now.
func readLog(path string, opts logOptions) ([]LogLine, error) {
	f, r, err := openLog(path, opts)
	if errors.Is(err, os.ErrNotExist) {
		return []LogLine{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines := []LogLine{}
	for {
		record, err := r.next()
		if record == nil || err != nil {
			return lines, err
		}
		if l, ok := opts.decode(record); ok {
			lines = append(lines, l)
		}
	}
}

// logAcks holds, by token, the channel each followed log waits on between
// batches.
var logAcks sync.Map

// followLog emits the log's entries as they are written, in batches of
// {token, entries}, until the container is no longer running and the log is
// drained. After each batch it waits for containerLogsAck(token), which the
// JS side sends once its stream has room: so at most one batch is in flight
// and nothing piles up, however slow the reader (the file is the buffer).
func followLog(ctx context.Context, call *Request, st *store.Store, c store.Container, path string, opts logOptions) (any, error) {
	const op = "containerLogs"
	failed := func(err error) error {
		return errcat.New(op, errcat.Generic, err.Error(), err).With("containerId", c.ID)
	}
	token, acks := newFollowToken()
	defer logAcks.Delete(token)
	var f *os.File
	var r *logReader
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		// The state is read before the log is drained: once the container
		// is seen exited, all it wrote is already in the file.
		ended := !lifecycle.Alive(c)
		var err error
		if f == nil {
			if f, r, err = openLog(path, opts); errors.Is(err, os.ErrNotExist) {
				f, err = nil, nil
			} else if err != nil {
				return nil, failed(err)
			}
		}
		var batch []LogLine
		for size := 0; r != nil && len(batch) < followBatch && size < followBatchBytes; {
			record, err := r.next()
			if err != nil {
				return nil, failed(err)
			}
			if record == nil {
				break
			}
			if l, ok := opts.decode(record); ok {
				batch = append(batch, l)
				size += len(l.Log)
			}
		}
		if len(batch) > 0 {
			call.Emit(map[string]any{"token": token, "entries": batch})
			select {
			case <-acks:
				continue
			case <-ctx.Done():
				return nil, failed(ctx.Err())
			}
		}
		if ended {
			return map[string]any{"Id": c.ID}, nil
		}
		select {
		case <-ctx.Done():
			return nil, failed(ctx.Err())
		case <-time.After(followPoll):
		}
		found, err := st.FindContainers(c.ID, false)
		if err != nil || len(found) != 1 {
			return map[string]any{"Id": c.ID}, nil // removed: nothing more will be written
		}
		if c, err = lifecycle.Reconcile(st, found[0]); err != nil {
			return nil, failed(err)
		}
	}
}

func newFollowToken() (string, chan struct{}) {
	b := make([]byte, 16)
	rand.Read(b)
	token, acks := hex.EncodeToString(b), make(chan struct{}, 1)
	logAcks.Store(token, acks)
	return token, acks
}

// containerLogsAck([token]) lets a followed log send its next batch. A token
// no longer followed (the follow ended) is ignored.
func (e *Engine) containerLogsAck(_ context.Context, call *Request) (any, error) {
	var args []string
	if json.Unmarshal(call.Args, &args) == nil && len(args) == 1 {
		if acks, ok := logAcks.Load(args[0]); ok {
			select {
			case acks.(chan struct{}) <- struct{}{}:
			default:
			}
		}
	}
	return nil, nil
}

// logReader reads container.log one record at a time. A record still being
// written (no newline yet) is kept until its end arrives, so a follower can
// read past the end of the file and come back.
type logReader struct {
	br       *bufio.Reader
	pending  []byte
	skipping bool // in a record longer than maxLogRecord
}

// next returns the next complete record, or nil at the end of what is
// written so far.
func (r *logReader) next() ([]byte, error) {
	for {
		chunk, err := r.br.ReadSlice('\n')
		complete := err == nil
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return nil, err
		}
		if !r.skipping {
			if len(r.pending)+len(chunk) > maxLogRecord {
				r.skipping, r.pending = true, nil
			} else {
				r.pending = append(r.pending, chunk...)
			}
		}
		if complete {
			record := r.pending
			r.pending = nil
			if r.skipping {
				r.skipping = false
				continue
			}
			return record, nil
		}
		if err == io.EOF {
			return nil, nil
		}
	}
}

// tailStart returns the offset of the n-th record from end (of those keep
// accepts) by reading the file backwards a block at a time; 0 when there
// are fewer.
func tailStart(f *os.File, end int64, n int, keep func([]byte) bool) (int64, error) {
	if n == 0 {
		return end, nil
	}
	const blockSize = 64 << 10
	block := make([]byte, blockSize)
	var partial []byte // the end of a record whose start lies before pos
	oversize := false  // that record is longer than maxLogRecord
	found := 0
	take := func(record []byte) bool {
		if !oversize && keep(record) {
			found++
		}
		oversize = false
		return found == n
	}
	for pos := end; pos > 0; {
		k := int64(blockSize)
		if pos < k {
			k = pos
		}
		pos -= k
		if _, err := f.ReadAt(block[:k], pos); err != nil && err != io.EOF {
			return 0, err
		}
		chunk := block[:k]
		for i := bytes.LastIndexByte(chunk, '\n'); i >= 0; i = bytes.LastIndexByte(chunk, '\n') {
			if len(chunk)-i-1+len(partial) > maxLogRecord {
				oversize = true
			}
			record := []byte{}
			if !oversize {
				record = append(append(record, chunk[i+1:]...), partial...)
			}
			partial = nil
			if take(record) {
				return pos + int64(i) + 1, nil
			}
			chunk = chunk[:i]
		}
		if len(chunk)+len(partial) > maxLogRecord {
			partial, oversize = nil, true
		} else if !oversize {
			partial = append(append([]byte{}, chunk...), partial...)
		}
	}
	take(partial)
	return 0, nil
}
