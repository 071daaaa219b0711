package ocilayout

import (
	"bytes"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/archive/tartest"
	"github.com/k3-core/k3-core/golib/inspect/inspecttest"
)

// FuzzInspectArchive inspects an OCI archive built from arbitrary
// index.json, manifest and config (in index.json "sha256:MANIFEST" stands
// for the manifest's digest, in the manifest "sha256:CONFIG" for the
// config's, since a fuzzer cannot find digests), stored under their digests
// and followed by arbitrary raw tar entries, which may replace, shadow or
// corrupt them. It must never panic, and every failure must be one the
// engine classifies as a missing image or bad content.
func FuzzInspectArchive(f *testing.F) {
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:MANIFEST","size":1,
		"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:CONFIG","size":2},"layers":[]}`
	config := `{"architecture":"amd64","os":"linux"}`
	otherBlob := "blobs/sha256/" + strings.Repeat("0", 64)
	seeds := []struct {
		extra                   []byte
		index, manifest, config string
		ref                     string
	}{
		{nil, index, manifest, config, ""},
		{nil, index, manifest, config, "v1"},
		{nil, index, manifest, config, "v2"},
		{tartest.Tar(f, tartest.Symlink("index.json", "../../../../etc/hostname")), index, manifest, config, ""},
		{tartest.Tar(f, tartest.File("index.json", "[]")), index, manifest, config, ""}, // a second index.json
		{tartest.Tar(f, tartest.Symlink(otherBlob, otherBlob)), strings.Replace(index, "sha256:MANIFEST", "sha256:"+strings.Repeat("0", 64), 1), manifest, config, ""},
		{tartest.Tar(f, tartest.File("../../index.json", index), tartest.File("/blobs/sha256/x", "x")), "", manifest, config, ""},
		{tartest.Tar(f, tartest.File("blobs", "a file where a directory is"))[:600], index, manifest, config, ""}, // truncated
		{nil, strings.Replace(index, "sha256:MANIFEST", "sha256:"+strings.Repeat("f", 64), 1), manifest, config, ""},
		{nil, strings.Replace(index, "sha256:MANIFEST", "sha512:"+strings.Repeat("f", 128), 1), manifest, config, ""},
		{nil, strings.Replace(index, "sha256:MANIFEST", "md5:MANIFEST", 1), manifest, config, ""},
		{nil, `{"manifests":[` + strings.Repeat(`{"digest":"sha256:MANIFEST"},`, 3000) + `{}]}`, manifest, config, ""},
		{nil, strings.Repeat(`{"manifests":`, 20000), manifest, config, ""},
		{nil, index, strings.Repeat("[", 20000), config, ""},
		{nil, index, strings.Replace(manifest, `"layers":[]`, `"layers":[`+strings.Repeat(`{"digest":"sha256:CONFIG","size":-1},`, 2000)+`{}]`, 1), config, ""},
		{nil, `{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:MANIFEST"}]}`, index, config, ""},
		{nil, index, `{"schemaVersion":1,"fsLayers":[{"blobSum":"x"}],"history":[{"v1Compatibility":"{}"}]}`, config, ""},
		{nil, index, manifest, "\x00\xff", "\x00"},
	}
	for _, s := range seeds {
		f.Add(s.extra, []byte(s.index), []byte(s.manifest), []byte(s.config), s.ref)
	}
	f.Fuzz(func(t *testing.T, extra, index, manifest, config []byte, ref string) {
		manifest = bytes.ReplaceAll(manifest, []byte("sha256:CONFIG"), []byte(digest.FromBytes(config)))
		index = bytes.ReplaceAll(index, []byte("sha256:MANIFEST"), []byte(digest.FromBytes(manifest)))
		archive := tartest.Tar(t, tartest.File("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), tartest.File("index.json", string(index)),
			tartest.File("blobs/sha256/"+digest.FromBytes(manifest).Encoded(), string(manifest)),
			tartest.File("blobs/sha256/"+digest.FromBytes(config).Encoded(), string(config)))
		archive = append(archive[:len(archive)-1024], extra...)
		archive = append(archive, make([]byte, 1024)...)
		inspecttest.ReadArchive(t, archive, func(p string) (inspecttest.Source, error) { return OpenArchive(p, ref) })
	})
}
