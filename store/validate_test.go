package store

import (
	"errors"
	"strings"
	"testing"
)

func TestRecordRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		invalid bool // wants ErrInvalidID
	}{
		{"id ok", CheckID("device id", "C02XK0XXJG5H"), false},
		{"id empty", CheckID("device id", ""), true},
		{"id too long", CheckID("device id", strings.Repeat("a", MaxIDLen+1)), true},
		{"id with NUL", CheckID("device id", "a\x00b"), true},
		{"alias with NUL", CheckDevice(&Device{ID: "d", Aliases: map[string]string{"serial": "x\x00"}}), true},
		{"serial ok", CheckSerial("1f3a"), false},
		{"serial upper case", CheckSerial("1F3A"), true},
		{"serial leading zero", CheckSerial("01f3a"), true},
		{"serial empty", CheckSerial(""), true},
	}
	for _, tc := range tests {
		if got := errors.Is(tc.err, ErrInvalidID); got != tc.invalid || (!tc.invalid && tc.err != nil) {
			t.Errorf("%s: %v, want invalid=%v", tc.name, tc.err, tc.invalid)
		}
	}
	for in, want := range map[string]string{"1F:3A": "1f3a", "0001f3a": "1f3a", "0": "0", "00": "00"} {
		if got := NormSerial(in); got != want {
			t.Errorf("NormSerial(%q) = %q, want %q", in, got, want)
		}
	}
	if err := CheckIssuance(Issuance{Cert: &Cert{SHA256: Hash{1}, Serial: "ab", DeviceID: "d"}}); err == nil {
		t.Error("an issuance without its audit event was accepted")
	}
	if err := CheckACMEAccount(&ACMEAccount{ID: "a", Thumbprint: "t", JWK: []byte("{"), Status: "valid"}); err == nil {
		t.Error("an ACME account with a JWK that is not JSON was accepted")
	}
}
