package node

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimitIsParsedOrRejectedNamingTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "", want: 0},
		{in: "0", want: 0},
		{in: "768MiB", want: 768 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1 GiB", want: 1 << 30},
		{in: "2097152KiB", want: 2 << 30},
		{in: "1073741824", want: 1 << 30},
		{in: "1073741824B", want: 1 << 30},
		{in: "768KiB", wantErr: "below the minimum"},
		{in: "1MiB", wantErr: "below the minimum"},
		{in: "768MB", wantErr: `unit "MB"`},
		{in: "768mib", wantErr: "not a whole number"},
		{in: "1.5GiB", wantErr: "not a whole number"},
		{in: "-1GiB", wantErr: "not a whole number"},
		{in: "MiB", wantErr: "not a whole number"},
		{in: "99999999999TiB", wantErr: "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "hb.yaml")
			if err := os.WriteFile(path, []byte("memory_limit: \""+tc.in+"\"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "memory_limit") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadConfig(memory_limit %q) = %v, want an error naming memory_limit with %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig(memory_limit %q): %v", tc.in, err)
			}
			if cfg.MemoryLimitBytes() != tc.want {
				t.Errorf("memory_limit %q = %d bytes, want %d", tc.in, cfg.MemoryLimitBytes(), tc.want)
			}
		})
	}
}

// Not parallel: the memory limit is process-wide.
func TestApplyMemoryLimitSetsTheRuntimeLimitOnlyWhenConfigured(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ApplyMemoryLimit(cfg, "", quiet)
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("without memory_limit the limit changed from %d to %d", prev, got)
	}

	cfg.MemoryLimit = "768MiB"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ApplyMemoryLimit(cfg, "640MiB", quiet)
	if got := debug.SetMemoryLimit(-1); got != 768<<20 {
		t.Errorf("memory_limit 768MiB: runtime limit %d, want %d", got, 768<<20)
	}
}
