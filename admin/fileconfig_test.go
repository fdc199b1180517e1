package admin_test

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9443", true},
		{"", true}, // API off
		{"nonsense", false},
	}
	for _, tc := range tests {
		err := admin.FileConfig{Addr: tc.addr}.Validate("admin")
		want := "admin.addr"
		if tc.ok {
			want = ""
		}
		if err := config.MatchField(err, want); err != nil {
			t.Errorf("addr %q: Validate: %v", tc.addr, err)
		}
	}
	if err := admin.DefaultFileConfig().Validate("admin"); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestFileConfigConsoleIdleTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, ""}, {15 * time.Minute, ""}, {time.Second, "admin.console.idle_timeout"}, {48 * time.Hour, "admin.console.idle_timeout"}} {
		c := admin.DefaultFileConfig()
		c.Console.IdleTimeout = config.Duration(tc.d)
		if err := config.MatchField(c.Validate("admin"), tc.want); err != nil {
			t.Errorf("idle_timeout %v: %v", tc.d, err)
		}
	}
	if !admin.DefaultFileConfig().Console.On() {
		t.Error("the console is off by default")
	}
	off := false
	if (admin.ConsoleConfig{Enabled: &off}).On() {
		t.Error("enabled: false leaves the console on")
	}
}

func TestFileConfigTokensDefaultToTheDataDir(t *testing.T) {
	t.Parallel()
	h := admin.HashToken("secret")
	line := []byte("ops " + hex.EncodeToString(h[:]) + "\n")
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "admin.tokens"), line, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(other, []byte("ci "+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  admin.FileConfig
		want string
	}{
		{"default", admin.FileConfig{}, "ops"},
		{"token_file", admin.FileConfig{TokenFile: other}, "ci"},
	}
	for _, tc := range tests {
		toks, err := tc.cfg.Tokens(dataDir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(toks) != 1 || toks[0].Name != tc.want || toks[0].SHA256 != h {
			t.Errorf("%s: tokens = %+v, want one named %s", tc.name, toks, tc.want)
		}
	}
	if _, err := (admin.FileConfig{}).Tokens(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no token file: %v, want fs.ErrNotExist", err)
	}
}
