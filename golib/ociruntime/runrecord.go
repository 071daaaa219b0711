package ociruntime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// RunRecord is what a monitor writes of its run in the bundle's run.json:
// once when it begins, and again once the container process exists. The
// store records a run only after the monitor has reported it started, so a
// starter killed in between leaves a run the store does not know of; this
// file lets the next process find it and record it (package lifecycle).
type RunRecord struct {
	MonitorPid int    `json:"monitorPid"`
	BootID     string `json:"bootId"`
	Runtime    string `json:"runtime"` // the runtime's executable
	Started    bool   `json:"started"` // the container process exists (or existed)
	Pid        int    `json:"pid"`     // its init; 0 when it ended before it was seen
	StartedAt  string `json:"startedAt"`
}

const runRecordName = "run.json"

// WriteRun replaces the bundle's run record.
func WriteRun(bundle string, r RunRecord) error {
	return WriteJSON(bundle, runRecordName, r)
}

// ReadRun returns the bundle's run record, or nil when there is none.
func ReadRun(bundle string) (*RunRecord, error) {
	return readJSON[RunRecord](bundle, runRecordName)
}

// readJSON reads the bundle's file name as JSON, or nil when there is none.
// A file that is not JSON counts as none: WriteJSON replaces it whole, so
// only a host crash before its data reached the disk leaves one torn (the
// run it would name was of an earlier boot), and an error would make every
// read of the container fail, and with it every listing of the store.
func readJSON[T any](bundle, name string) (*T, error) {
	data, err := os.ReadFile(filepath.Join(bundle, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v T
	if json.Unmarshal(data, &v) != nil {
		return nil, nil
	}
	return &v, nil
}

// ForgetRun deletes the run record of a start that was undone or never
// began, so that no one takes it for a run to record.
func ForgetRun(bundle string) {
	os.Remove(filepath.Join(bundle, runRecordName))
}

// WriteJSON replaces the bundle's file name with v as JSON in one rename,
// so readers never see half of it.
func WriteJSON(bundle, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, name))
}

// Running reports whether the runtime has container id with a live
// process (created, running or paused): for a run whose monitor is gone,
// whose record the runtime keeps until it is deleted.
func Running(runtime Runtime, id string) bool {
	out, err := runtime.forgetting().command("state", id).Output()
	if err != nil {
		return false
	}
	var state struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &state) != nil {
		return false
	}
	return strings.Contains(" created running paused ", " "+state.Status+" ")
}
