package radius

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/store"
	"hardbound/store/badger"
)

type failingAudit struct{}

func (failingAudit) AppendAudit(context.Context, *store.AuditEvent) error {
	return errors.New("audit disk full")
}

func (failingAudit) AppendAudits(context.Context, []*store.AuditEvent) error {
	return errors.New("audit disk full")
}

// seedSessions gives the NAS at 192.0.2.10 (client ap1) two live sessions
// from before t, one already stopped and one started after t; its
// neighbour at 192.0.2.11 (the same client) and ap2 one live session each.
func seedSessions(t *testing.T, m *memSessions, at time.Time) {
	t.Helper()
	const a = "192.0.2.10"
	for _, s := range []store.Session{
		{NAS: "ap1", NASAddr: a, AcctSessionID: "old1", DeviceID: "dev-1", StartedAt: at.Add(-2 * time.Hour)},
		{NAS: "ap1", NASAddr: a, AcctSessionID: "old2", DeviceID: "dev-2", StartedAt: at.Add(-time.Hour)},
		{NAS: "ap1", NASAddr: a, AcctSessionID: "done", DeviceID: "dev-1", StartedAt: at.Add(-3 * time.Hour),
			StoppedAt: at.Add(-2 * time.Hour), TerminateCause: 1},
		{NAS: "ap1", NASAddr: a, AcctSessionID: "new", DeviceID: "dev-3", StartedAt: at.Add(time.Minute)},
		{NAS: "ap1", NASAddr: "192.0.2.11", AcctSessionID: "neighbour", DeviceID: "dev-5", StartedAt: at.Add(-2 * time.Hour)},
		{NAS: "ap2", NASAddr: "203.0.113.5", AcctSessionID: "other", DeviceID: "dev-4", StartedAt: at.Add(-2 * time.Hour)},
	} {
		if err := m.PutSession(t.Context(), &s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAccountingOnOffClosesTheNASSessions(t *testing.T) {
	t.Parallel()
	// The harness clock reads 01:00; the NAS says it rebooted at 00:50.
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	reboot := now.Add(-10 * time.Minute)
	ts := &lradius.AVP{Type: attrEventTimestamp, Attribute: u32(uint32(reboot.Unix()))}
	closedAt := func(at time.Time, cause uint32, keys ...string) map[string]store.Session {
		m := map[string]store.Session{}
		for _, k := range keys {
			m[k] = store.Session{StoppedAt: at, TerminateCause: cause}
		}
		return m
	}
	tests := []struct {
		name       string
		status     uint32
		extra      []*lradius.AVP
		failClose  error
		failAudit  bool
		wantResp   bool
		wantClosed map[string]store.Session // "nas/id" -> stop time and cause; the rest keep their state
		wantAudit  *store.AuditEvent
		wantMetric string
		mod        func(*Config)
	}{
		{
			name: "on_closes_sessions_started_before_the_reboot", status: acctOn, extra: []*lradius.AVP{ts},
			wantResp:   true,
			wantClosed: closedAt(reboot, terminateNASReboot, "ap1/old1", "ap1/old2"),
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_on", Subject: "ap1", Result: "ok",
				Reason: "closed 2 sessions", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_on/ok",
		},
		{
			name: "off_keeps_the_nas_terminate_cause", status: acctOff,
			extra:      []*lradius.AVP{ts, {Type: attrAcctTerminateCause, Attribute: u32(10)}},
			wantResp:   true,
			wantClosed: closedAt(reboot, 10, "ap1/old1", "ap1/old2"),
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_off", Subject: "ap1", Result: "ok",
				Reason: "closed 2 sessions", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_off/ok",
		},
		{
			// No Event-Timestamp: a replay could not be told apart, so it
			// is answered (the NAS stops retransmitting) and closes nothing.
			name: "without_timestamp_is_refused", status: acctOn,
			extra:    []*lradius.AVP{{Type: attrAcctDelayTime, Attribute: u32(30)}},
			wantResp: true,
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_on", Subject: "ap1", Result: "reject",
				Reason: "refused_no_timestamp", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_on/refused_no_timestamp",
		},
		{
			// Allowed for the client: now - Acct-Delay-Time (00:59:30), after "new" started.
			name: "without_timestamp_when_allowed_uses_now_minus_delay", status: acctOn,
			extra:      []*lradius.AVP{{Type: attrAcctDelayTime, Attribute: u32(30)}},
			mod:        func(c *Config) { c.Clients[0].OnOffWithoutTimestamp = true },
			wantResp:   true,
			wantClosed: closedAt(now.Add(-30*time.Second), terminateNASReboot, "ap1/old1", "ap1/old2", "ap1/new"),
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_on", Subject: "ap1", Result: "ok",
				Reason: "closed 3 sessions", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_on/ok",
		},
		{
			name: "stale_timestamp_is_refused", status: acctOn,
			extra:    []*lradius.AVP{{Type: attrEventTimestamp, Attribute: u32(uint32(now.Add(-2 * time.Hour).Unix()))}},
			wantResp: true,
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_on", Subject: "ap1", Result: "reject",
				Reason: "refused_stale", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_on/refused_stale",
		},
		{
			name: "future_timestamp_is_refused", status: acctOn,
			extra:    []*lradius.AVP{{Type: attrEventTimestamp, Attribute: u32(uint32(now.Add(time.Hour).Unix()))}},
			wantResp: true,
			wantAudit: &store.AuditEvent{Actor: "nas:ap1", Action: "radius.accounting_on", Subject: "ap1", Result: "reject",
				Reason: "refused_future", Source: "192.0.2.10"},
			wantMetric: "acct/accounting_on/refused_future",
		},
		{
			name: "store_error_sends_no_response_and_audits_nothing", status: acctOn, extra: []*lradius.AVP{ts},
			failClose:  errors.New("disk full"),
			wantResp:   false,
			wantMetric: "drop/store_error",
		},
		{
			name: "audit_error_still_answers", status: acctOn, extra: []*lradius.AVP{ts},
			failAudit:  true,
			wantResp:   true,
			wantClosed: closedAt(reboot, terminateNASReboot, "ap1/old1", "ap1/old2"),
			wantMetric: "audit_error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.mod)
			seedSessions(t, h.sessions, reboot)
			before := map[string]store.Session{}
			for k, s := range h.sessions.m {
				before[k] = s
			}
			h.sessions.failClose = tc.failClose
			if tc.failAudit {
				h.s.audit = failingAudit{}
			}

			req := acctRequest(t, h.secret, 1, tc.status, "", tc.extra...)
			resp := h.handle(h.nasAddr, portAcct, req)
			if got := resp != nil; got != tc.wantResp {
				t.Fatalf("response = %v, want %v", got, tc.wantResp)
			}
			if resp != nil {
				if p := checkResponse(t, resp, req, h.secret); p.Code != lradius.CodeAccountingResponse {
					t.Fatalf("code %v", p.Code)
				}
			}
			for k, old := range before {
				got := h.sessions.m[k]
				want := old
				if c, ok := tc.wantClosed[k]; ok {
					want.StoppedAt, want.UpdatedAt, want.TerminateCause = c.StoppedAt, c.StoppedAt, c.TerminateCause
				}
				if !got.StoppedAt.Equal(want.StoppedAt) || got.TerminateCause != want.TerminateCause ||
					got.DeviceID != want.DeviceID || !got.StartedAt.Equal(want.StartedAt) {
					t.Errorf("session %s = stopped %v cause %d, want stopped %v cause %d",
						k, got.StoppedAt, got.TerminateCause, want.StoppedAt, want.TerminateCause)
				}
			}
			evs := h.audited()
			switch {
			case tc.wantAudit == nil && len(evs) != 0:
				t.Fatalf("audited %+v, want nothing", evs)
			case tc.wantAudit != nil:
				if len(evs) != 1 {
					t.Fatalf("%d audit events, want 1", len(evs))
				}
				ev := evs[0]
				w := tc.wantAudit
				if ev.Actor != w.Actor || ev.Action != w.Action || ev.Subject != w.Subject || ev.Result != w.Result ||
					!strings.HasPrefix(ev.Reason, w.Reason+" ") || ev.Source != w.Source || !ev.Time.Equal(now) {
					t.Fatalf("audit event = %+v, want %+v at %v", ev, w, now)
				}
			}
			if h.metrics.get(tc.wantMetric) != 1 {
				t.Fatalf("%s not counted once: %v", tc.wantMetric, h.metrics)
			}
		})
	}
}

// After a failed close the NAS retransmits; the retry closes the sessions,
// and a later Accounting-On finds nothing left to close.
func TestAccountingOnIsRetriedAfterStoreErrorAndIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	reboot := time.Date(2026, 11, 22, 0, 50, 0, 0, time.UTC)
	seedSessions(t, h.sessions, reboot)
	ts := &lradius.AVP{Type: attrEventTimestamp, Attribute: u32(uint32(reboot.Unix()))}
	req := acctRequest(t, h.secret, 7, acctOn, "", ts)

	h.sessions.failClose = errors.New("disk full")
	if h.handle(h.nasAddr, portAcct, req) != nil {
		t.Fatal("answered although the sessions were not closed")
	}
	h.sessions.failClose = nil
	if h.handle(h.nasAddr, portAcct, req) == nil {
		t.Fatal("retransmission after the store recovered was not answered")
	}
	// hostapd retransmits with a new identifier when Acct-Delay-Time changes.
	if h.handle(h.nasAddr, portAcct, acctRequest(t, h.secret, 8, acctOn, "", ts,
		&lradius.AVP{Type: attrAcctDelayTime, Attribute: u32(3)})) == nil {
		t.Fatal("second Accounting-On not answered")
	}
	// The second carries the same Event-Timestamp: a replay of an On/Off
	// already applied is answered and closes nothing.
	var reasons []string
	for _, ev := range h.audited() {
		reasons = append(reasons, strings.Join(strings.Fields(ev.Reason)[:3], " "))
	}
	if len(reasons) != 2 || reasons[0] != "closed 2 sessions" || !strings.HasPrefix(reasons[1], "refused_stale ") {
		t.Fatalf("audit reasons = %q, want [closed 2 sessions, refused_stale ...]", reasons)
	}
	for _, k := range []string{"ap1/old1", "ap1/old2"} {
		if s, _ := h.sessions.get("ap1", k[len("ap1/"):]); s.Live() {
			t.Errorf("%s still live", k)
		}
	}
	if s, _ := h.sessions.get("ap2", "other"); !s.Live() {
		t.Error("another NAS's session was closed")
	}
}

// TestInteropRadclientAccountingOnClosesStoredSessions runs the real server
// over the real (Badger) store and lets FreeRADIUS's radclient play a NAS
// that starts two sessions, reboots and says Accounting-On.
func TestInteropRadclientAccountingOnClosesStoredSessions(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "radclient")
	st, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pki := newPKI(t)
	s, err := New(Config{Clients: []Client{{
		Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret), RequireMessageAuthenticator: true,
	}}}, pki.eapServer(t), pki.decider(), st, st, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	auth, acct := listenLoopback(t), listenLoopback(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, auth, acct) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	server := acct.LocalAddr().String()
	for _, stdin := range []string{
		"Acct-Status-Type = Start\nAcct-Session-Id = \"rc-1\"\n",
		"Acct-Status-Type = Start\nAcct-Session-Id = \"rc-2\"\n",
		fmt.Sprintf("Acct-Status-Type = Accounting-On\nAcct-Session-Id = \"boot\"\nEvent-Timestamp = %d\n", time.Now().Unix()+30),
	} {
		out, err := runTool(t, 20*time.Second, stdin, bin, "-x", "-r", "2", "-t", "2", server, "acct", testSecret)
		if err != nil || !strings.Contains(out, "Received Accounting-Response") {
			t.Fatalf("radclient (%q): err=%v:\n%s", stdin, err, out)
		}
	}
	live, _, err := st.ListSessions(t.Context(), "", true, store.Page{})
	if err != nil || len(live) != 0 {
		t.Fatalf("live sessions after Accounting-On: %d (%v), want 0", len(live), err)
	}
	for _, id := range []string{"rc-1", "rc-2"} {
		sess, err := st.GetSession(t.Context(), "lo", id)
		if err != nil || sess.Live() || sess.TerminateCause != terminateNASReboot {
			t.Fatalf("session %s = %+v (%v), want stopped with NAS-Reboot", id, sess, err)
		}
	}
	evs, err := st.TailAudit(t.Context(), 1)
	if err != nil || len(evs) != 1 || evs[0].Action != "radius.accounting_on" || evs[0].Actor != "nas:lo" ||
		!strings.HasPrefix(evs[0].Reason, "closed 2 sessions ") || evs[0].Result != "ok" {
		t.Fatalf("last audit event = %+v (%v)", evs, err)
	}
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
