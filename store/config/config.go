// Package config is what the sections of hardbound.yaml share. Each
// component owns its section, its defaults and its Validate, beside the code
// it configures (radius.FileConfig, enroll.FileConfig, admin.FileConfig, ...);
// cmd/hardbound only composes them. This package holds the pieces several
// sections need: durations written as Go duration strings, listener address
// checks and errors naming a field by its full path.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("15m").
// Negative durations are refused when the file is read. yaml.v3 decodes
// time.Duration natively, but accepts negative values and reports a bad
// value as a type error; Duration names the string instead.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", s, err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// FieldError is a bad value in hardbound.yaml. Field is its full path
// ("radius.clients[0].cidr"), so the operator finds it without guessing.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Errorf returns a *FieldError for field; %w in format wraps as fmt.Errorf does.
func Errorf(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// CheckAddr checks a listener address ("host:port"). Empty is valid: it
// disables the listener.
func CheckAddr(field, addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Errorf(field, "bad address %q: %v", addr, err)
	}
	return nil
}

// ReadSecret reads a secret kept in a file named by the *_file key field:
// the file's content without surrounding white space, never empty. Errors
// are *FieldError naming field, never the secret.
func ReadSecret(field, path string) (string, error) {
	if path == "" {
		return "", Errorf(field, "required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Errorf(field, "%w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", Errorf(field, "empty")
	}
	return s, nil
}

// MatchField says whether err is what a section's Validate should return
// for a value that is bad in field: nil when err is a *FieldError naming
// field (or, with field "", when err is nil), an error saying what err was
// otherwise. The sections' table tests check their Validate with it.
func MatchField(err error, field string) error {
	var fe *FieldError
	switch {
	case field == "" && err == nil:
		return nil
	case field == "":
		return fmt.Errorf("got %v, want no error", err)
	case errors.As(err, &fe) && fe.Field == field:
		return nil
	}
	return fmt.Errorf("got %v, want an error naming %s", err, field)
}
