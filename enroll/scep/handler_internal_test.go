package scep

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestDecodeMessageParam(t *testing.T) {
	raw := []byte{0xfb, 0xff, 0xfe, 0x30, 0x82, 0x01}
	std := base64.StdEncoding.EncodeToString(raw) // "+//+MIIB"
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok/std", std, true},
		{"ok/plus_became_space", strings.ReplaceAll(std, "+", " "), true},
		{"ok/url_safe", base64.URLEncoding.EncodeToString(raw), true},
		{"ok/unpadded", base64.RawStdEncoding.EncodeToString(raw), true},
		{"ok/wrapped_lines", std[:4] + "\r\n" + std[4:], true},
		{"reject/empty", "", false},
		{"reject/not_base64", "!!!!", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeMessageParam(tc.in)
			if ok != tc.ok || (ok && !bytes.Equal(got, raw)) {
				t.Errorf("decode(%q) = %x, %v", tc.in, got, ok)
			}
		})
	}
}

func TestProfileFromPath(t *testing.T) {
	for in, want := range map[string]string{
		"/scep":                              "scep",
		"/scep/":                             "scep",
		"/scep/corp":                         "corp",
		"/scep/corp/pkiclient.exe":           "corp",
		"/cgi-bin/pkiclient.exe":             "",
		"/scep/intune/cgi-bin/pkiclient.exe": "intune",
	} {
		if got := profileFromPath(in); got != want {
			t.Errorf("profileFromPath(%q) = %q, want %q", in, got, want)
		}
	}
}
