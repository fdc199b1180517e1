package node

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hardbound/admin/offline"
	"hardbound/store/postgres"
)

// TestOfflineTokens: --data-dir alone is its default token file; with a
// config, its admin.token_file, in --data-dir when given, else the
// config's data_dir.
func TestOfflineTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "hb.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nadmin:\n  token_file: "+filepath.Join(dir, "t.tokens")+"\n")
	for _, tc := range []struct {
		name, dataDir, cfg string
		want               offline.Tokens
	}{
		{"data dir", "/srv/hb", "", offline.Tokens{DataDir: "/srv/hb"}},
		{"config", "", cfg, offline.Tokens{DataDir: filepath.Join(dir, "data"), File: filepath.Join(dir, "t.tokens")}},
		{"config and data dir", "/srv/hb", cfg, offline.Tokens{DataDir: "/srv/hb", File: filepath.Join(dir, "t.tokens")}},
	} {
		got, err := OfflineTokens(tc.dataDir, tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := OfflineTokens("", filepath.Join(dir, "absent.yaml")); err == nil || !strings.HasPrefix(err.Error(), "config: open ") {
		t.Errorf("a missing config: %v", err)
	}
}

// TestServeOptionsLoad: the command line's overrides go over the file,
// and the Config's Load repeats them, as a reload must.
func TestServeOptionsLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "hb.yaml", "data_dir: "+filepath.Join(dir, "file-data")+"\nlog:\n  format: text\n")
	o := ServeOptions{Path: path, DataDir: filepath.Join(dir, "flag-data"), LogFormat: "json", Dev: true, Version: "v1.2.3"}
	cfg, err := o.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != o.DataDir || cfg.Log.Format != "json" || !cfg.Dev || cfg.Version != "v1.2.3" || cfg.File != path || cfg.Load == nil {
		t.Fatalf("%+v", cfg)
	}
	writeFile(t, dir, "hb.yaml", "data_dir: "+filepath.Join(dir, "file-data")+"\nlog:\n  format: text\nmemory_limit: 1GiB\n")
	again, err := cfg.Load()
	if err != nil {
		t.Fatal(err)
	}
	if again.MemoryLimit != "1GiB" || again.DataDir != o.DataDir || again.Log.Format != "json" || !again.Dev || again.Version != "v1.2.3" {
		t.Fatalf("reloaded %+v", again)
	}
	// Without overrides the file's values stand.
	plain, err := ServeOptions{Path: path}.Load()
	if err != nil || plain.DataDir != filepath.Join(dir, "file-data") || plain.Log.Format != "text" || plain.Dev {
		t.Fatalf("%+v %v", plain, err)
	}
	if _, err := (ServeOptions{Path: filepath.Join(dir, "absent.yaml")}).Load(); err == nil {
		t.Fatal("a missing file loaded")
	}
}

// TestCopyReport: progress at most once a second, and the result line.
func TestCopyReport(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := CopyProgress(&b)
	for n := range 1000 {
		p(n) // well within the first second
	}
	if b.Len() != 0 {
		t.Fatalf("progress within the first second: %q", b.String())
	}
	time.Sleep(1100 * time.Millisecond)
	p(1000)
	p(1001)
	if !regexp.MustCompile(`^copied 1000 records \([0-9]+s\)\n$`).MatchString(b.String()) {
		t.Fatalf("progress after a second: %q", b.String())
	}
	r := CopyResult{Records: 12, Devices: 3, AuditEvents: 7, Elapsed: 1234567 * time.Microsecond}
	if got, want := r.String(), "copied 12 records (3 devices, 7 audit events) in 1.235s; audit chain verified"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestMigrated(t *testing.T) {
	t.Parallel()
	v := postgres.SchemaVersion()
	for _, tc := range []struct {
		applied []int
		want    string
	}{
		{nil, fmt.Sprintf("schema is at version %d: nothing to do", v)},
		{[]int{v - 1, v}, fmt.Sprintf("applied migrations [%d %d]: schema is at version %d", v-1, v, v)},
	} {
		if got := Migrated(tc.applied); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.applied, got, tc.want)
		}
	}
}
