package ocsp_test

import (
	"crypto"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/enroll/ocsp"
)

type recMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *recMetrics) add(k string)           { m.mu.Lock(); m.n[k]++; m.mu.Unlock() }
func (m *recMetrics) Response(status string) { m.add("response/" + status) }
func (m *recMetrics) CacheLookup(hit bool) {
	if hit {
		m.add("cache/hit")
	} else {
		m.add("cache/miss")
	}
}
func (m *recMetrics) SignerRotation(result string) { m.add("rotation/" + result) }
func (m *recMetrics) get(k string) int             { m.mu.Lock(); defer m.mu.Unlock(); return m.n[k] }

// TestMetrics: every response is counted by status (a posture hold apart
// from other revocations), every cache lookup as hit or miss, and every
// delegated signer certified as a rotation.
func TestMetrics(t *testing.T) {
	t.Parallel()
	m := &recMetrics{n: map[string]int{}}
	f := newFixture(t, ocsp.Config{Posture: true, SignerValidity: 2 * time.Hour, Validity: 10 * time.Minute}, ocsp.WithMetrics(m))
	issuer := f.ca.Issuing()
	good, held, revoked := f.bind(t, "good1", ""), f.bind(t, "held1", ""), f.bind(t, "revoked1", "")
	// answer asks with SHA-1 then SHA-256: the first is decided (miss),
	// the second reuses the decided answer (hit, signed for its hash).
	f.answer(t, good, issuer, xocsp.Good, 0)
	f.answer(t, good, issuer, xocsp.Good, 0)
	if _, err := f.pos.Quarantine(f.ctx, held.ID, "test"); err != nil {
		t.Fatal(err)
	}
	f.answer(t, held, issuer, xocsp.Revoked, xocsp.CertificateHold)
	if _, err := f.pos.RevokeCert(f.ctx, revoked.Binding.Serial, xocsp.KeyCompromise, "test"); err != nil {
		t.Fatal(err)
	}
	f.answer(t, revoked, issuer, xocsp.Revoked, xocsp.KeyCompromise)
	unbound, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: "ghost", NoBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	f.resp.Respond(f.ctx, request(t, unbound.Leaf, issuer, crypto.SHA1))
	f.resp.Respond(f.ctx, []byte("not der"))
	f.resp.Respond(f.ctx, request(t, good.Leaf, catest.New(t, "").Issuing(), crypto.SHA1))

	for k, want := range map[string]int{
		"response/good": 4, "response/hold": 2, "response/revoked": 2, "response/unknown": 1,
		"response/malformed": 1, "response/unauthorized": 1,
		"cache/miss": 1 + 1 + 1 + 1, "cache/hit": 3 + 1 + 1,
		"rotation/ok": 1,
	} {
		if got := m.get(k); got != want {
			t.Errorf("%s = %d, want %d", k, got, want)
		}
	}
	f.clock.add(61 * time.Minute) // past half the signer's life
	f.answer(t, good, issuer, xocsp.Good, 0)
	if got := m.get("rotation/ok"); got != 2 {
		t.Errorf("rotations after half life = %d, want 2", got)
	}
}
