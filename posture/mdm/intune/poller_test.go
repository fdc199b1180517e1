package intune

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/posture/mdm/mdmtest"
)

func sample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../../testdata/mdm/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeMS plays Entra ID's token endpoint and Graph's managedDevices.
type fakeMS struct {
	t      *testing.T
	login  *httptest.Server
	graph  *httptest.Server
	mu     sync.Mutex
	tokens int
	// failures are served, in order, before normal answers to Graph.
	failures []func(w http.ResponseWriter)
	// tokenFailures likewise for the token endpoint.
	tokenFailures []func(w http.ResponseWriter)
	page1, page2  string
	graphAuth     []string
	// tokenBody answers valid token requests (default intune-token.json).
	tokenBody string
}

func newFakeMS(t *testing.T) *fakeMS {
	f := &fakeMS{t: t, page2: sample(t, "intune-managed-devices-page2.json"), tokenBody: sample(t, "intune-token.json")}
	f.login = httptest.NewServer(http.HandlerFunc(f.serveToken))
	f.graph = httptest.NewServer(http.HandlerFunc(f.serveGraph))
	t.Cleanup(func() { f.login.Close(); f.graph.Close() })
	f.page1 = strings.ReplaceAll(sample(t, "intune-managed-devices-page1.json"), "{{GRAPH}}", f.graph.URL)
	return f
}

func (f *fakeMS) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tokenFailures) > 0 {
		fail := f.tokenFailures[0]
		f.tokenFailures = f.tokenFailures[1:]
		fail(w)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/tenant-1/oauth2/v2.0/token" {
		http.Error(w, "bad path", http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil ||
		r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != "app-1" ||
		r.PostForm.Get("client_secret") != "s3cret" || r.PostForm.Get("scope") != f.graph.URL+"/.default" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(sample(f.t, "intune-token-error.json")))
		return
	}
	f.tokens++
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(f.tokenBody))
}

func (f *fakeMS) serveGraph(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.graphAuth = append(f.graphAuth, r.Header.Get("Authorization"))
	if len(f.failures) > 0 {
		fail := f.failures[0]
		f.failures = f.failures[1:]
		fail(w)
		return
	}
	if r.Header.Get("Authorization") != "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test-token.sig" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/v1.0/deviceManagement/managedDevices" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("$skiptoken") != "" {
		w.Write([]byte(f.page2))
		return
	}
	if got := r.URL.Query().Get("$select"); got != "id,azureADDeviceId,serialNumber,complianceState" {
		f.t.Errorf("$select = %q", got)
	}
	w.Write([]byte(f.page1))
}

func throttle(retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":{"code":"TooManyRequests"}}`))
	}
}

func status(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

type harness struct {
	p      *Poller
	u      *mdmtest.Updater
	m      *mdmtest.Metrics
	sleeps *[]time.Duration
	clock  *time.Time
}

func newPoller(t *testing.T, f *fakeMS, mut func(*Config)) harness {
	t.Helper()
	u := mdmtest.NewUpdater(map[string]string{
		"intune_id:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0":   "win-1",
		"azure_ad_id:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee": "mac-2",
		"serial:R58N123ABC": "android-3",
	})
	m := &mdmtest.Metrics{}
	var sleeps []time.Duration
	clock := time.Unix(1_790_000_000, 0)
	cfg := Config{
		TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "s3cret",
		LoginURL: f.login.URL, GraphURL: f.graph.URL, Updater: u, Metrics: m,
		Now: func() time.Time { return clock },
		Sleep: func(ctx context.Context, d time.Duration) error {
			sleeps = append(sleeps, d)
			return ctx.Err()
		},
	}
	if mut != nil {
		mut(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return harness{p: p, u: u, m: m, sleeps: &sleeps, clock: &clock}
}

func TestPollReportsOnlyChanges(t *testing.T) {
	t.Parallel()
	f := newFakeMS(t)
	h := newPoller(t, f, nil)
	ctx := context.Background()

	st, err := h.p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"win-1 compliant intune mdm:intune",
		"mac-2 noncompliant intune mdm:intune",  // matched by azureADDeviceId
		"android-3 compliant intune mdm:intune", // inGracePeriod, matched by serial
	}
	if got := h.u.Reports(); !slices.Equal(got, want) {
		t.Fatalf("first poll reports %q, want %q", got, want)
	}
	if st != (Stats{Devices: 4, Reported: 3, Unknown: 1}) {
		t.Fatalf("stats %+v", st)
	}

	// Nothing changed: nothing reported.
	if st, err = h.p.PollOnce(ctx); err != nil || st.Reported != 0 || st.Unchanged != 3 {
		t.Fatalf("second poll %+v, %v", st, err)
	}

	// mac-2 fixed itself; android-3 left Intune.
	f.mu.Lock()
	f.page1 = strings.Replace(f.page1, `"complianceState": "noncompliant"`, `"complianceState": "compliant"`, 1)
	f.page2 = strings.Replace(f.page2, `"R58N123ABC"`, `"GONE"`, 1)
	f.page2 = strings.Replace(f.page2, `c0ffee00-0000-4000-8000-000000000001`, `c0ffee00-0000-4000-8000-00000000ffff`, 1)
	f.mu.Unlock()
	if st, err = h.p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "mac-2 compliant intune mdm:intune", "android-3 unknown intune mdm:intune")
	if got := h.u.Reports(); !slices.Equal(got, want) {
		t.Fatalf("third poll reports %q, want %q", got, want)
	}
	if st.Removed != 1 || st.Reported != 2 {
		t.Fatalf("third poll stats %+v", st)
	}
	if f.tokens != 1 {
		t.Fatalf("%d token requests, want 1 (cached)", f.tokens)
	}
	if got := h.m.Polls(); !slices.Equal(got, []string{"intune:ok", "intune:ok", "intune:ok"}) {
		t.Fatalf("poll metrics %q", got)
	}
}

func TestPollRefreshReReportsUnchanged(t *testing.T) {
	t.Parallel()
	f := newFakeMS(t)
	h := newPoller(t, f, func(c *Config) { c.Refresh = time.Hour })
	ctx := context.Background()
	if _, err := h.p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	*h.clock = h.clock.Add(30 * time.Minute)
	if st, _ := h.p.PollOnce(ctx); st.Reported != 0 {
		t.Fatalf("refreshed too early: %+v", st)
	}
	*h.clock = h.clock.Add(31 * time.Minute)
	if st, _ := h.p.PollOnce(ctx); st.Reported != 3 {
		t.Fatalf("refresh after Refresh: %+v", st)
	}
}

func TestPollBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		failures   []func(http.ResponseWriter)
		tokenFails []func(http.ResponseWriter)
		maxRetries int
		wantSleeps []time.Duration
		wantErr    bool
	}{
		{name: "ok/retry_after_seconds_honoured", failures: []func(http.ResponseWriter){throttle("7")}, wantSleeps: []time.Duration{7 * time.Second}},
		{name: "ok/retry_after_capped", failures: []func(http.ResponseWriter){throttle("3600")}, wantSleeps: []time.Duration{2 * time.Minute}},
		{name: "ok/exponential_without_retry_after", failures: []func(http.ResponseWriter){status(503), status(502), throttle("")},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{name: "ok/token_endpoint_throttled", tokenFails: []func(http.ResponseWriter){throttle("2")}, wantSleeps: []time.Duration{2 * time.Second}},
		{name: "ok/401_refreshes_token_once", failures: []func(http.ResponseWriter){status(401)}},
		{name: "fail/gives_up_after_max_retries", maxRetries: 2, failures: []func(http.ResponseWriter){status(500), status(500), status(500)},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second}, wantErr: true},
		{name: "fail/403_not_retried", failures: []func(http.ResponseWriter){status(403)}, wantErr: true},
		{name: "fail/token_rejected", tokenFails: []func(http.ResponseWriter){func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"invalid_client"}`))
		}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeMS(t)
			f.failures, f.tokenFailures = tc.failures, tc.tokenFails
			h := newPoller(t, f, func(c *Config) { c.MaxRetries = tc.maxRetries })
			st, err := h.p.PollOnce(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(*h.sleeps, tc.wantSleeps) {
				t.Fatalf("sleeps %v, want %v", *h.sleeps, tc.wantSleeps)
			}
			if !tc.wantErr && st.Reported != 3 {
				t.Fatalf("stats %+v", st)
			}
			if tc.wantErr && len(h.u.Reports()) != 0 {
				t.Fatalf("reports after failure: %q", h.u.Reports())
			}
		})
	}
}

// x/oauth2 treats a token as expired 10 s before expires_in runs out, so a
// 1 s token is never reused: each page fetches one, without any waiting.
func TestPollRefetchesExpiredToken(t *testing.T) {
	t.Parallel()
	f := newFakeMS(t)
	f.tokenBody = `{"token_type":"Bearer","expires_in":1,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test-token.sig"}`
	h := newPoller(t, f, nil)
	for range 2 {
		if st, err := h.p.PollOnce(context.Background()); err != nil || st.Devices != 4 {
			t.Fatalf("poll %+v, %v", st, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokens != 4 {
		t.Fatalf("%d token requests for 2 polls of 2 pages, want 4", f.tokens)
	}
}

func TestPollTokenErrorIsClear(t *testing.T) {
	t.Parallel()
	f := newFakeMS(t)
	h := newPoller(t, f, func(c *Config) { c.ClientSecret = "not-the-s3cret" })
	_, err := h.p.PollOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), `intune: token endpoint: HTTP 401 error "invalid_client"`) {
		t.Fatalf("err = %v, want the status and OAuth error code", err)
	}
	// error_description (AADSTS...) can echo the request: not in the error.
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "AADSTS") {
		t.Fatalf("error carries the server's description or the secret: %v", err)
	}
	if len(f.graphAuth) != 0 || len(h.u.Reports()) != 0 {
		t.Fatalf("graph called %d times, %d reports, without a token", len(f.graphAuth), len(h.u.Reports()))
	}
}

func TestPollRefusesForeignNextLink(t *testing.T) {
	t.Parallel()
	var leaked []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
		w.Write([]byte(`{"value":[]}`))
	}))
	defer evil.Close()
	f := newFakeMS(t)
	f.page1 = strings.ReplaceAll(sample(t, "intune-managed-devices-page1.json"), "{{GRAPH}}", evil.URL)
	h := newPoller(t, f, nil)
	_, err := h.p.PollOnce(context.Background())
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if len(leaked) != 0 {
		t.Fatalf("token sent to a foreign host: %q", leaked)
	}
	// Page 1 was applied before the bad link; the removal sweep was not.
	if n := len(h.u.Reports()); n != 2 {
		t.Fatalf("%d reports", n)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"10":                            10 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Sun, 22 Nov 2026 00:00:30 GMT": 30 * time.Second,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestMapCompliance(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"compliant": "compliant", "inGracePeriod": "compliant", "noncompliant": "noncompliant",
		"conflict": "unknown", "error": "unknown", "configManager": "unknown", "unknown": "unknown", "": "unknown",
	} {
		if got := string(MapCompliance(in)); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	u := mdmtest.NewUpdater(nil)
	for name, cfg := range map[string]Config{
		"no_updater":     {TenantID: "t", ClientID: "c", ClientSecret: "s"},
		"no_secret":      {TenantID: "t", ClientID: "c", Updater: u},
		"tenant_path":    {TenantID: "t/../x", ClientID: "c", ClientSecret: "s", Updater: u},
		"relative_graph": {TenantID: "t", ClientID: "c", ClientSecret: "s", Updater: u, GraphURL: "graph.local"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParsePage(f *testing.F) {
	f.Add([]byte(sample(f, "intune-managed-devices-page1.json")))
	f.Add([]byte(sample(f, "intune-managed-devices-page2.json")))
	f.Add([]byte(`{"value":null}`))
	f.Add([]byte(`{"value":[{"id":5}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePage(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if p.Value == nil || len(p.Value) > maxPageDevices {
			t.Fatalf("bad page accepted: %d devices", len(p.Value))
		}
	})
}
