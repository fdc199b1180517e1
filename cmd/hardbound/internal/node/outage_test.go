package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/est"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/audithold"
	"hardbound/store/badger/badgertest"
	"hardbound/store/policy"
	"hardbound/store/storetest"
)

// awayStore is a store whose database can be sent away: while it is, every
// call fails wrapping store.ErrUnavailable and Unavailable says so, as
// store/postgres does.
type awayStore struct {
	*storetest.Faulty
	away atomic.Bool
}

func newAwayStore(st store.Store) *awayStore {
	a := &awayStore{Faulty: &storetest.Faulty{Store: st}}
	a.Fail = func(m string) error {
		if a.away.Load() {
			return fmt.Errorf("test: %s: database away: %w", m, store.ErrUnavailable)
		}
		return nil
	}
	return a
}

func (a *awayStore) Unavailable() (time.Time, bool) { return time.Time{}, a.away.Load() }

// TestRefusalsHeldWhileStoreAway: while the database is away, an
// enrollment refused by EST and an admin request refused for its token
// are audited through the node's hold (startAuditHold's heldSt), behind a
// RADIUS decision held before them; once the database is back they are in
// the chain in the order they were decided, with the time they were
// decided, and the chain verifies. Without the hold both refusals were
// appended to the store directly and lost.
func TestRefusalsHeldWhileStoreAway(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base := badgertest.Memory(t)
	st := newAwayStore(base)
	in := &Node{cfg: &Config{DataDir: t.TempDir()}, log: slog.New(slog.DiscardHandler), metrics: metrics.New(),
		st: st, ctx: ctx, cancel: cancel, addrs: map[string]string{}}
	if err := in.startAuditHold(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range slices.Backward(in.closers) {
			_ = f(context.Background())
		}
	})
	h, ok := in.auditor.(*audithold.Holder)
	if !ok {
		t.Fatalf("a store that can lose its database got auditor %T, want a hold", in.auditor)
	}
	pos, err := posture.New(base, []posture.Profile{{Name: policy.DefaultProfile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pos.Close)
	estSrv, err := est.New(est.Config{Profiles: []est.Profile{{Name: policy.DefaultProfile}}}, catest.New(t, ""), in.heldSt, pos)
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(admin.Deps{Store: in.heldSt, Standing: pos}, []admin.Token{{Name: "ops", SHA256: admin.HashToken("s3cret-token")}})
	if err != nil {
		t.Fatal(err)
	}

	st.away.Store(true)
	t0 := time.Now()
	if err := in.auditor.AppendAudit(ctx, &store.AuditEvent{Time: time.Now(), Actor: "nas:sw1", Action: "radius.access",
		Subject: "dev-1", Result: "accept", Reason: "store=unavailable"}); err != nil {
		t.Fatalf("a RADIUS decision while the database is away: %v, want held", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/.well-known/est/simpleenroll", bytes.NewReader([]byte("not a CSR")))
	req.Header.Set("Content-Type", "text/plain")
	estSrv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("EST simpleenroll of text/plain: HTTP %d %s, want 415", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/devices", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("admin request without a token: HTTP %d, want 401", rec.Code)
	}
	if n := h.Held(); n != 3 {
		t.Fatalf("%d events held, want 3 (the decision and both refusals)", n)
	}
	decided := time.Now()

	st.away.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for h.Held() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still held 10 s after the database came back", h.Held())
		}
		time.Sleep(10 * time.Millisecond)
	}
	evs, err := base.TailAudit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action+"/"+ev.Result)
		if ev.Time.Before(t0) || ev.Time.After(decided) {
			t.Errorf("%s at %v: want the time it was decided, between %v and %v", ev.Action, ev.Time, t0, decided)
		}
	}
	if want := []string{"radius.access/accept", "enroll.est.issue/reject", "admin.auth/denied"}; !slices.Equal(got, want) {
		t.Fatalf("chain after the outage: %q, want %q", got, want)
	}
	if r, err := base.VerifyAudit(ctx); err != nil || !r.OK || r.Events != 3 {
		t.Fatalf("audit verify: %+v %v", r, err)
	}
}
