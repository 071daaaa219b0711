package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// A registry that asks for basic auth and records who asked for a manifest.
func basicAuthRegistry(t *testing.T) (host string, users func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			seen = append(seen, user+"/"+pass)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
		w.Header().Set("Content-Length", "2")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestClientsNeverShareCredentials(t *testing.T) {
	host, users := basicAuthRegistry(t)
	pool := NewPool()
	// Joined with a separator these two would be the same string.
	first := Credentials{Username: "a\x00b", Password: "c"}
	second := Credentials{Username: "a", Password: "b\x00c"}
	for _, c := range []Credentials{first, second, first} {
		client, err := pool.Client(Options{Credentials: c, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host+"/repo:tag", client.ParseOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Head(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a\x00b/c", "a/b\x00c", "a\x00b/c"}
	if got := users(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the registry saw credentials %q, want %q", got, want)
	}
}
