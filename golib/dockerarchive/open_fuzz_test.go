package dockerarchive

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/archive/tartest"
	"github.com/k3-core/k3-core/golib/inspect/inspecttest"
)

// FuzzInspect inspects arbitrary bytes as a docker save tarball, selecting
// the image by an arbitrary reference, as inspectAnImage does for
// docker-archive:. It must never panic, and every failure must be one the
// engine classifies as a missing image or bad content (any other error
// would reach the caller as a registry or generic failure).
func FuzzInspect(f *testing.F) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]}}`)
	configName := digest.FromBytes(config).Encoded() + ".json"
	good := func(manifest string) []byte {
		return tartest.Tar(f, tartest.File("manifest.json", manifest), tartest.File(configName, string(config)), tartest.File("l/layer.tar", "LAYER"))
	}
	one := `[{"Config":"` + configName + `","RepoTags":["img:1"],"Layers":["l/layer.tar"]}]`
	valid := good(one)
	seeds := []struct {
		archive []byte
		ref     string
	}{
		{valid, ""},
		{valid, "docker.io/library/img:1"},
		{valid, "IMG:1"},
		{valid[:len(valid)-1100], ""}, // truncated in the layer
		{valid[:560], ""},             // truncated in manifest.json
		{good(strings.Replace(one, configName, "../../../"+configName, 1)), ""},
		{good(strings.Replace(one, configName, "/etc/passwd", 1)), ""},
		{good(strings.Replace(one, "l/layer.tar", "../l/layer.tar", 1)), ""},
		// A config whose name is a digest it does not have.
		{tartest.Tar(f, tartest.File("manifest.json", strings.Replace(one, configName, strings.Repeat("b", 64)+".json", 1)), tartest.File(strings.Repeat("b", 64)+".json", string(config))), ""},
		// Layers that are symlink loops, or climb out.
		{tartest.Tar(f, tartest.File("manifest.json", one), tartest.File(configName, string(config)), tartest.Symlink("l/layer.tar", "../m/layer.tar"), tartest.Symlink("m/layer.tar", "../l/layer.tar")), ""},
		{tartest.Tar(f, tartest.File("manifest.json", one), tartest.File(configName, string(config)), tartest.Symlink("l/layer.tar", "../../../../etc/hostname")), ""},
		// Duplicated manifest.json, the second one malformed.
		{tartest.Tar(f, tartest.File("manifest.json", one), tartest.File(configName, string(config)), tartest.File("l/layer.tar", "L"), tartest.File("manifest.json", "[{")), ""},
		{good(`[` + strings.Repeat(`{"Config":"`+configName+`","RepoTags":["a:b"],"Layers":["l/layer.tar"]},`, 300) + `{}]`), "a:b"},
		{good(`[{"Config":"` + configName + `","Layers":[` + strings.Repeat(`"l/layer.tar",`, 1000) + `"l/layer.tar"]}]`), ""},
		{good(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)), ""},
		{good(`[{"Config":"","RepoTags":["` + strings.Repeat("x", 300) + `:\u0000"],"Layers":null}]`), "x"},
		{good(`[]`), ""},
		{good(`null`), "@sha256:"},
		{[]byte("not a tar"), ""},
	}
	for _, s := range seeds {
		f.Add(s.archive, s.ref)
	}
	f.Fuzz(func(t *testing.T, archive []byte, ref string) {
		inspecttest.ReadArchive(t, archive, func(p string) (inspecttest.Source, error) { return Open(p, ref) })
	})
}
