package posture_test

import (
	"errors"
	"testing"

	"hardbound/posture"
)

func TestParseAction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    posture.Action
		wantErr bool
	}{
		{"", posture.ActionReject, false},
		{"reject", posture.ActionReject, false},
		{"quarantine", posture.ActionQuarantine, false},
		{"allow", "", true},
		{"Reject", "", true},
		{" reject", "", true},
	}
	for _, tc := range tests {
		got, err := posture.ParseAction(tc.in)
		if tc.wantErr != errors.Is(err, posture.ErrUnknownAction) || (!tc.wantErr && err != nil) {
			t.Errorf("ParseAction(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
		}
		if got != tc.want {
			t.Errorf("ParseAction(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
