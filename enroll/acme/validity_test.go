package acme_test

import (
	"net/http"
	"testing"

	"hardbound/enroll/acme"
)

// TestNewOrderValidity: absent, empty and zero notBefore/notAfter are no
// request at all (smallstep's step CLI always sends the zero time); a real
// validity is refused with malformed, since the profile sets it.
func TestNewOrderValidity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const zero = "0001-01-01T00:00:00Z"
	tests := []struct {
		name       string
		nbf, naf   any // nil: field absent
		wantStatus int
	}{
		{"ok/absent", nil, nil, http.StatusCreated},
		{"ok/empty", "", "", http.StatusCreated},
		{"ok/zero_step_cli", zero, zero, http.StatusCreated},
		{"ok/zero_with_offset", "0001-01-01T00:00:00+00:00", nil, http.StatusCreated},
		{"reject/not_before", "2026-12-01T00:00:00Z", zero, http.StatusBadRequest},
		{"reject/not_after", zero, "2027-12-01T00:00:00Z", http.StatusBadRequest},
		{"reject/unparsable", "yesterday", nil, http.StatusBadRequest},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := e.client(t)
			payload := map[string]any{"identifiers": []map[string]string{{"type": acme.TypePermanentIdentifier, "value": "SN-VALIDITY-" + string(rune('A'+i))}}}
			if tc.nbf != nil {
				payload["notBefore"] = tc.nbf
			}
			if tc.naf != nil {
				payload["notAfter"] = tc.naf
			}
			r := c.send(c.Dir.NewOrder, c.sign(c.Dir.NewOrder, payload, signOpts{}))
			if tc.wantStatus == http.StatusBadRequest {
				wantProblem(t, r, http.StatusBadRequest, acme.ProblemMalformed)
				return
			}
			if r.status != tc.wantStatus {
				t.Fatalf("newOrder = %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
		})
	}
}
