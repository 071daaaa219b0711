// Package configchange applies the Dockerfile instructions `docker commit
// --change` takes to an image config, with the results docker gives: the
// changes are read by BuildKit's Dockerfile parser, only the instructions
// docker commit accepts are allowed, words are expanded with the config's
// own environment, and what a change empties is filled back from the
// original config as the daemon does after a commit.
package configchange

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// allowed are the instructions docker commit accepts, lower case as the
// parser names them.
var allowed = []string{"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user", "volume", "workdir"}

// defaultShell runs the shell form of CMD and ENTRYPOINT when the config
// names no shell of its own.
var defaultShell = []string{"/bin/sh", "-c"}

// Apply applies changes to cfg in order. As docker does, the changes are
// one Dockerfile, one line each, so a trailing backslash continues an
// instruction on the next change. cfg is left untouched on error.
func Apply(cfg *v1.Config, changes []string) error {
	if len(changes) == 0 {
		return nil
	}
	parsed, err := parser.Parse(strings.NewReader(strings.Join(changes, "\n")))
	if err != nil {
		return err
	}
	for _, node := range parsed.AST.Children {
		if instruction := strings.ToLower(node.Value); !isAllowed(instruction) {
			return fmt.Errorf("%s is not a valid change command (docker commit accepts %s)", instruction, strings.ToUpper(strings.Join(allowed, ", ")))
		}
	}
	// A linter of its own: the parser dereferences it for `# check=` comments.
	lint := linter.New(&linter.Config{})
	var commands []instructions.Command
	for _, node := range parsed.AST.Children {
		cmd, err := instructions.ParseInstructionWithLinter(node, lint)
		if err != nil {
			return err
		}
		c, ok := cmd.(instructions.Command)
		if !ok {
			return fmt.Errorf("%s is not a valid change command", node.Value)
		}
		commands = append(commands, c)
	}
	out := clone(*cfg)
	s := state{cfg: &out, lex: shell.NewLex(parsed.EscapeToken)}
	for _, c := range commands {
		if err := s.apply(c); err != nil {
			return err
		}
	}
	fillFrom(&out, *cfg)
	*cfg = out
	return nil
}

func isAllowed(instruction string) bool {
	for _, a := range allowed {
		if a == instruction {
			return true
		}
	}
	return false
}

// state is the config being changed, and whether a CMD was given, which
// decides whether a later ENTRYPOINT clears the command.
type state struct {
	cfg    *v1.Config
	lex    *shell.Lex
	cmdSet bool
}

func (s *state) apply(c instructions.Command) error {
	env := shell.EnvsFromSlice(s.cfg.Env)
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		err := ex.Expand(func(word string) (string, error) {
			expanded, _, err := s.lex.ProcessWord(word, env)
			return expanded, err
		})
		if err != nil {
			return err
		}
	}
	cfg := s.cfg
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			// A name that expands to nothing, or holds "=" or blanks, would
			// make an environment entry no process can read back.
			if kv.Key == "" || strings.ContainsAny(kv.Key, "= \t\n") {
				return fmt.Errorf("ENV name %q is empty or holds \"=\" or blanks", kv.Key)
			}
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			if kv.Key == "" {
				return errors.New("LABEL names can not be blank")
			}
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.CmdCommand:
		cfg.Cmd, cfg.ArgsEscaped = s.commandLine(c.ShellDependantCmdLine), false
		if len(c.CmdLine) > 0 {
			s.cmdSet = true
		}
	case *instructions.EntrypointCommand:
		cfg.Entrypoint, cfg.ArgsEscaped = s.commandLine(c.ShellDependantCmdLine), false
		if !s.cmdSet {
			cfg.Cmd = nil // an entrypoint does not keep the old image's arguments
		}
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	case *instructions.ExposeCommand:
		return s.expose(c.Ports, env)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		if c.Path == "" {
			return errors.New("WORKDIR needs a path")
		}
		if path.IsAbs(c.Path) {
			cfg.WorkingDir = c.Path // kept as written, as docker keeps it
		} else {
			cfg.WorkingDir = path.Join("/", cfg.WorkingDir, c.Path)
		}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	default:
		return fmt.Errorf("%s is not a valid change command", c.Name())
	}
	return nil
}

// commandLine is the exec form as written, or the shell form run by the
// config's shell.
func (s *state) commandLine(line instructions.ShellDependantCmdLine) []string {
	if !line.PrependShell || line.CmdLine == nil {
		return line.CmdLine
	}
	sh := s.cfg.Shell
	if len(sh) == 0 {
		sh = defaultShell
	}
	return append(append([]string{}, sh...), line.CmdLine...)
}

// expose adds ports as docker's EXPOSE does: each word may expand to
// several, a port may be a range and may carry a protocol, and a
// host:container mapping exposes its container port.
func (s *state) expose(words []string, env shell.EnvGetter) error {
	var specs []string
	for _, w := range words {
		expanded, err := s.lex.ProcessWords(w, env)
		if err != nil {
			return err
		}
		specs = append(specs, expanded...)
	}
	ports := map[string]struct{}{}
	for _, spec := range specs {
		if err := containerPorts(spec, ports); err != nil {
			return err
		}
	}
	if s.cfg.ExposedPorts == nil {
		s.cfg.ExposedPorts = map[string]struct{}{}
	}
	for p := range ports {
		s.cfg.ExposedPorts[p] = struct{}{}
	}
	return nil
}

// containerPorts adds the container ports of one [[ip:]host:]port[-end][/proto]
// spec to ports, as "port/proto".
func containerPorts(spec string, ports map[string]struct{}) error {
	parts := strings.Split(spec, ":")
	portRange, proto, _ := strings.Cut(parts[len(parts)-1], "/")
	if portRange == "" {
		return fmt.Errorf("no port specified: %s<empty>", spec)
	}
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return fmt.Errorf("invalid proto: %s", proto)
	}
	if len(parts) > 1 {
		if _, _, err := parseRange(parts[len(parts)-2]); err != nil && parts[len(parts)-2] != "" {
			return fmt.Errorf("invalid hostPort: %s", parts[len(parts)-2])
		}
	}
	start, end, err := parseRange(portRange)
	if err != nil {
		return fmt.Errorf("invalid containerPort: %s", portRange)
	}
	for p := start; p <= end; p++ {
		ports[strconv.FormatUint(p, 10)+"/"+proto] = struct{}{}
	}
	return nil
}

func parseRange(s string) (uint64, uint64, error) {
	first, last, isRange := strings.Cut(s, "-")
	start, err := strconv.ParseUint(first, 10, 16)
	if err == nil && start == 0 {
		err = errors.New("port 0")
	}
	if err != nil || !isRange {
		return start, start, err
	}
	end, err := strconv.ParseUint(last, 10, 16)
	if err == nil && end < start {
		err = fmt.Errorf("invalid range %s", s)
	}
	return start, end, err
}

func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// clone copies the parts of cfg a change may modify in place.
func clone(cfg v1.Config) v1.Config {
	cfg.Env = append([]string(nil), cfg.Env...)
	cfg.OnBuild = append([]string(nil), cfg.OnBuild...)
	cfg.Labels = cloneMap(cfg.Labels)
	cfg.Volumes = cloneMap(cfg.Volumes)
	cfg.ExposedPorts = cloneMap(cfg.ExposedPorts)
	if cfg.Healthcheck != nil {
		h := *cfg.Healthcheck
		cfg.Healthcheck = &h
	}
	return cfg
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fillFrom gives the changed config what the original had where the
// changes left it empty, as the daemon merges a committed config with the
// container's: an emptied command comes back unless an entrypoint was set,
// and a new healthcheck keeps the old one's settings it does not give.
func fillFrom(cfg *v1.Config, orig v1.Config) {
	if cfg.User == "" {
		cfg.User = orig.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = orig.WorkingDir
	}
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = orig.Cmd
			cfg.ArgsEscaped = orig.ArgsEscaped
		}
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = orig.Entrypoint
		}
	}
	if old := orig.Healthcheck; old != nil && cfg.Healthcheck != nil {
		h := cfg.Healthcheck
		if len(h.Test) == 0 {
			h.Test = old.Test
		}
		if h.Interval == 0 {
			h.Interval = old.Interval
		}
		if h.Timeout == 0 {
			h.Timeout = old.Timeout
		}
		if h.StartPeriod == 0 {
			h.StartPeriod = old.StartPeriod
		}
		if h.Retries == 0 {
			h.Retries = old.Retries
		}
	}
}
