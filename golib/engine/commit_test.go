package engine

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// applyChange reads a change as docker commit --change does: ENV takes
// several pairs, and VOLUME and ONBUILD are accepted.
func TestApplyChangeAsDocker(t *testing.T) {
	cfg := v1.Config{Env: []string{"PATH=/bin"}}
	for _, change := range []string{"ENV A=1 B=2", "VOLUME /data", "ONBUILD RUN true"} {
		if err := applyChange(&cfg, change); err != nil {
			t.Fatalf("%q: %v", change, err)
		}
	}
	want := v1.Config{Env: []string{"PATH=/bin", "A=1", "B=2"}, Volumes: map[string]struct{}{"/data": {}}, OnBuild: []string{"RUN true"}}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}
