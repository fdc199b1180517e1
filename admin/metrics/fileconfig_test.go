package metrics

import (
	"testing"

	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9812", true},
		{"", true}, // listener off
		{"[::1]:9812", true},
		{"9812", false},
	}
	for _, tc := range tests {
		err := FileConfig{Addr: tc.addr}.Validate("metrics")
		want := "metrics.addr"
		if tc.ok {
			want = ""
		}
		if err := config.MatchField(err, want); err != nil {
			t.Errorf("addr %q: Validate: %v", tc.addr, err)
		}
	}
	if err := DefaultFileConfig().Validate("metrics"); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
