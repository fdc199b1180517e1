package dynauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbound/store/badger/badgertest"

	"hardbound/posture"
	"hardbound/posture/mdm"
	"hardbound/store"
)

// TestLoopMDMWebhookToDisconnect runs the whole posture loop with the real
// pieces: a signed MDM webhook marks a device noncompliant through
// posture.Service (Badger store), the Enforcer hears the event, finds the
// live accounting session and disconnects it at the NAS; the audit chain
// records both steps and still verifies.
func TestLoopMDMWebhookToDisconnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := badgertest.Memory(t)
	svc, err := posture.New(st, []posture.Profile{{Name: "laptops", MaxAge: time.Hour, Noncompliant: posture.ActionReject}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.PutDevice(ctx, &store.Device{
		ID: "dev-1", Profile: "laptops", Status: store.DeviceActive,
		Posture: store.Posture{State: store.ComplianceCompliant, Source: "jamf", UpdatedAt: now},
		Aliases: map[string]string{"serial": "C02XK1ZZJG5H"}, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSession(ctx, &store.Session{
		NAS: "ap1", NASAddr: "127.0.0.1", AcctSessionID: "6B2A5B8C1F0E4D3A", DeviceID: "dev-1",
		UserName: "dev-1", CallingStationID: "02-00-00-00-00-01", NASIdentifier: "ap1", StartedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}

	das := newFakeDAS(t, "ap1-coa-secret", nil)
	m := &countMetrics{}
	enf, err := NewEnforcer(EnforcerConfig{
		Events: svc, Sessions: st, Profiles: svc, Auditor: st, Metrics: m,
		Sender: NewSender(SenderConfig{Timeout: 2 * time.Second}),
		NAS: func(name string) (NAS, bool) {
			return NAS{Name: name, Addr: das.addr(), Secret: []byte("ap1-coa-secret")}, name == "ap1"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- enf.Run(runCtx, ready) }()
	<-ready

	secret := []byte("mdm-webhook-shared-secret")
	hook, err := mdm.NewWebhook(mdm.WebhookConfig{Secret: secret, Updater: svc, Auditor: st})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"serial":"C02XK1ZZJG5H","state":"noncompliant"}`
	req := httptest.NewRequest(http.MethodPost, "/posture/webhook", strings.NewReader(body))
	ts, sig := mdm.Sign(secret, time.Now(), []byte(body))
	req.Header.Set(mdm.DefaultTimestampHeader, ts)
	req.Header.Set(mdm.DefaultSignatureHeader, sig)
	rec := httptest.NewRecorder()
	hook.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}

	m.waitEnforced(t, 1)
	stop()
	<-done // audit queue drained
	if n := das.valid.Load(); n != 1 {
		t.Fatalf("NAS received %d valid Disconnect-Requests, want 1", n)
	}
	evs, err := st.TailAudit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action+":"+ev.Result)
	}
	if !slices.Contains(got, "posture.set:ok") || !slices.Contains(got, "radius.disconnect:ack") {
		t.Fatalf("audit tail %q", got)
	}
	if res, err := st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Fatalf("audit chain: %+v, %v", res, err)
	}
}
