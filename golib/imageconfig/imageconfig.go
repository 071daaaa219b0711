// Package imageconfig reads image configs as Docker's daemon reads them.
// go-containerregistry's ConfigFile wants Cmd, Entrypoint and Shell as
// lists; Docker (moby's strslice.StrSlice) also takes a single string as a
// one-element list, and images built by older or hand-rolled tools carry
// that form, so refusing it would refuse images docker pulls and runs.
package imageconfig

import (
	"bytes"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// listFields are the container config fields Docker reads as a list or a
// single string.
var listFields = []string{"Cmd", "Entrypoint", "Shell"}

// Parse reads a raw image config. Only the parsed copy is changed: callers
// keep the raw bytes, whose digest is the image ID.
func Parse(raw []byte) (*v1.ConfigFile, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err == nil {
		return cfg, nil
	}
	normalised, changed := asLists(raw)
	if !changed {
		return nil, err
	}
	return v1.ParseConfigFile(bytes.NewReader(normalised))
}

// asLists rewrites a string Cmd, Entrypoint or Shell of the config as a
// list of that one string.
func asLists(raw []byte) ([]byte, bool) {
	var top, fields map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil || json.Unmarshal(top["config"], &fields) != nil || fields == nil {
		return nil, false
	}
	changed := false
	for _, f := range listFields {
		var one string
		if json.Unmarshal(fields[f], &one) == nil {
			fields[f], _ = json.Marshal([]string{one})
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	top["config"], _ = json.Marshal(fields)
	out, err := json.Marshal(top)
	return out, err == nil
}
