package imageconfig

import (
	"reflect"
	"testing"
)

func TestStringCommandIsOneElementList(t *testing.T) {
	raw := []byte(`{"architecture":"amd64","os":"linux","config":{"Cmd":"/bin/sh -c run","Entrypoint":"/init","Shell":"/bin/bash","Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}`)
	cfg, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[*[]string][]string{
		&cfg.Config.Cmd: {"/bin/sh -c run"}, &cfg.Config.Entrypoint: {"/init"}, &cfg.Config.Shell: {"/bin/bash"},
		&cfg.Config.Env: {"A=1"},
	} {
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("got %q, want %q", *got, want)
		}
	}
}

func TestOtherMalformedConfigsStillFail(t *testing.T) {
	for _, raw := range []string{`{"config":{"Cmd":1}}`, `{"config":{"Env":"A=1"}}`, `not json`, `{"config":{"Cmd":"x"},"created":7}`} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("%s: parsed", raw)
		}
	}
}
