package configchange

import (
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func base() v1.Config {
	return v1.Config{Env: []string{"PATH=/bin", "HOME=/root"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/w", Labels: map[string]string{"base": "yes"}}
}

// The expected configs are what `docker commit --change` gave on Docker
// 20.10 from the same base config (test/docker-parity.test.js compares
// with a live daemon).
func TestApplyAsDockerCommit(t *testing.T) {
	for _, tc := range []struct {
		changes []string
		want    func(*v1.Config)
	}{
		{[]string{"ENV A=1 B=2"}, func(c *v1.Config) { c.Env = append(c.Env, "A=1", "B=2") }},
		{[]string{"ENV A 1 B"}, func(c *v1.Config) { c.Env = append(c.Env, "A=1 B") }},
		{[]string{"ENV B=$PATH:/x C=${HOME}"}, func(c *v1.Config) { c.Env = append(c.Env, "B=/bin:/x", "C=/root") }},
		{[]string{"ENV A=1 \\", "B=2"}, func(c *v1.Config) { c.Env = append(c.Env, "A=1", "B=2") }},
		{[]string{`ENTRYPOINT ["x"]`}, func(c *v1.Config) { c.Entrypoint, c.Cmd = []string{"x"}, nil }},
		{[]string{`CMD ["y"]`, `ENTRYPOINT ["x"]`}, func(c *v1.Config) { c.Entrypoint, c.Cmd = []string{"x"}, []string{"y"} }},
		{[]string{"ENTRYPOINT x y"}, func(c *v1.Config) { c.Entrypoint, c.Cmd = []string{"/bin/sh", "-c", "x y"}, nil }},
		{[]string{"ENTRYPOINT []"}, func(c *v1.Config) {}},
		{[]string{"CMD []"}, func(c *v1.Config) {}},
		{[]string{"CMD"}, func(c *v1.Config) { c.Cmd = []string{"/bin/sh", "-c"} }},
		{[]string{"WORKDIR rel"}, func(c *v1.Config) { c.WorkingDir = "/w/rel" }},
		{[]string{"WORKDIR /a/../b/"}, func(c *v1.Config) { c.WorkingDir = "/a/../b/" }},
		{[]string{"EXPOSE 8000-8002/udp 9000", "EXPOSE 1.2.3.4:80:81"}, func(c *v1.Config) {
			c.ExposedPorts = map[string]struct{}{"8000/udp": {}, "8001/udp": {}, "8002/udp": {}, "9000/tcp": {}, "81/tcp": {}}
		}},
		{[]string{`LABEL "a b"=c d=e x=$HOME`}, func(c *v1.Config) { c.Labels = map[string]string{"base": "yes", "a b": "c", "d": "e", "x": "/root"} }},
		{[]string{`VOLUME ["/a","/b"]`, "VOLUME /c"}, func(c *v1.Config) { c.Volumes = map[string]struct{}{"/a": {}, "/b": {}, "/c": {}} }},
		{[]string{"USER $HOME"}, func(c *v1.Config) { c.User = "/root" }},
		{[]string{"ONBUILD run echo hi"}, func(c *v1.Config) { c.OnBuild = []string{"run echo hi"} }},
		{[]string{"HEALTHCHECK --interval=5s CMD true"}, func(c *v1.Config) {
			c.Healthcheck = &v1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: 5 * time.Second}
		}},
	} {
		got, want := base(), base()
		tc.want(&want)
		if err := Apply(&got, tc.changes); err != nil {
			t.Errorf("%q: %v", tc.changes, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.changes, got, want)
		}
	}
}

func TestApplyRefusesWhatDockerRefuses(t *testing.T) {
	for _, tc := range []struct{ change, reason string }{
		{"STOPSIGNAL SIGINT", "stopsignal is not a valid change command"},
		{"MAINTAINER x", "maintainer is not a valid change command"},
		{"RUN true", "run is not a valid change command"},
		{"ARG X", "arg is not a valid change command"},
		{"", "file with no instructions"},
		{"ENV", "ENV requires at least one argument"},
		{"EXPOSE 80/xyz", "invalid proto: xyz"},
		{"EXPOSE 70000", "invalid containerPort: 70000"},
		{"ONBUILD ONBUILD x", "Chaining ONBUILD"},
		{"# check=skip=all\nENV A=1\nRUN x", "run is not a valid change command"},
	} {
		cfg := base()
		err := Apply(&cfg, []string{tc.change})
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%q: got %v, want %q", tc.change, err, tc.reason)
		}
		if !reflect.DeepEqual(cfg, base()) {
			t.Errorf("%q changed the config though it failed", tc.change)
		}
	}
}

func TestCheckCommentDoesNotPanic(t *testing.T) {
	cfg := base()
	if err := Apply(&cfg, []string{"# check=skip=all", "ENV A=1"}); err != nil {
		t.Fatal(err)
	}
}
