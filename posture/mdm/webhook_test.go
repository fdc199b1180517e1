package mdm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbound/posture/mdm/mdmtest"
)

var testSecret = []byte("0123456789abcdef-webhook")

func newTestWebhook(t *testing.T, mut func(*WebhookConfig)) (*Webhook, *mdmtest.Updater, *mdmtest.Auditor, *mdmtest.Metrics) {
	t.Helper()
	u := mdmtest.NewUpdater(map[string]string{"id:dev-1": "dev-1", "serial:C02XK1ZZJG5H": "dev-2"})
	a, m := &mdmtest.Auditor{}, &mdmtest.Metrics{}
	cfg := WebhookConfig{Secret: testSecret, Updater: u, Auditor: a, Metrics: m, Now: func() time.Time { return time.Unix(1_790_000_000, 0) }}
	if mut != nil {
		mut(&cfg)
	}
	h, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, u, a, m
}

func signedRequest(body string, at time.Time, secret []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/posture/webhook", strings.NewReader(body))
	ts, sig := Sign(secret, at, []byte(body))
	r.Header.Set(DefaultTimestampHeader, ts)
	r.Header.Set(DefaultSignatureHeader, sig)
	return r
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_790_000_000, 0)
	sample, err := os.ReadFile("../../testdata/mdm/webhook-noncompliant.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		reason string // "" = accepted
		report string
	}{
		{name: "ok/device_id", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, testSecret)
		}, status: 200, report: "dev-1 compliant webhook mdm:webhook"},
		{name: "ok/serial_sample_body", req: func() *http.Request { return signedRequest(string(sample), now, testSecret) },
			status: 200, report: "dev-2 noncompliant webhook mdm:webhook"},
		{name: "ok/unknown_id_then_serial", req: func() *http.Request {
			return signedRequest(`{"device_id":"nope","serial":"C02XK1ZZJG5H","state":"unknown"}`, now, testSecret)
		}, status: 200, report: "dev-2 unknown webhook mdm:webhook"},
		{name: "ok/sha256_prefix_and_skew_inside_window", req: func() *http.Request {
			r := signedRequest(`{"device_id":"dev-1","state":"noncompliant"}`, now.Add(4*time.Minute), testSecret)
			r.Header.Set(DefaultSignatureHeader, "sha256="+r.Header.Get(DefaultSignatureHeader))
			return r
		}, status: 200, report: "dev-1 noncompliant webhook mdm:webhook"},
		{name: "reject/method", req: func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, status: 405, reason: RejectMethod},
		{name: "reject/too_large", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant","reason":"`+strings.Repeat("x", 70<<10)+`"}`, now, testSecret)
		}, status: 413, reason: RejectTooLarge},
		{name: "reject/no_signature", req: func() *http.Request {
			r := signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, testSecret)
			r.Header.Del(DefaultSignatureHeader)
			return r
		}, status: 401, reason: RejectUnauthorized},
		{name: "reject/old_timestamp", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now.Add(-6*time.Minute), testSecret)
		}, status: 401, reason: RejectStale},
		{name: "reject/future_timestamp", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now.Add(6*time.Minute), testSecret)
		}, status: 401, reason: RejectStale},
		{name: "reject/timestamp_not_number", req: func() *http.Request {
			r := signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, testSecret)
			r.Header.Set(DefaultTimestampHeader, "yesterday")
			return r
		}, status: 401, reason: RejectStale},
		{name: "reject/wrong_secret", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, []byte("another-secret-of-16"))
		}, status: 401, reason: RejectBadSignature},
		{name: "reject/body_changed_after_signing", req: func() *http.Request {
			r := signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, testSecret)
			good := signedRequest(`{"device_id":"dev-1","state":"noncompliant"}`, now, testSecret)
			good.Header = r.Header
			return good
		}, status: 401, reason: RejectBadSignature},
		{name: "reject/signature_not_hex", req: func() *http.Request {
			r := signedRequest(`{"device_id":"dev-1","state":"compliant"}`, now, testSecret)
			r.Header.Set(DefaultSignatureHeader, "zz")
			return r
		}, status: 401, reason: RejectBadSignature},
		{name: "reject/malformed_json", req: func() *http.Request { return signedRequest(`{"device_id":`, now, testSecret) }, status: 400, reason: RejectMalformed},
		{name: "reject/unknown_field", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant","admin":true}`, now, testSecret)
		}, status: 400, reason: RejectMalformed},
		{name: "reject/trailing_data", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"compliant"}{}`, now, testSecret)
		}, status: 400, reason: RejectMalformed},
		{name: "reject/bad_state", req: func() *http.Request {
			return signedRequest(`{"device_id":"dev-1","state":"fine"}`, now, testSecret)
		}, status: 400, reason: RejectBadState},
		{name: "reject/no_identity", req: func() *http.Request { return signedRequest(`{"state":"compliant"}`, now, testSecret) }, status: 400, reason: RejectNoIdentity},
		{name: "reject/unknown_device", req: func() *http.Request {
			return signedRequest(`{"serial":"NOPE","udid":"NOPE-2","state":"compliant"}`, now, testSecret)
		}, status: 404, reason: RejectUnknownDevice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, u, a, m := newTestWebhook(t, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req())
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tc.reason == "" {
				if got := u.Reports(); !slices.Equal(got, []string{tc.report}) {
					t.Fatalf("reports %q, want %q", got, tc.report)
				}
				return
			}
			var eb ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error != tc.reason || eb.Detail == "" {
				t.Fatalf("body %s (%v), want error %q", rec.Body, err, tc.reason)
			}
			if got := u.Reports(); len(got) != 0 {
				t.Fatalf("rejected request changed posture: %q", got)
			}
			if got := a.Reasons(); len(got) != 1 || !strings.HasSuffix(got[0], ":"+tc.reason) {
				t.Fatalf("audit %q, want one %q", got, tc.reason)
			}
			if !slices.Equal(m.Rejects(), []string{"webhook:" + tc.reason}) {
				t.Fatalf("metrics %q", m.Rejects())
			}
		})
	}
}

func TestWebhookReplay(t *testing.T) {
	t.Parallel()
	h, u, a, _ := newTestWebhook(t, nil)
	now := time.Unix(1_790_000_000, 0)
	body := `{"device_id":"dev-1","state":"noncompliant"}`
	first := signedRequest(body, now, testSecret)
	replay := signedRequest(body, now, testSecret)
	for i, want := range []int{200, 409} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, []*http.Request{first, replay}[i])
		if rec.Code != want {
			t.Fatalf("request %d: status %d, want %d", i, rec.Code, want)
		}
	}
	if len(u.Reports()) != 1 {
		t.Fatalf("replay applied: %q", u.Reports())
	}
	if got := a.Reasons(); !slices.Equal(got, []string{"denied:" + RejectReplayed}) {
		t.Fatalf("audit %q", got)
	}
}

func TestWebhookReplayCacheFullRefuses(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_790_000_000, 0)
	h, u, _, _ := newTestWebhook(t, func(c *WebhookConfig) {
		c.ReplayEntries = 1
		c.Now = func() time.Time { return clock }
	})
	send := func(body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signedRequest(body, clock, testSecret))
		return rec.Code
	}
	if c := send(`{"device_id":"dev-1","state":"noncompliant"}`); c != 200 {
		t.Fatalf("first: %d", c)
	}
	if c := send(`{"device_id":"dev-1","state":"compliant"}`); c != 503 {
		t.Fatalf("second while full: %d, want 503", c)
	}
	clock = clock.Add(DefaultWindow + time.Second) // the first entry expires
	if c := send(`{"device_id":"dev-1","state":"compliant"}`); c != 200 {
		t.Fatalf("after expiry: %d", c)
	}
	if len(u.Reports()) != 2 {
		t.Fatalf("reports %q", u.Reports())
	}
}

func TestWebhookRejectAuditIsRateLimited(t *testing.T) {
	t.Parallel()
	h, _, a, m := newTestWebhook(t, nil)
	for range 150 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	if n := len(a.Reasons()); n != 100 {
		t.Fatalf("%d audit events, want the burst of 100", n)
	}
	if n := len(m.Rejects()); n != 150 {
		t.Fatalf("%d rejects counted, want 150", n)
	}
}

func TestNewWebhookRequiresSecret(t *testing.T) {
	t.Parallel()
	if _, err := NewWebhook(WebhookConfig{Secret: []byte("short"), Updater: mdmtest.NewUpdater(nil)}); err == nil {
		t.Fatal("short secret accepted")
	}
}

func FuzzParseReport(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"dev-1","state":"compliant"}`,
		`{"serial":"C02","udid":"U","state":"noncompliant","reason":"x"}`,
		`{"state":"unknown"}`, `[]`, `{"device_id":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../testdata/mdm/webhook-noncompliant.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseReport(body)
		if err != nil {
			return
		}
		if _, ok := ParseState(r.State); !ok {
			t.Fatalf("accepted bad state %q", r.State)
		}
		if firstIdentity(r) == "" {
			t.Fatal("accepted a report without identity")
		}
	})
}
