package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDurationDecodesGoDurationsAndRefusesTheRest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "d: 15m", want: 15 * time.Minute},
		{in: "d: 1h30m", want: 90 * time.Minute},
		{in: "d: 0s", want: 0},
		{in: "d: ~", want: 7 * time.Second}, // null keeps the default laid under the file
		{in: "d: soon", wantErr: `bad duration "soon"`},
		{in: "d: 5", wantErr: `bad duration "5"`},
		{in: "d: -1s", wantErr: `duration "-1s" is negative`},
		{in: "d: [1s]", wantErr: "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			v := struct {
				D Duration `yaml:"d"`
			}{Duration(7 * time.Second)}
			err := yaml.Unmarshal([]byte(tc.in), &v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decode %q: err = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode %q: %v", tc.in, err)
			}
			if v.D.D() != tc.want {
				t.Errorf("decode %q = %v, want %v", tc.in, v.D.D(), tc.want)
			}
		})
	}
}

func TestDurationMarshalsAsAGoDurationString(t *testing.T) {
	t.Parallel()
	b, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "d: 1m30s\n" {
		t.Errorf("marshal = %q, want %q", got, "d: 1m30s\n")
	}
}

func TestFieldErrorNamesTheFieldAndWraps(t *testing.T) {
	t.Parallel()
	err := Errorf("enroll.apple_roots", "%w", fs.ErrNotExist)
	if got, want := err.Error(), "config: enroll.apple_roots: "+fs.ErrNotExist.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "enroll.apple_roots" {
		t.Errorf("errors.As: %v, field %+v", err, fe)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ok   bool
	}{
		{"", true}, // listener off
		{"0.0.0.0:1812", true},
		{"[::1]:9443", true},
		{":8080", true},
		{"localhost:0", true},
		{"nonsense", false},
		{"1.2.3.4", false},
		{"[::1:9443", false},
	}
	for _, tc := range tests {
		err := CheckAddr("admin.addr", tc.addr)
		if tc.ok != (err == nil) {
			t.Errorf("CheckAddr(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "admin.addr") {
			t.Errorf("CheckAddr(%q) = %v, want a FieldError naming admin.addr", tc.addr, err)
		}
	}
}

func TestMatchField(t *testing.T) {
	t.Parallel()
	named := Errorf("a.b", "bad")
	tests := []struct {
		name  string
		err   error
		field string
		match bool
	}{
		{"nil wanted", nil, "", true},
		{"error not wanted", named, "", false},
		{"field named", named, "a.b", true},
		{"field wrapped", fmt.Errorf("load: %w", named), "a.b", true},
		{"other field", named, "a.c", false},
		{"no field error", errors.New("plain"), "a.b", false},
		{"nil but field wanted", nil, "a.b", false},
	}
	for _, tc := range tests {
		if got := MatchField(tc.err, tc.field) == nil; got != tc.match {
			t.Errorf("%s: MatchField(%v, %q) matched=%v, want %v", tc.name, tc.err, tc.field, got, tc.match)
		}
	}
}
