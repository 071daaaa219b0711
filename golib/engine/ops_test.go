package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

// jsCall matches a call into the engine in the JS layer: run(ctx, 'op', …)
// in js/operation.js's callers, or native call('op', …).
var jsCall = regexp.MustCompile(`\b(?:run\([\w.]+,\s*|call\()'(\w+)'`)

// callsIn returns, for each operation name, the files under dir that call it.
func callsIn(t *testing.T, dir string) map[string][]string {
	t.Helper()
	calls := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".js" {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range jsCall.FindAllStringSubmatch(string(src), -1) {
			calls[m[1]] = append(calls[m[1]], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

// TestOperationsMatchTheCatalogue: every public operation has a catalogue
// entry, and every catalogued operation a handler.
func TestOperationsMatchTheCatalogue(t *testing.T) {
	raw, err := os.ReadFile("../errcat/catalogue.json")
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Operations map[string]json.RawMessage `json:"operations"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	for name, o := range operations {
		_, catalogued := cat.Operations[name]
		if o.internal == "" && !catalogued {
			t.Errorf("operation %s is public but has no entry in catalogue.json", name)
		}
		if o.internal != "" && catalogued {
			t.Errorf("operation %s is marked internal but catalogue.json lists it", name)
		}
	}
	for name := range cat.Operations {
		if _, ok := operations[name]; !ok {
			t.Errorf("catalogue.json lists %s, which the operation table does not", name)
		}
	}
}

// TestOperationsMatchTheJSLayer: every operation the JS layer calls is in
// the table, and every public operation is called by the JS layer (an
// internal one at least by a test), so none is dead.
func TestOperationsMatchTheJSLayer(t *testing.T) {
	lib := callsIn(t, "../../js")
	tests := callsIn(t, "../../test")
	if len(lib) < 20 {
		t.Fatalf("only %d operations called from js/: is the pattern still right?", len(lib))
	}
	var names []string
	for name := range lib {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := operations[name]; !ok {
			t.Errorf("%v call %s, which the operation table does not have", lib[name], name)
		}
	}
	for name, o := range operations {
		if len(lib[name]) > 0 || (o.internal != "" && len(tests[name]) > 0) {
			continue
		}
		t.Errorf("operation %s is called by nothing in js/", name)
	}
}

// dtsMethod matches a method declared in index.d.ts.
var dtsMethod = regexp.MustCompile(`(?m)^\s+(\w+)\(`)

// TestOperationsAreTyped: every public operation is a method index.d.ts
// declares under its own name.
func TestOperationsAreTyped(t *testing.T) {
	src, err := os.ReadFile("../../index.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, m := range dtsMethod.FindAllStringSubmatch(string(src), -1) {
		declared[m[1]] = true
	}
	for name, o := range operations {
		if o.internal == "" && !declared[name] {
			t.Errorf("operation %s is public but index.d.ts declares no method %s", name, name)
		}
	}
}
