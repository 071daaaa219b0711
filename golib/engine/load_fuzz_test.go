package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/k3-core/k3-core/golib/archive/tartest"
	"github.com/k3-core/k3-core/golib/errcat"
)

// FuzzLoadImage runs loadImage on archives built from arbitrary parts: a
// docker save tarball (top is manifest.json) or an OCI archive (top is the
// image manifest), with one config and one layer stored under their
// digests, followed by arbitrary raw tar entries, optionally gzipped as a
// whole. Digests cannot be guessed, so "CONFIG.json", "LAYER.tar",
// "sha256:CONFIG" and "sha256:LAYER" stand for the real names and digests.
// Whatever the input, loadImage must not panic, must fail only with a class
// that says the archive is bad, and must change nothing outside its store
// and leave no staging files behind.
func FuzzLoadImage(f *testing.F) {
	dockerTop := `[{"Config":"CONFIG.json","RepoTags":["fuzz:1"],"Layers":["LAYER.tar"]}]`
	ociTop := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:CONFIG","size":SIZE},
		"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:LAYER","size":SIZE}]}`
	config := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:LAYER"]}}`
	layerOf := func(ents ...string) []byte {
		var members []tartest.Member
		for _, e := range ents {
			name, body, _ := strings.Cut(e, "=")
			if target, ok := strings.CutPrefix(body, "->"); ok {
				members = append(members, tartest.Symlink(name, target))
			} else {
				members = append(members, tartest.File(name, body))
			}
		}
		return tartest.Tar(f, members...)
	}
	layer := layerOf("etc/hostname=fuzz")
	seeds := []struct {
		oci, gz      bool
		top, config  string
		layer, extra []byte
	}{
		{false, false, dockerTop, config, layer, nil},
		{true, false, ociTop, config, layer, nil},
		{false, true, dockerTop, config, layer, nil},
		{true, true, ociTop, config, layer, nil},
		{false, false, dockerTop, config, layerOf("../../escape=x"), nil},
		{false, false, dockerTop, config, layerOf("s=->../../../..", "s/escape=x"), nil},
		{true, false, ociTop, config, layerOf("s=->/", "s/etc/escape=x"), nil},
		{false, false, dockerTop, config, layer[:700], nil}, // truncated layer
		{false, false, dockerTop, config, layer[:300], nil}, // truncated in a header
		{false, false, dockerTop, strings.Replace(config, "sha256:LAYER", "sha256:"+strings.Repeat("0", 64), 1), layer, nil},
		{true, false, strings.Replace(ociTop, "sha256:LAYER", "sha256:"+strings.Repeat("0", 64), 1), config, layer, nil},
		{false, false, dockerTop, config, layer, tartest.Tar(f, tartest.Symlink("LAYER.tar", "../../../../etc/passwd"))},
		{false, false, dockerTop, config, layer, tartest.Tar(f, tartest.File("../../../escape", "x"), tartest.File("/abs", "x"))},
		{true, false, ociTop, config, layer, tartest.Tar(f, tartest.File("index.json", `{"manifests":[{"digest":"sha256:`+strings.Repeat("0", 64)+`"}]}`))},
		{true, false, ociTop, config, layer, tartest.Tar(f, tartest.File("blobs", "x"))},
		{false, false, `[{"Config":"CONFIG.json","Layers":[` + strings.Repeat(`"LAYER.tar",`, 1000) + `"LAYER.tar"]}]`, config, layer, nil},
		{false, false, strings.Repeat("[", 10001), config, layer, nil},
		{false, false, `[{"Config":"CONFIG.json","RepoTags":["UPPER:case","a:b:c"],"Layers":["LAYER.tar"]},{}]`, config, layer, nil},
		{false, false, `[{}]`, `{}`, nil, nil},
		{false, true, dockerTop, config, tartest.Gzip(f, layer), nil}, // a gzipped layer whose diff ID is the gzip's digest
	}
	for _, s := range seeds {
		f.Add(s.oci, s.gz, []byte(s.top), []byte(s.config), s.layer, s.extra)
	}
	top := f.TempDir()
	root := filepath.Join(top, "store")
	if err := os.WriteFile(filepath.Join(top, "sentinel"), []byte("keep"), 0o644); err != nil {
		f.Fatal(err)
	}
	input := filepath.Join(top, "input")
	e := New()
	f.Fuzz(func(t *testing.T, oci, gz bool, manifest, config, layer, extra []byte) {
		archive := fuzzArchive(t, oci, manifest, config, layer, extra)
		if gz {
			archive = tartest.Gzip(t, archive)
		}
		if err := os.WriteFile(input, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		before := outsideStore(t, top)

		_, err := e.loadImage(context.Background(), &Request{Args: args(input), Root: root, Emit: func(any) {}})

		var cerr *errcat.Error
		if err != nil && (!errors.As(err, &cerr) || !badArchiveClasses[cerr.Class]) {
			t.Fatalf("load failed with %v, not as a bad archive", err)
		}
		if after := outsideStore(t, top); after != before {
			t.Fatalf("outside the store changed:\n%s\nthen:\n%s", before, after)
		}
		if staged, _ := os.ReadDir(filepath.Join(root, "tmp")); len(staged) != 0 {
			t.Fatalf("staging files left behind: %v", staged)
		}
	})
}

var badArchiveClasses = map[string]bool{"InvalidArchive": true, "LayerVerificationFailure": true, "UnsafeImageContent": true}

// fuzzArchive builds the archive FuzzLoadImage describes, without its
// end-of-archive blocks when extra follows.
func fuzzArchive(t *testing.T, oci bool, top, config, layer, extra []byte) []byte {
	layerDigest := digest.FromBytes(layer)
	config = bytes.ReplaceAll(config, []byte("sha256:LAYER"), []byte(layerDigest))
	configDigest := digest.FromBytes(config)
	var members []tartest.Member
	if oci {
		top = bytes.ReplaceAll(top, []byte("sha256:LAYER"), []byte(layerDigest))
		top = bytes.ReplaceAll(top, []byte("sha256:CONFIG"), []byte(configDigest))
		top = bytes.Replace(top, []byte("SIZE"), []byte(fmt.Sprint(len(config))), 1)
		top = bytes.Replace(top, []byte("SIZE"), []byte(fmt.Sprint(len(layer))), 1)
		index := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}]}`, digest.FromBytes(top), len(top))
		members = []tartest.Member{tartest.File("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), tartest.File("index.json", index),
			tartest.File("blobs/sha256/"+digest.FromBytes(top).Encoded(), string(top))}
	} else {
		top = bytes.ReplaceAll(top, []byte("CONFIG.json"), []byte(configDigest.Encoded()+".json"))
		top = bytes.ReplaceAll(top, []byte("LAYER.tar"), []byte(layerDigest.Encoded()+"/layer.tar"))
		members = []tartest.Member{tartest.File("manifest.json", string(top))}
	}
	members = append(members,
		tartest.File(blobName(oci, configDigest, ".json"), string(config)),
		tartest.File(blobName(oci, layerDigest, "/layer.tar"), string(layer)))
	archive := tartest.Tar(t, members...)
	archive = append(archive[:len(archive)-1024], extra...)
	return append(archive, make([]byte, 1024)...)
}

func blobName(oci bool, d digest.Digest, dockerSuffix string) string {
	if oci {
		return "blobs/sha256/" + d.Encoded()
	}
	return d.Encoded() + dockerSuffix
}

// outsideStore lists everything under top but the store and the input,
// with each regular file's contents (not directory sizes: the store is
// made by the first load).
func outsideStore(t *testing.T, top string) string {
	var b strings.Builder
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch rel, _ := filepath.Rel(top, p); {
		case rel == "store":
			return fs.SkipDir
		case rel == "input":
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v\n", p, fi.Mode())
		if fi.Mode().IsRegular() {
			body, err := os.ReadFile(p)
			fmt.Fprintf(&b, "  %q %v\n", body, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
