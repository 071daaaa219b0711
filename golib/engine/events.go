package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/events"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/store"
)

// recordEvent adds one event to the store's journal. A journal that cannot
// be written never fails the change it records: the change has happened.
func recordEvent(root, kind, action, id string, attributes map[string]string) {
	_ = events.Append(root, events.New(kind, action, id, attributes))
}

func recordContainerEvent(root, action string, c store.Container) {
	recordEvent(root, "container", action, c.ID, lifecycle.Attributes(c))
}

// events(options) streams the store's events through Emit, as `docker
// events` prints them, until the caller aborts or until passes.
func (e *Engine) events(ctx context.Context, call *Request) (any, error) {
	const op = "events"
	list, err := positional(call.Args, 1)
	invalid := func(reason string) error { return errcat.New(op, "InvalidEventsParameters", reason, nil) }
	if err != nil {
		return nil, invalid(err.Error())
	}
	filters, since, until, reason := eventsOptions(list[0])
	if reason != "" {
		return nil, invalid(reason)
	}
	if _, err := e.store(call.Root); err != nil {
		return nil, errcat.New(op, "StoreFailure", err.Error(), err)
	}
	err = events.Follow(ctx, call.Root, since, until, func(ev events.Event) {
		if filters.Match(ev) {
			call.Emit(ev)
		}
	})
	if errors.Is(err, context.Canceled) {
		return nil, errcat.New(op, "AbortError", "the caller stopped following events", err)
	}
	if err != nil {
		return nil, errcat.New(op, errcat.Generic, err.Error(), err)
	}
	return map[string]any{}, nil
}

// eventsOptions reads {filters: {type, event, container, image}, since, until};
// since and until take what containerLogs' since takes. Without since the
// events start now.
func eventsOptions(raw json.RawMessage) (events.Filters, time.Time, time.Time, string) {
	filters := events.Filters{}
	since, until := time.Now(), time.Time{}
	if isNull(raw) {
		return filters, since, until, ""
	}
	p, err := objectParam(raw, "options")
	if err != nil {
		return nil, since, until, err.Error()
	}
	if !isNull(p.raw["filters"]) {
		var given map[string]json.RawMessage
		if json.Unmarshal(p.raw["filters"], &given) != nil || given == nil {
			return nil, since, until, "options.filters must be an object"
		}
		for key, value := range given {
			if !slices.Contains(events.FilterKeys, key) {
				return nil, since, until, fmt.Sprintf("options.filters.%s is not a filter; use %v", key, events.FilterKeys)
			}
			values, ok := stringOrList(value)
			if !ok {
				return nil, since, until, fmt.Sprintf("options.filters.%s must be a string or a list of strings", key)
			}
			filters[key] = values
		}
	}
	for _, t := range []struct {
		name string
		into *time.Time
	}{{"since", &since}, {"until", &until}} {
		if isNull(p.raw[t.name]) {
			continue
		}
		parsed, err := parseSince(p.raw[t.name])
		if err != nil {
			return nil, since, until, "options." + t.name + " must be an ISO time or epoch seconds"
		}
		*t.into = parsed
	}
	return filters, since, until, ""
}

func stringOrList(raw json.RawMessage) ([]string, bool) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	var list []string
	return list, json.Unmarshal(raw, &list) == nil
}

// recordImageEvent records a change to image id under the names given.
func recordImageEvent(root, action, id, names string) {
	recordEvent(root, "image", action, id, map[string]string{"name": names})
}

// recordRemoval records a removeImage: an untag for each name that went,
// and a delete when the image itself went, as docker rmi does.
func recordRemoval(root, id string, untagged []string, deleted bool) {
	for _, name := range untagged {
		recordImageEvent(root, "untag", id, name)
	}
	if deleted {
		recordImageEvent(root, "delete", id, "")
	}
}
