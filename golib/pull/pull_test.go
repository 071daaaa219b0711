package pull

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/k3-core/k3-core/golib/safego"
	"github.com/k3-core/k3-core/golib/store"
)

// A layer whose reader panics on its download goroutine fails the pull
// with the panic as its error: the process goes on, and nothing of the
// image is recorded.
func TestAPanicWhileFetchingALayerIsThePullsError(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(50000, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Into(context.Background(), st, Source{Image: secondLayerPanics{img}, Names: []string{"example.com/panics:1"}}, Options{})
	var perr *safego.PanicError
	if !errors.As(err, &perr) || perr.Message() != "the layer reader broke" {
		t.Fatalf("got %v, want the layer's panic", err)
	}
	images, err := st.Images()
	if err != nil || len(images) != 0 {
		t.Fatalf("the store holds %v (%v) after a failed pull", images, err)
	}
}

// secondLayerPanics is an image whose second layer's reader panics.
type secondLayerPanics struct{ v1.Image }

func (img secondLayerPanics) Layers() ([]v1.Layer, error) {
	layers, err := img.Image.Layers()
	if err == nil {
		layers[1] = panickingLayer{layers[1]}
	}
	return layers, err
}

type panickingLayer struct{ v1.Layer }

func (panickingLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(panickingReader{}), nil
}

type panickingReader struct{}

func (panickingReader) Read([]byte) (int, error) { panic("the layer reader broke") }

// A layer whose blob does not match its digest, though it unpacks to the
// right diff ID, leaves neither a layer directory nor a layer record: a
// layer appears only once both digests are checked.
func TestALayerAppearsOnlyWhenItsDigestMatches(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(50000, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Into(context.Background(), st, Source{Image: regzipped{img}, Names: []string{"example.com/regzipped:1"}}, Options{})
	var cerr *ContentError
	if !errors.As(err, &cerr) {
		t.Fatalf("got %v, want a digest mismatch", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	chainID := cfg.RootFS.DiffIDs[0].String()
	if have, err := st.HasLayer(chainID); err != nil || have {
		t.Fatalf("the layer is recorded (%v) though its digest did not match", err)
	}
	if _, err := os.Stat(st.LayerDir(chainID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the layer directory is there (%v) though its digest did not match", err)
	}
}

// regzipped is an image whose layers are served compressed again: the
// same tar (the diff IDs match), other bytes (the digests do not).
type regzipped struct{ v1.Image }

func (img regzipped) Layers() ([]v1.Layer, error) {
	layers, err := img.Image.Layers()
	for i := range layers {
		layers[i] = regzippedLayer{layers[i]}
	}
	return layers, err
}

type regzippedLayer struct{ v1.Layer }

func (l regzippedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := io.Copy(zw, rc); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}
