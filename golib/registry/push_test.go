package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// lateReader is a transport that fails each blob upload at once and reads
// its body afterwards, as net/http may do: RoundTrip may go on reading and
// closing a request's body "even after RoundTrip returns" (its doc), which
// it does when a canceled request's connection is still being written.
type lateReader struct {
	next http.RoundTripper
	read chan struct{}
}

func (l lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPatch || r.Body == nil {
		return l.next.RoundTrip(r)
	}
	go func() {
		defer close(l.read)
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}()
	return nil, errors.New("the upload was canceled")
}

// A push whose upload body is read after Push has returned does not crash
// the process (a send on the closed progress channel), and reports nothing
// after Push returned.
func TestPushWithProgressSurvivesABodyReadAfterItReturned(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	t.Cleanup(srv.Close)
	img, err := random.Image(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/late/read:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	c := &Client{transport: lateReader{next: http.DefaultTransport, read: read}, options: []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1})}}
	returned := false
	late := 0
	err = c.Push(context.Background(), ref, img, func(sent, total int64) {
		if returned {
			late++
		}
	})
	returned = true
	if err == nil {
		t.Fatal("the push succeeded through a transport that fails every upload")
	}
	<-read
	if late != 0 {
		t.Fatalf("%d progress reports after Push returned", late)
	}
}
