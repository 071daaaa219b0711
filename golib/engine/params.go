package engine

import (
	"encoding/json"
	"fmt"
	"math"
)

// params reads one JSON object of caller arguments and says precisely which
// field is wrong, since a Node caller can pass anything at all.
type params struct {
	what string // how the object is named in messages, e.g. "postData"
	raw  map[string]json.RawMessage
}

// positional splits the argument array the JS layer sends.
func positional(args json.RawMessage, n int) ([]json.RawMessage, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(args, &list); err != nil {
		return nil, fmt.Errorf("arguments could not be read: %v", err)
	}
	for len(list) < n {
		list = append(list, json.RawMessage("null"))
	}
	return list, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func objectParam(raw json.RawMessage, what string) (params, error) {
	p := params{what: what}
	if isNull(raw) {
		return p, fmt.Errorf("%s is required", what)
	}
	if err := json.Unmarshal(raw, &p.raw); err != nil || p.raw == nil {
		return p, fmt.Errorf("%s must be an object", what)
	}
	// The JS layer sends this marker for an argument JSON cannot carry.
	if why, ok := p.raw["$k3unserializable"]; ok {
		var reason string
		_ = json.Unmarshal(why, &reason)
		return p, fmt.Errorf("%s could not be serialised: %s", what, reason)
	}
	return p, nil
}

func stringParam(raw json.RawMessage, what string) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%s must be a string", what)
	}
	return s, true, nil
}

func (p params) field(key string) string { return p.what + "." + key }

func (p params) str(key string) (string, bool, error) {
	return stringParam(p.raw[key], p.field(key))
}

func (p params) boolean(key string, fallback bool) (bool, error) {
	raw := p.raw[key]
	if isNull(raw) {
		return fallback, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return fallback, fmt.Errorf("%s must be true or false", p.field(key))
	}
	return b, nil
}

// millis reads a duration in milliseconds: a positive, finite number.
func (p params) millis(key string) (float64, bool, error) {
	raw := p.raw[key]
	if isNull(raw) {
		return 0, false, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 || math.IsInf(f, 0) || f > math.MaxInt32 {
		return 0, true, fmt.Errorf("%s must be a positive number of milliseconds", p.field(key))
	}
	return f, true, nil
}

func (p params) object(key string) (params, bool, error) {
	raw := p.raw[key]
	if isNull(raw) {
		return params{}, false, nil
	}
	obj, err := objectParam(raw, p.field(key))
	return obj, true, err
}

// requiredString reads a positional argument that must be a non-empty string.
func requiredString(raw json.RawMessage, what string) (string, error) {
	s, present, err := stringParam(raw, what)
	if err == nil && (!present || s == "") {
		err = fmt.Errorf("%s is required", what)
	}
	return s, err
}
