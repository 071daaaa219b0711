package pull

import (
	"context"
	"errors"
	"io"
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
