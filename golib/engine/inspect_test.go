package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/errcat"
)

func args(v ...any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func TestInspectValidation(t *testing.T) {
	cases := []struct {
		args   json.RawMessage
		reason string
	}{
		{args("invalid@image", map[string]any{"imageName": "invalid@image"}), "Image name contains invalid characters"},
		{args("a b", map[string]any{"imageName": "a b"}), "Image name contains invalid characters"},
		{args("Repo/x", map[string]any{"imageName": "Repo/x"}), "Image name must be lowercase"},
		{args("alpine"), "postData is required"},
		{args("alpine", []int{1}), "postData must be an object"},
		{args("alpine", map[string]any{"imageName": "alpine", "containerImageTransport": "ftp"}), `unknown transport "ftp"`},
		{args("alpine", map[string]any{"imageName": "alpine", "timeout": 0}), "postData.timeout must be a positive number of milliseconds"},
		{args("alpine", map[string]any{"imageName": "alpine", "credentials": map[string]any{"registryToken": 5}}), "postData.credentials must be"},
		{args("/x", map[string]any{"imageName": "/y", "containerImageTransport": "oci"}), "postData.imageName (/y) does not match imageName (/x)"},
		{args("alpine", map[string]any{"$k3unserializable": "cycle"}), "postData could not be serialised: cycle"},
	}
	for _, c := range cases {
		_, err := parseInspectRequest(c.args)
		if err == nil || err.Class != "InvalidInspectParameters" || !strings.HasPrefix(err.Reason, c.reason) {
			t.Errorf("%s: got %v, want reason %q", c.args, err, c.reason)
		}
	}
}

func TestRegistryHostMayHaveCapitals(t *testing.T) {
	if r := checkDockerName("Registry.Example.com:5000/team/app"); r != "" {
		t.Fatalf("rejected a valid name: %s", r)
	}
}

func TestReferenceCombinesNameAndTag(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	cases := []struct{ name, tag, want string }{
		{"alpine", "", "index.docker.io/library/alpine:latest"},
		{"alpine", "3.19", "index.docker.io/library/alpine:3.19"},
		{"alpine:3.19", "", "index.docker.io/library/alpine:3.19"},
		{"alpine:3.19", "3.19", "index.docker.io/library/alpine:3.19"},
		{"alpine", d, "index.docker.io/library/alpine@" + d},
		{"alpine@" + d, "", "index.docker.io/library/alpine@" + d},
		{"alpine:3.19@" + d, "", "index.docker.io/library/alpine@" + d},
		{"localhost:5000/team/app", "v1", "localhost:5000/team/app:v1"},
	}
	for _, c := range cases {
		ref, err := inspectRequest{imageName: c.name, imageTag: c.tag}.reference(nil)
		if err != nil || ref.Name() != c.want {
			t.Errorf("%s + %q = %v, %v; want %s", c.name, c.tag, ref, err, c.want)
		}
	}
	if _, err := (inspectRequest{imageName: "alpine:1", imageTag: "2"}).reference(nil); err == nil {
		t.Error("conflicting tags were accepted")
	}
}

func TestPanicsBecomeGenericFailure(t *testing.T) {
	operations["panics"] = op{run: func(*Engine, context.Context, *Request) (any, error) { panic("boom") }}
	defer delete(operations, "panics")
	_, err := New().Call(context.Background(), "panics", []byte(`{"args":[]}`), nil)
	cerr, ok := err.(*errcat.Error)
	if !ok || cerr.Class != errcat.Generic || !strings.Contains(cerr.Reason, "boom") {
		t.Fatalf("got %v", err)
	}
}
