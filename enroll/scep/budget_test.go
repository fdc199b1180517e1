package scep_test

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/scep/sceptest"
)

// A storm of refused requests from one address costs one audit event per
// reason and window, not one each, and the event names the device the CSR
// claimed and its key even though no challenge proved it.
func TestRefusalsAreAuditedOnBudgetAndNameTheClaim(t *testing.T) {
	e := newEnv(t, nil)
	before, err := e.store.TailAudit(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	const storm = 20
	for range storm {
		_, err := e.client("").Enroll(t.Context(), sceptest.Request{Key: newKey(t), Challenge: "let-me-in",
			Subject: pkix.Name{CommonName: "claimed-dev-7"}})
		wantFailure(t, err, smscep.BadRequest)
	}
	after, err := e.store.TailAudit(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	written := len(after) - len(before)
	if written != 1 {
		t.Fatalf("%d refusals wrote %d audit events, want 1 within the window", storm, written)
	}
	ev := after[len(after)-1]
	if ev.Result != "reject" || ev.Subject != "claimed-dev-7" || !strings.Contains(ev.Reason, "claimed_device=claimed-dev-7") ||
		!strings.Contains(ev.Reason, "key_sha256=") {
		t.Fatalf("refusal event %+v does not name the claimed device and key", ev)
	}
}
