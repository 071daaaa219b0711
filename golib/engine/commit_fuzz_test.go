package engine

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzApplyChange applies an arbitrary commit change to a config. A change
// it refuses must leave the config as it was; one it accepts must leave a
// config docker would accept: environment names non-empty and free of "="
// and spaces, label names non-empty, exposed ports "<port>[-<port>]/<proto>".
func FuzzApplyChange(f *testing.F) {
	for _, c := range []string{
		"ENV", "ENV A", "ENV A=", "ENV A=1", "ENV A 1 2", "ENV =x", "ENV  =", `ENV "A"="x y"`, "env a=b", "ENV A B=C",
		"LABEL", "LABEL a", "LABEL =x", `LABEL "a b"="c"`, "LABEL a=b=c",
		"CMD", `CMD ["a", "b"]`, `CMD ["a", 1]`, "CMD []", "CMD [", "ENTRYPOINT null", "ENTRYPOINT /bin/sh -c 'x'",
		"WORKDIR", "WORKDIR ../../..", "USER 0:0", "USER \x00",
		"EXPOSE", "EXPOSE 80", "EXPOSE 80/udp 443/tcp", "EXPOSE abc", "EXPOSE 70000", "EXPOSE 1-2/sctp", "EXPOSE /tcp", "EXPOSE 80/",
		"FROM scratch", "RUN rm -rf /", "ONBUILD ENV A=1", "", " ", "\t\n", "ENV\tA=1", "ENV A=\u00e9\u200b", "ENV \u212a=1",
		"ENV A=" + strings.Repeat("x", 1<<16), "EXPOSE " + strings.Repeat("1 ", 5000),
	} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, change string) {
		cfg := v1.Config{Env: []string{"PATH=/bin", "A=0"}, Labels: map[string]string{"keep": "1"}, ExposedPorts: map[string]struct{}{"22/tcp": {}}}
		before := cfg
		before.Env = append([]string{}, cfg.Env...)
		before.Labels = map[string]string{"keep": "1"}
		before.ExposedPorts = map[string]struct{}{"22/tcp": {}}

		if err := applyChange(&cfg, change); err != nil {
			if !reflect.DeepEqual(cfg, before) {
				t.Fatalf("refused %q but changed the config: %+v", change, cfg)
			}
			return
		}
		for _, kv := range cfg.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("%q set the environment entry %q", change, kv)
			}
		}
		for k := range cfg.Labels {
			if k == "" {
				t.Fatalf("%q set a label without a name", change)
			}
		}
		for p := range cfg.ExposedPorts {
			if !validExposedPort(p) {
				t.Fatalf("%q exposed %q", change, p)
			}
		}
	})
}

var portKey = regexp.MustCompile(`^([0-9]+)(?:-([0-9]+))?/(?:tcp|udp|sctp)$`)

func validExposedPort(p string) bool {
	m := portKey.FindStringSubmatch(p)
	if m == nil {
		return false
	}
	low, _ := strconv.Atoi(m[1])
	high := low
	if m[2] != "" {
		high, _ = strconv.Atoi(m[2])
	}
	return low >= 1 && high >= low && high <= 65535
}
