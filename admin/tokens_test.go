package admin_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	tokens "hardbound/admin/token"
	"hardbound/store"
)

// newTokenEnv serves the API over a token file in which the first token
// was made before the server started, as `hardbound token create` does on
// a stopped data dir.
func newTokenEnv(t *testing.T) (*env, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.tokens")
	offline, err := tokens.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := offline.Create("first", tokens.Admin, time.Time{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	set, err := tokens.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newEnv(t, func(d *admin.Deps) { d.Tokens = set })
	return e, first
}

func (e *env) mint(t *testing.T, admin, name, scope, expires string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "scope": scope, "expires": expires})
	code, out := e.call(t, "POST", "/api/v1/tokens", admin, string(body))
	if code != 201 {
		t.Fatalf("create %s: HTTP %d %s", name, code, out)
	}
	var tc struct {
		Token string `json:"token"`
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &tc); err != nil || tc.Token == "" || tc.Scope != scope {
		t.Fatalf("create %s: %s", name, out)
	}
	return tc.Token
}

func TestOfflineFirstTokenWorksAndMakesScopedTokens(t *testing.T) {
	t.Parallel()
	e, first := newTokenEnv(t)
	if code, body := e.call(t, "GET", "/api/v1/devices", first, ""); code != 200 {
		t.Fatalf("first token: HTTP %d %s", code, body)
	}
	ro := e.mint(t, first, "ro", "read", "90d")
	enr := e.mint(t, first, "tpm-flow", "enroll", "")

	tests := []struct {
		name, tok, method, path, body string
		want                          int
	}{
		{"read/list", ro, "GET", "/api/v1/devices", "", 200},
		{"read/show", ro, "GET", "/api/v1/devices/dev-1", "", 200},
		{"read/audit", ro, "GET", "/api/v1/audit/verify", "", 200},
		{"read/quarantine", ro, "POST", "/api/v1/devices/dev-1/quarantine", "", 403},
		{"read/revoke-cert", ro, "POST", "/api/v1/certs/1/revoke", "", 403},
		{"read/challenge", ro, "POST", "/api/v1/scep/challenges", `{"device_id":"x"}`, 403},
		{"read/activate", ro, "POST", "/api/v1/attestations/activate", `{}`, 403},
		{"read/tokens", ro, "GET", "/api/v1/tokens", "", 403},
		{"read/make-token", ro, "POST", "/api/v1/tokens", `{"name":"x","scope":"admin"}`, 403},
		{"enroll/list", enr, "GET", "/api/v1/devices", "", 403},
		{"enroll/quarantine", enr, "POST", "/api/v1/devices/dev-1/quarantine", "", 403},
		{"enroll/challenge", enr, "POST", "/api/v1/scep/challenges", `{"device_id":"x"}`, 403},
		// Past the scope check; no TPM attester is configured here.
		{"enroll/activate", enr, "POST", "/api/v1/attestations/activate", `{}`, 501},
		{"enroll/attest", enr, "POST", "/api/v1/attestations", `{}`, 501},
	}
	for _, tc := range tests {
		code, body := e.call(t, tc.method, tc.path, tc.tok, tc.body)
		if code != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, code, body, tc.want)
			continue
		}
		if code != 403 {
			continue
		}
		if !strings.Contains(body, "forbidden") {
			t.Errorf("%s: body %s", tc.name, body)
		}
		evs, err := e.st.TailAudit(e.ctx, 1)
		if err != nil || len(evs) != 1 {
			t.Fatal(err)
		}
		ev := evs[0]
		wantActor := "admin:ro"
		if tc.tok == enr {
			wantActor = "admin:tpm-flow"
		}
		if ev.Action != "admin.auth" || ev.Result != "denied" || ev.Reason != "scope" || ev.Actor != wantActor ||
			ev.Subject != tc.method+" "+tc.path {
			t.Errorf("%s: audit event %+v", tc.name, ev)
		}
	}
	d, err := e.st.GetDevice(e.ctx, "dev-1")
	if err != nil || d.Status != store.DeviceActive {
		t.Errorf("after refused writes the device is %+v, %v", d, err)
	}

	// The listing shows names and scopes, never a value or hash.
	code, body := e.call(t, "GET", "/api/v1/tokens", first, "")
	if code != 200 || !strings.Contains(body, `"ro"`) || !strings.Contains(body, `"read"`) || strings.Contains(body, ro) {
		t.Errorf("token list: HTTP %d %s", code, body)
	}
	if code, body := e.call(t, "POST", "/api/v1/tokens", first, `{"name":"ro","scope":"read"}`); code != 409 {
		t.Errorf("duplicate name: HTTP %d %s", code, body)
	}
	if code, body := e.call(t, "POST", "/api/v1/tokens", first, `{"name":"x","scope":"root"}`); code != 400 || !strings.Contains(body, "scope") {
		t.Errorf("bad scope: HTTP %d %s", code, body)
	}
	if code, body := e.call(t, "POST", "/api/v1/tokens/ro/revoke", first, ""); code != 200 {
		t.Fatalf("revoke: HTTP %d %s", code, body)
	}
	if code, _ := e.call(t, "GET", "/api/v1/devices", ro, ""); code != 401 {
		t.Errorf("revoked token: HTTP %d, want 401", code)
	}
	if code, body := e.call(t, "POST", "/api/v1/tokens/ro/revoke", first, ""); code != 404 || !strings.Contains(body, `token \"ro\"`) {
		t.Errorf("revoke twice: HTTP %d %s", code, body)
	}
	evs, _ := e.st.TailAudit(e.ctx, 30)
	var made, revoked bool
	for _, ev := range evs {
		made = made || (ev.Action == "token.create" && ev.Subject == "tpm-flow" && ev.Actor == "admin:first" && ev.Reason == "scope=enroll")
		revoked = revoked || (ev.Action == "token.revoke" && ev.Subject == "ro" && ev.Result == "ok")
	}
	if !made || !revoked {
		t.Errorf("token changes not audited (create %v, revoke %v)", made, revoked)
	}
}

func TestExpiredTokenIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "admin.tokens")
	const v = "hb_expired"
	// Written as a file an operator kept: the token expired an hour ago.
	old := []tokens.Token{{Name: "short", SHA256: tokens.Hash(v), Scope: tokens.Admin, ExpiresAt: time.Now().Add(-time.Hour)}}
	if err := os.WriteFile(path, tokens.Format(old), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := tokens.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newEnv(t, func(d *admin.Deps) { d.Tokens = set })
	code, body := e.call(t, "GET", "/api/v1/devices", v, "")
	if code != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("expired token: HTTP %d %s", code, body)
	}
	evs, _ := e.st.TailAudit(e.ctx, 1)
	if len(evs) != 1 || evs[0].Reason != "expired_token" {
		t.Errorf("audit %+v", evs)
	}
}

func TestUnknownAPIPathSaysWhatWasNotFound(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, nil)
	code, body := e.call(t, "GET", "/api/v1/nothing-here", token, "")
	if code != 404 || !strings.Contains(body, "/api/v1/nothing-here") || !json.Valid([]byte(body)) {
		t.Errorf("HTTP %d %s", code, body)
	}
	code, body = e.call(t, "GET", "/api/v1/devices/ghost", token, "")
	if code != 404 || !strings.Contains(body, `device \"ghost\"`) {
		t.Errorf("HTTP %d %s", code, body)
	}
}
