package engine

import (
	"reflect"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Changes docker commit --change refuses are refused, and the rest are read
// as a Dockerfile reads them.
func TestApplyChange(t *testing.T) {
	for _, change := range []string{"ENV A", "ENV =x", `ENV ""=x`, "LABEL =x", "EXPOSE abc", "EXPOSE 70000", "EXPOSE 0", "EXPOSE /tcp", "EXPOSE 9-8", "EXPOSE 80/http", "EXPOSE 80 abc"} {
		var cfg v1.Config
		if err := applyChange(&cfg, change); err == nil || !reflect.DeepEqual(cfg, v1.Config{}) {
			t.Errorf("%q: err %v, config %+v", change, err, cfg)
		}
	}
	// "EXPOSE 80/" is 80/tcp, as docker reads an empty protocol.
	var cfg v1.Config
	for _, change := range []string{"ENV A B=C", "EXPOSE 80/", "ENV D=1", `ENV "E"="x y"`, "EXPOSE 80 53/UDP 1000-1010/sctp"} {
		if err := applyChange(&cfg, change); err != nil {
			t.Fatalf("%q: %v", change, err)
		}
	}
	// docker commit --change exposes each port of a range (Docker 20.10: EXPOSE 8000-8002/udp gives 8000/udp, 8001/udp and 8002/udp).
	want := v1.Config{Env: []string{"A=B=C", "D=1", "E=x y"}, ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}}
	for p := 1000; p <= 1010; p++ {
		want.ExposedPorts[strconv.Itoa(p)+"/sctp"] = struct{}{}
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
}
