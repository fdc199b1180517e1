package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWarnProductionServerNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(*Config)
		fields []string // fields warned about
	}{
		{"defaults", func(*Config) {}, []string{"radius.server_names", "enroll.server_names"}},
		{"dev_is_quiet", func(c *Config) { c.Dev = true }, nil},
		{"names_set", func(c *Config) {
			c.RADIUS.ServerNames = []string{"radius.example.net"}
			c.Enroll.ServerNames = []string{"enroll.example.net", "localhost"}
		}, nil},
		{"loopback_only", func(c *Config) {
			c.RADIUS.ServerNames = []string{"radius.example.net"}
			c.Enroll.ServerNames = []string{"localhost", "127.0.0.1"}
		}, []string{"enroll.server_names"}},
		{"listener_off", func(c *Config) { c.RADIUS.AuthAddr = ""; c.Enroll.HTTPSAddr = "" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			tc.mod(cfg)
			var buf bytes.Buffer
			warnProduction(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			out := buf.String()
			if got := strings.Count(out, "level=WARN"); got != len(tc.fields) {
				t.Fatalf("%d warnings, want %d:\n%s", got, len(tc.fields), out)
			}
			for _, f := range tc.fields {
				if !strings.Contains(out, "field="+f) {
					t.Errorf("no warning for %s:\n%s", f, out)
				}
			}
		})
	}
}
