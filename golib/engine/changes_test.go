package engine

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Changes docker commit --change refuses are refused, and the rest are read
// as a Dockerfile reads them.
func TestApplyChange(t *testing.T) {
	for _, change := range []string{"ENV A", "ENV =x", `ENV ""=x`, "LABEL =x", "EXPOSE abc", "EXPOSE 70000", "EXPOSE 0", "EXPOSE 80/", "EXPOSE /tcp", "EXPOSE 9-8", "EXPOSE 80/http", "EXPOSE 80 abc"} {
		var cfg v1.Config
		if err := applyChange(&cfg, change); err == nil || !reflect.DeepEqual(cfg, v1.Config{}) {
			t.Errorf("%q: err %v, config %+v", change, err, cfg)
		}
	}
	var cfg v1.Config
	for _, change := range []string{"ENV A B=C", "ENV D=1", `ENV "E"="x y"`, "EXPOSE 80 53/UDP 1000-1010/sctp"} {
		if err := applyChange(&cfg, change); err != nil {
			t.Fatalf("%q: %v", change, err)
		}
	}
	want := v1.Config{Env: []string{"A=B=C", "D=1", "E=x y"}, ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "1000-1010/sctp": {}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
}
