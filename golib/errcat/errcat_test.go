package errcat

import "testing"

func TestEveryOperationHasGenericFailure(t *testing.T) {
	for op, classes := range loaded().Operations {
		if _, ok := classes[Generic]; !ok {
			t.Errorf("operation %s has no %s", op, Generic)
		}
		for name, e := range classes {
			if e.StatusCode == 0 || e.Type == "" || e.Message == "" || len(e.Hint) == 0 {
				t.Errorf("%s.%s is incomplete: %+v", op, name, e)
			}
		}
	}
}

func TestWireCarriesDocumentedDetails(t *testing.T) {
	e := New("exportContainer", "InsufficientDiskSpaceForExport", "No space left on device (ENOSPC)", nil).
		With("containerId", "c1").With("requiredSpace", "5 GB")
	w := e.ToWire()
	want := map[string]any{"type": "FILE_SYSTEM_ERROR", "statusCode": 507, "error": "No space left on device (ENOSPC)", "containerId": "c1", "requiredSpace": "5 GB"}
	for k, v := range want {
		if w.Details[k] != v {
			t.Errorf("details[%s] = %v, want %v", k, w.Details[k], v)
		}
	}
	if w.Class != "InsufficientDiskSpaceForExport" || w.Op != "exportContainer" {
		t.Errorf("wire = %+v", w)
	}
}

func TestCommonClassesServeEveryOperation(t *testing.T) {
	if _, ok := Lookup("inspectAnImage", "AbortError"); !ok {
		t.Fatal("AbortError is not available to inspectAnImage")
	}
	if e, _ := Lookup("inspectAnImage", Generic); e.Message != "Generic failure during image inspection." {
		t.Fatalf("operation-specific message lost: %q", e.Message)
	}
}

func TestUnknownClassPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a class the catalogue does not have")
		}
	}()
	New("inspectAnImage", "NoSuchClass", "x", nil)
}
