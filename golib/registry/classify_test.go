package registry

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestClassifyAgainstRealResponses(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(64, 1)
	if err := remote.Write(ref(t, host+"/a/b:there"), img); err != nil {
		t.Fatal(err)
	}
	c, _ := NewPool().Client(Options{})
	ctx := context.Background()
	if _, err := c.Head(ctx, ref(t, host+"/a/b:there")); err != nil {
		t.Fatalf("head of an existing tag: %v", err)
	}
	_, err := c.Head(ctx, ref(t, host+"/a/b:missing"))
	if f := Classify(err); f.Kind != NotFound || f.Code != "MANIFEST_UNKNOWN" {
		t.Errorf("missing tag: %+v (%v)", f, err)
	}
}

func TestClassifyStatuses(t *testing.T) {
	for status, kind := range map[int]Kind{401: Unauthorized, 403: Unauthorized, 404: NotFound, 502: Unreachable, 429: Unreachable} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			// Registries that break the spec: a status with no error body.
			w.WriteHeader(status)
		}))
		c, _ := NewPool().Client(Options{})
		_, err := c.Head(context.Background(), ref(t, strings.TrimPrefix(srv.URL, "http://")+"/x/y:z"))
		if f := Classify(err); f.Kind != kind {
			t.Errorf("status %d classified %+v (%v)", status, f, err)
		}
		srv.Close()
	}
}

func TestClassifyNetwork(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c, _ := NewPool().Client(Options{})
	_, err := c.Head(context.Background(), ref(t, addr+"/x/y:z"))
	if f := Classify(err); f.Kind != Unreachable || f.Reason != "connection refused" {
		t.Errorf("closed port: %+v (%v)", f, err)
	}

	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Head(ctx, ref(t, silent.Addr().String()+"/x/y:z"))
	if f := Classify(err); f.Kind != Unreachable || f.Reason != "connection timeout" {
		t.Errorf("silent server: %+v (%v)", f, err)
	}
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
