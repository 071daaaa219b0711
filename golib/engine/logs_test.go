package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRecords(t *testing.T, f *os.File, from, to int, stream string) {
	t.Helper()
	for i := from; i <= to; i++ {
		data, _ := json.Marshal(LogLine{Stream: stream, Time: "2026-01-01T00:00:00Z", Log: fmt.Sprintf("%d %s\n", i, strings.Repeat("p", i%300))})
		if _, err := f.Write(append(data, '\n')); err != nil {
			t.Fatal(err)
		}
	}
}

func firstNumbers(lines []LogLine) []string {
	out := []string{}
	for _, l := range lines {
		out = append(out, strings.Fields(l.Log)[0])
	}
	return out
}

// tail crosses the 64 KiB blocks it reads backwards, counts only the wanted
// stream, and skips a record too long to hold.
func TestReadLogTailAcrossBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	writeRecords(t, f, 1, 2000, "stdout")
	f.WriteString(`{"stream":"stdout","time":"2026-01-01T00:00:00Z","log":"` + strings.Repeat("z", maxLogRecord+10) + `"}` + "\n")
	writeRecords(t, f, 2001, 2002, "stdout")
	writeRecords(t, f, 1, 3, "stderr")
	f.Close()

	stdoutOnly := logOptions{tail: 4, want: map[string]bool{"stdout": true}}
	lines, err := readLog(path, stdoutOnly)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(firstNumbers(lines), ","), "1999,2000,2001,2002"; got != want {
		t.Fatalf("tail 4 of stdout: got %s, want %s", got, want)
	}
	all, err := readLog(path, logOptions{tail: -1, want: map[string]bool{"stdout": true, "stderr": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2005 {
		t.Fatalf("read %d entries, want 2005 (the oversized one skipped)", len(all))
	}
	more, err := readLog(path, logOptions{tail: 5000, want: map[string]bool{"stdout": true}})
	if err != nil || len(more) != 2002 {
		t.Fatalf("tail beyond the start: %d entries, %v", len(more), err)
	}
}

// A follower that reads up to a record still being written gets it whole
// once its end arrives.
func TestLogReaderWaitsForTheEndOfARecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString(`{"stream":"stdout","time":"2026-01-01T00:00:00Z","log":"one\n"}` + "\n" + `{"stream":"stdout","ti`)
	f, r, err := openLog(path, logOptions{tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := logOptions{want: map[string]bool{"stdout": true}}
	if rec, _ := r.next(); rec == nil {
		t.Fatal("the first record was not read")
	} else if l, ok := opts.decode(rec); !ok || l.Log != "one" {
		t.Fatalf("first record: %+v", l)
	}
	if rec, err := r.next(); rec != nil || err != nil {
		t.Fatalf("half a record came back: %q %v", rec, err)
	}
	w.WriteString(`me":"2026-01-01T00:00:00Z","log":"two\n"}` + "\n")
	rec, err := r.next()
	if l, ok := opts.decode(rec); err != nil || !ok || l.Log != "two" {
		t.Fatalf("completed record: %q %v", rec, err)
	}
}
