package radsec_test

import (
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/radius/radsec"
	"hardbound/store"
	"hardbound/store/storetest"
)

// outageRule is a settable radsec.Outage.
type outageRule struct{ allow atomic.Bool }

func (o *outageRule) CachesAnswer(time.Time) bool { return o.allow.Load() }

// TestNASReconnectsWhileStoreUnavailable: while the store's database is
// away, a NAS identified before the outage connects again (and carries an
// authentication) as long as the outage rule lets cached answers stand; a
// NAS never seen, one revoked before the outage, and any NAS once the rule
// says no (past the grace under reject) are refused store_unavailable.
func TestNASReconnectsWhileStoreUnavailable(t *testing.T) {
	rule := &outageRule{}
	var down atomic.Bool // the database is away: identity reads fail
	e := newEnv(t, func(c *radsec.Config) {
		c.Bindings = &storetest.Faulty{Store: c.Bindings.(store.Store), Fail: func(m string) error {
			if down.Load() && (m == "GetCertBinding" || m == "GetDevice") {
				return store.ErrUnavailable
			}
			return nil
		}}
		c.Outage = rule
	})
	known := e.nasCert(t, "ap-known")
	gone := e.nasCert(t, "ap-gone")
	unseen := e.nasCert(t, "ap-unseen")
	dev := e.device(t, "dev-away", devbind.Request{})
	for _, c := range []tls.Certificate{known, gone} {
		tc, err := e.dial(t, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		statusServer(t, tc, 1)
		tc.Close()
	}
	// Revoked while the store answers: its remembered identity goes too.
	if _, err := e.posture.RevokeCert(e.ctx, gone.Leaf.SerialNumber.Text(16), 1, "admin:test"); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	rule.allow.Store(true)
	tc, err := e.dial(t, known, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res := authenticate(t, e, tc, dev); !res.Accepted {
		t.Fatalf("authentication over the cached NAS connection: %s", res.ReplyMessage)
	}
	if got := e.metrics.get("accepted/hardbound_cached"); got != 1 {
		t.Fatalf("accepted/hardbound_cached = %d, metrics %v", got, e.metrics.c)
	}
	eventually(t, "cached connection audited", func() bool {
		return e.audited(t, "radsec.connect", "nas:ap-known", "ok", "identified_while_store_unavailable") == 1
	})
	for _, tt := range []struct {
		name  string
		cert  tls.Certificate
		allow bool
	}{
		{"never identified", unseen, true},
		{"revoked before the outage", gone, true},
		{"known, but cached answers no longer stand", known, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rule.allow.Store(tt.allow)
			before := e.metrics.get("refused/store_unavailable")
			expectRefused(t, e, tt.cert)
			eventually(t, "refusal counted", func() bool { return e.metrics.get("refused/store_unavailable") == before+1 })
		})
	}

	// The store answers again: reads, not the cache, decide.
	down.Store(false)
	tc, err = e.dial(t, unseen, 0)
	if err != nil {
		t.Fatal(err)
	}
	statusServer(t, tc, 2)
}

// expectRefused dials with cert and requires the handshake to fail.
func expectRefused(t *testing.T, e *env, cert tls.Certificate) {
	t.Helper()
	tc, err := e.dial(t, cert, 0)
	if err == nil {
		// TLS 1.3: the client learns of the alert on its first read.
		_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = tc.Read(make([]byte, 1))
	}
	if err == nil || errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("connection not refused: %v", err)
	}
}
