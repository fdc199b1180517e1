package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	"hardbound/admin"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
)

const token = "s3cret-token"

type env struct {
	ctx context.Context
	st  store.Store
	svc *posture.Service
	srv *httptest.Server
	// revoked counts the revocations the store announced: the CRL follows
	// the same announcements (enroll/crl.go).
	revoked atomic.Int32
}

// newEnv serves the API over a real posture.Service and store with one
// bound device; with, if set, adds the optional deps.
func newEnv(t *testing.T, with func(*admin.Deps)) (*env, *devbind.Device) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := catest.New(t, dir)
	st := badgertest.Memory(t)
	svc, err := posture.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, st: st, svc: svc}
	t.Cleanup(st.Watch(func(c store.Change) {
		if c.Kind == store.ChangeCertRevoked || c.Kind == store.ChangeDeviceRevoked {
			e.revoked.Add(1)
		}
	}))
	d, err := devbind.Bind(ctx, c, st, time.Now(), devbind.Request{DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	deps := admin.Deps{Store: st, Standing: svc}
	if with != nil {
		with(&deps)
	}
	a, err := admin.New(deps, []admin.Token{{Name: "ops", SHA256: admin.HashToken(token)}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(a)
	t.Cleanup(e.srv.Close)
	return e, d
}

func (e *env) call(t *testing.T, method, path, tok, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, nil)
	tests := []struct {
		name, tok, reason string
		want              int
	}{
		{"fail/missing", "", "missing_token", 401},
		{"fail/wrong", "nope", "wrong_token", 401},
		{"fail/prefix-of-right-token", token[:5], "wrong_token", 401},
		{"ok", token, "", 200},
	}
	for _, tc := range tests {
		code, body := e.call(t, "GET", "/api/v1/devices", tc.tok, "")
		if code != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, code, body, tc.want)
		}
		if tc.reason == "" {
			continue
		}
		evs, err := e.st.TailAudit(e.ctx, 1)
		if err != nil || len(evs) != 1 || evs[0].Action != "admin.auth" || evs[0].Reason != tc.reason || evs[0].Result != "denied" {
			t.Errorf("%s: last audit event %+v, %v", tc.name, evs, err)
		}
	}
	if code, _ := e.call(t, "GET", "/api/v1/health", "", ""); code != 200 {
		t.Errorf("health without token: %d", code)
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	e, d := newEnv(t, nil)
	tests := []struct {
		name, method, path, body string
		want                     int
		contains                 string
	}{
		{"ok/list", "GET", "/api/v1/devices?status=active", "", 200, `"dev-1"`},
		{"fail/list-bad-status", "GET", "/api/v1/devices?status=zombie", "", 400, "status must be"},
		{"fail/list-bad-limit", "GET", "/api/v1/devices?limit=0", "", 400, "limit"},
		{"ok/show", "GET", "/api/v1/devices/dev-1", "", 200, d.Binding.Serial},
		{"fail/show-unknown", "GET", "/api/v1/devices/nope", "", 404, "not found"},
		{"ok/posture", "POST", "/api/v1/devices/dev-1/posture", `{"state":"noncompliant"}`, 200, `"noncompliant"`},
		{"fail/posture-bad-state", "POST", "/api/v1/devices/dev-1/posture", `{"state":"meh"}`, 400, "state must be"},
		{"fail/posture-unknown-field", "POST", "/api/v1/devices/dev-1/posture", `{"state":"compliant","x":1}`, 400, "unknown field"},
		{"fail/posture-malformed", "POST", "/api/v1/devices/dev-1/posture", `{"state":`, 400, ""},
		{"ok/quarantine", "POST", "/api/v1/devices/dev-1/quarantine", "", 200, `"quarantined"`},
		{"ok/release", "POST", "/api/v1/devices/dev-1/release", "", 200, `"active"`},
		{"fail/quarantine-unknown", "POST", "/api/v1/devices/nope/quarantine", "", 404, ""},
		{"ok/certs", "GET", "/api/v1/certs?device=dev-1", "", 200, d.Binding.Serial},
		{"fail/revoke-bad-reason", "POST", "/api/v1/certs/" + d.Binding.Serial + "/revoke", `{"reason":"bored"}`, 400, "reason"},
		{"ok/revoke-cert", "POST", "/api/v1/certs/" + d.Binding.Serial + "/revoke", `{"reason":"keyCompromise"}`, 200, `"reason": 1`},
		{"ok/revoked-list", "GET", "/api/v1/certs?revoked=true", "", 200, d.Binding.Serial},
		{"ok/revoke-device", "POST", "/api/v1/devices/dev-1/revoke", "", 200, `"revoked"`},
		{"fail/release-revoked", "POST", "/api/v1/devices/dev-1/release", "", 409, "revoked"},
		{"ok/sessions", "GET", "/api/v1/sessions?device=dev-1", "", 200, `"items": []`},
		{"ok/audit", "GET", "/api/v1/audit?n=5", "", 200, `"admin:ops"`},
		{"ok/verify", "GET", "/api/v1/audit/verify", "", 200, `"ok": true`},
		{"fail/challenges-disabled", "POST", "/api/v1/scep/challenges", `{"device_id":"x"}`, 501, ""},
		{"fail/activate-disabled", "POST", "/api/v1/attestations/activate", `{}`, 501, "not enabled"},
		{"fail/attest-disabled", "POST", "/api/v1/attestations", `{}`, 501, "not enabled"},
		{"fail/dev-enroll-outside-dev", "POST", "/api/v1/dev/devices", `{}`, 403, "--dev"},
	}
	for _, tc := range tests {
		code, body := e.call(t, tc.method, tc.path, token, tc.body)
		if code != tc.want || !strings.Contains(body, tc.contains) {
			t.Fatalf("%s: HTTP %d %s; want %d containing %q", tc.name, code, body, tc.want, tc.contains)
		}
		if code >= 300 && !json.Valid([]byte(body)) {
			t.Errorf("%s: error body is not JSON: %s", tc.name, body)
		}
	}
	// Refused actions are audited too.
	evs, err := e.st.TailAudit(e.ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	var refused int
	for _, ev := range evs {
		if ev.Actor == "admin:ops" && ev.Result == "error" {
			refused++
		}
	}
	if refused < 4 {
		t.Errorf("only %d refused admin actions audited", refused)
	}
	if n := e.revoked.Load(); n != 2 {
		t.Errorf("the store announced %d revocations, want 2", n)
	}
}

func TestParseReason(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"": 0, "keyCompromise": 1, "superseded": 4, "9": 9} {
		if got, err := admin.ParseReason(in); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"7", "11", "-1", "nope"} {
		if _, err := admin.ParseReason(in); err == nil {
			t.Errorf("ParseReason(%q) accepted", in)
		}
	}
}
