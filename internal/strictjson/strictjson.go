// Package strictjson decodes JSON that must have exactly the shape of its target: the checks
// sqsconsumer.StrictJSON and jobs.StrictJSON share.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrNull is returned for a payload that is JSON null (or only whitespace around it), which
// encoding/json would decode into an untouched zero value.
var ErrNull = errors.New("payload is null")

// ErrTrailingData is returned for a payload with more after its first JSON value.
var ErrTrailingData = errors.New("data after the JSON value")

// Unmarshal decodes data into v like json.Unmarshal, and fails where json.Unmarshal would
// succeed with a value of the wrong shape: an object field v has no place for (at any depth),
// and a top-level null. Type mismatches and syntax errors fail as in json.Unmarshal.
func Unmarshal(data []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return ErrNull
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF // an empty payload; json.Unmarshal says the same
		}
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}
