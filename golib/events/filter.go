package events

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Filters are `docker events --filter` as a map: key to accepted values.
// An event passes when, for every key given, one of its values matches.
type Filters map[string][]string

// FilterKeys are the keys Filters understands.
var FilterKeys = []string{"type", "event", "container", "image"}

// Match reports whether ev passes f.
func (f Filters) Match(ev Event) bool {
	for key, values := range f {
		if len(values) > 0 && !anyOf(values, func(v string) bool { return matchOne(key, v, ev) }) {
			return false
		}
	}
	return true
}

func anyOf(values []string, ok func(string) bool) bool {
	for _, v := range values {
		if ok(v) {
			return true
		}
	}
	return false
}

// matchOne matches as docker does: a container by its ID, a prefix of it
// or its name; an image by its ID or a name it was given, however spelt
// (busybox is docker.io/library/busybox:latest).
func matchOne(key, value string, ev Event) bool {
	attrs := ev.Actor.Attributes
	switch key {
	case "type":
		return ev.Type == value
	case "event":
		return ev.Action == value
	case "container":
		return ev.Type == "container" && (attrs["name"] == value || idMatch(ev.Actor.ID, value))
	case "image":
		if ev.Type == "image" {
			return idMatch(ev.Actor.ID, value) || sameImage(attrs["name"], value)
		}
		return sameImage(attrs["image"], value)
	}
	return false
}

func idMatch(id, value string) bool {
	value = strings.TrimPrefix(value, "sha256:")
	id = strings.TrimPrefix(id, "sha256:")
	return len(value) >= 4 && strings.HasPrefix(id, value)
}

func sameImage(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := name.ParseReference(a)
	rb, errB := name.ParseReference(b)
	return errA == nil && errB == nil && ra.Name() == rb.Name()
}
