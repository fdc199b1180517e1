package metrics

import (
	"errors"
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
		if tc.ok {
			if err != nil {
				t.Errorf("addr %q: %v", tc.addr, err)
			}
			continue
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != "metrics.addr" {
			t.Errorf("addr %q: Validate = %v, want an error naming metrics.addr", tc.addr, err)
		}
	}
	if err := DefaultFileConfig().Validate("metrics"); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
