package config

import (
	"encoding/json"
	"reflect"
	"time"
)

// StringList is a list that may also be written as a single string.
type StringList []string

// UnmarshalJSON accepts "a" as well as ["a", "b"].
func (l *StringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = StringList{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return typeError(b, reflect.TypeFor[StringList]())
	}
	*l = list
	return nil
}

// Duration is a time.Duration written as a string such as "60s".
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return typeError(b, reflect.TypeFor[Duration]())
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return typeError(b, reflect.TypeFor[Duration]())
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// typeError is the error the decoder fills in with the field's path
// (a plain error would reach the user without saying which field).
func typeError(value []byte, t reflect.Type) error {
	return &json.UnmarshalTypeError{Value: string(value), Type: t}
}
