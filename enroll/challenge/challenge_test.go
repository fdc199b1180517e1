package challenge_test

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // checks the Windows thumbprint we send
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	smscep "github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"
	"golang.org/x/oauth2"

	"hardbound/enroll/challenge"
	"hardbound/enroll/limit"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

// scepEnv is a SCEP server with the given profiles, a minter and a store.
type scepEnv struct {
	store  *badger.Store
	minter *scep.Minter
	srv    *httptest.Server
}

func newSCEPEnv(t *testing.T, profiles []scep.Profile) *scepEnv {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	c := catest.New(t, dir)
	st := badgertest.Memory(t)
	ra, err := scep.LoadOrCreateRA(ctx, dir, c)
	if err != nil {
		t.Fatal(err)
	}
	h, err := scep.New(scep.Config{CA: c, Store: st, RA: ra, Profiles: profiles})
	if err != nil {
		t.Fatal(err)
	}
	m, err := scep.NewMinter(scep.MinterConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/scep/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &scepEnv{store: st, minter: m, srv: srv}
}

func (e *scepEnv) client(profile string) *sceptest.Client {
	return &sceptest.Client{URL: e.srv.URL + "/scep/" + profile, HTTP: e.srv.Client()}
}

func (e *scepEnv) certCount(t *testing.T) int {
	t.Helper()
	certs, _, err := e.store.ListCerts(t.Context(), store.CertFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := sceptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ---- Jamf ----

const jamfBody = `{"webhook":{"id":7,"name":"hardbound challenge","webhookEvent":"SCEPChallenge","eventTimestamp":1763769600000},
"event":{"scepServerUrl":"https://hardbound.example/scep/jamf","payloadIdentifier":"com.example.wifi.scep","payloadTypes":["com.apple.security.scep"]}}`

func TestJamfWebhook(t *testing.T) {
	// MDM-validated SCEP keys are unattested: the profile admits "none",
	// or SCEP would refuse what authentication would reject.
	e := newSCEPEnv(t, []scep.Profile{{Name: "jamf", Platform: "apple", Identity: scep.Identity{Source: scep.IdentityCN, Alias: "serial"},
		Formats: policy.Formats{policy.FormatNone}}})
	j, err := challenge.NewJamf(challenge.JamfConfig{Username: "jamf", Password: "s3cret", Profile: "jamf", Minter: e.minter})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(j)
	t.Cleanup(hook.Close)

	call := func(method, user, pass, body string) (int, string, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), method, hook.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hook.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	for _, tc := range []struct {
		name, method, user, pass, body string
		want                           int
	}{
		{"reject/no_auth", http.MethodPost, "", "", jamfBody, http.StatusUnauthorized},
		{"reject/wrong_password", http.MethodPost, "jamf", "s3cret!", jamfBody, http.StatusUnauthorized},
		{"reject/wrong_user", http.MethodPost, "jamf2", "s3cret", jamfBody, http.StatusUnauthorized},
		{"reject/get", http.MethodGet, "jamf", "s3cret", "", http.StatusMethodNotAllowed},
		{"reject/other_event", http.MethodPost, "jamf", "s3cret", `{"webhook":{"webhookEvent":"ComputerCheckIn"}}`, http.StatusBadRequest},
		{"reject/not_json", http.MethodPost, "jamf", "s3cret", `<xml/>`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, hdr := call(tc.method, tc.user, tc.pass, tc.body)
			if code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without Basic challenge: %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
	if n := e.certCount(t); n != 0 {
		t.Fatalf("%d certs after refused webhook calls", n)
	}

	t.Run("ok/challenge_works_once", func(t *testing.T) {
		code, value, hdr := call(http.MethodPost, "jamf", "s3cret", jamfBody)
		if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Fatalf("status %d type %q", code, hdr.Get("Content-Type"))
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(value) {
			t.Fatalf("challenge %q is not 64 hex characters", value)
		}
		ch, err := e.store.GetChallenge(t.Context(), store.HashChallenge(value))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Source != scep.SourceJamf || ch.DeviceID != "" || ch.Profile != "jamf" {
			t.Errorf("stored challenge %+v", ch)
		}
		cert, err := e.client("jamf").Enroll(t.Context(), sceptest.Request{Key: newKey(t), Challenge: value, Subject: pkix.Name{CommonName: "C02JAMF01"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.store.GetCert(t.Context(), store.HashCert(cert))
		if err != nil {
			t.Fatal(err)
		}
		if b.DeviceID != "C02JAMF01" || b.Attested {
			t.Errorf("binding %+v, want unattested C02JAMF01", b)
		}
		_, err = e.client("jamf").Enroll(t.Context(), sceptest.Request{Key: newKey(t), Challenge: value, Subject: pkix.Name{CommonName: "C02JAMF01"}})
		var f *sceptest.Failure
		if !errors.As(err, &f) || f.FailInfo != smscep.BadRequest {
			t.Fatalf("second use: %v, want FAILURE badRequest", err)
		}
	})
	t.Run("ok/empty_body", func(t *testing.T) {
		if code, _, _ := call(http.MethodPost, "jamf", "s3cret", ""); code != http.StatusOK {
			t.Errorf("status %d", code)
		}
	})
}

func TestNewJamfRequiresCredentials(t *testing.T) {
	m := &scep.Minter{}
	for _, cfg := range []challenge.JamfConfig{
		{Password: "p", Profile: "p", Minter: m},
		{Username: "u", Profile: "p", Minter: m},
		{Username: "u", Password: "p", Minter: m},
		{Username: "u", Password: "p", Profile: "p"},
	} {
		if _, err := challenge.NewJamf(cfg); !errors.Is(err, challenge.ErrConfig) {
			t.Errorf("NewJamf(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}

// ---- Intune ----

// fakeIntune plays Entra (token), Graph (discovery) and the Intune SCEP
// validation service, following the payloads of Microsoft's CsrValidation
// library.
type fakeIntune struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	validateCode  string // answer to validateRequest
	successCode   string
	tokens        map[string]string // token -> scope
	calls         []string          // op names in order
	bodies        map[string]map[string]any
	tokenRequests int
	expiresIn     int  // of issued tokens (default 3599)
	revokeOnce    bool // answer the next ScepActions call 401, as for a revoked token
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newFakeIntune(t *testing.T) *fakeIntune {
	f := &fakeIntune{t: t, validateCode: "Success", successCode: "Success", tokens: map[string]string{}, bodies: map[string]map[string]any{}, expiresIn: 3599}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tenant-1/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", 400)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != "app-1" || r.PostForm.Get("client_secret") != "secret-1" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
			return
		}
		f.mu.Lock()
		f.tokenRequests++
		tok := fmt.Sprintf("tok-%d-%x", f.tokenRequests, r.PostForm.Get("scope"))
		f.tokens[tok] = r.PostForm.Get("scope")
		expiresIn := f.expiresIn
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": expiresIn})
	})
	mux.HandleFunc("GET /v1.0/servicePrincipals/{id}/endpoints", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "appId=0000000a-0000-0000-c000-000000000000" || f.scopeOf(r) != f.srv.URL+"/.default" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": []map[string]any{
			{"providerName": "SomethingElse", "uri": "https://nowhere.invalid"},
			{"providerName": "ScepRequestValidationFEService", "uri": f.srv.URL + "/intune"},
		}})
	})
	mux.HandleFunc("POST /intune/ScepActions/{op}", func(w http.ResponseWriter, r *http.Request) {
		op := r.PathValue("op")
		f.mu.Lock()
		revoked := f.revokeOnce
		f.revokeOnce = false
		f.mu.Unlock()
		if revoked || f.scopeOf(r) != "https://api.manage.microsoft.com//.default" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("api-version") != "2018-02-20" || !uuidRE.MatchString(r.Header.Get("client-request-id")) {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		var body map[string]map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		key := "notification"
		if op == "validateRequest" {
			key = "request"
		}
		inner, ok := body[key]
		if !ok {
			http.Error(w, "missing "+key, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.calls = append(f.calls, op)
		f.bodies[op] = inner
		code := "Success"
		switch op {
		case "validateRequest":
			code = f.validateCode
		case "successNotification":
			code = f.successCode
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "errorDescription": "fake " + code})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIntune) scopeOf(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens[tok]
}

func (f *fakeIntune) snapshot() ([]string, map[string]map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), f.bodies
}

func (f *fakeIntune) client(t *testing.T) *challenge.Intune {
	t.Helper()
	c, err := challenge.NewIntune(challenge.IntuneConfig{
		TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "secret-1",
		LoginURL: f.srv.URL, GraphURL: f.srv.URL, CallerInfo: "hardbound-test/1",
		HTTPClient: f.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func intuneProfile(v scep.Validator) scep.Profile {
	return scep.Profile{
		Name: "intune", Platform: "windows", Validator: v,
		Identity: scep.Identity{Source: scep.IdentitySANURI, URIPrefix: "IntuneDeviceId://", Alias: "intune_id"},
		Formats:  policy.Formats{policy.FormatNone},
	}
}

func intuneRequest(t *testing.T) sceptest.Request {
	u, err := url.Parse("IntuneDeviceId://0f7c6a8e-1111-2222-3333-444455556666")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := url.Parse("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001")
	if err != nil {
		t.Fatal(err)
	}
	return sceptest.Request{
		Key:       newKey(t),
		Challenge: strings.Repeat("opaque-intune-blob/", 40), // Intune's encrypted blob: never in our store
		Subject:   pkix.Name{CommonName: "DESKTOP-1"},
		URIs:      []*url.URL{u, sid},
	}
}

func TestIntuneValidationOK(t *testing.T) {
	f := newFakeIntune(t)
	e := newSCEPEnv(t, []scep.Profile{intuneProfile(f.client(t))})
	req := intuneRequest(t)
	cert, err := e.client("intune").Enroll(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	calls, bodies := f.snapshot()
	if strings.Join(calls, ",") != "validateRequest,successNotification" {
		t.Fatalf("calls %v", calls)
	}
	v := bodies["validateRequest"]
	csrDER, err := base64.StdEncoding.DecodeString(v["certificateRequest"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := x509util.ParseChallengePassword(csrDER); err != nil || cp != req.Challenge {
		t.Errorf("validateRequest CSR challenge %q %v", cp, err)
	}
	if v["transactionId"] == "" || v["callerInfo"] != "hardbound-test/1" {
		t.Errorf("validateRequest body %v", v)
	}
	s := bodies["successNotification"]
	thumb := sha1.Sum(cert.Raw) //nolint:gosec // see import
	if s["certificateThumbprint"] != strings.ToUpper(hex.EncodeToString(thumb[:])) ||
		!strings.EqualFold(s["certificateSerialNumber"].(string), cert.SerialNumber.Text(16)) ||
		s["transactionId"] != v["transactionId"] || s["issuingCertificateAuthority"] == "" ||
		s["certificateExpirationDateUtc"] == "" {
		t.Errorf("successNotification body %v", s)
	}
	b, err := e.store.GetCert(t.Context(), store.HashCert(cert))
	if err != nil {
		t.Fatal(err)
	}
	if b.DeviceID != "0f7c6a8e-1111-2222-3333-444455556666" || b.Attested || b.Profile != "intune" {
		t.Errorf("binding %+v", b)
	}
	d, err := e.store.FindDeviceByAlias(t.Context(), "intune_id", "0f7c6a8e-1111-2222-3333-444455556666")
	if err != nil || d.Platform != "windows" {
		t.Errorf("device by intune_id: %v %+v", err, d)
	}
}

func TestIntuneValidationRefusals(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(f *fakeIntune) *challenge.Intune
		wantCalls string
	}{
		{
			name: "reject/validate_challenge_expired",
			setup: func(f *fakeIntune) *challenge.Intune {
				f.validateCode = "ChallengeExpired"
				return f.client(t)
			},
			wantCalls: "validateRequest,failureNotification",
		},
		{
			name: "reject/success_notification_failed",
			setup: func(f *fakeIntune) *challenge.Intune {
				f.successCode = "SigningCertThumbprintMismatch"
				return f.client(t)
			},
			wantCalls: "validateRequest,successNotification,failureNotification",
		},
		{
			name: "reject/bad_client_secret",
			setup: func(f *fakeIntune) *challenge.Intune {
				c, err := challenge.NewIntune(challenge.IntuneConfig{TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "wrong",
					LoginURL: f.srv.URL, GraphURL: f.srv.URL, HTTPClient: f.srv.Client()})
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			wantCalls: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeIntune(t)
			e := newSCEPEnv(t, []scep.Profile{intuneProfile(tc.setup(f))})
			_, err := e.client("intune").Enroll(t.Context(), intuneRequest(t))
			var fail *sceptest.Failure
			if !errors.As(err, &fail) || fail.FailInfo != smscep.BadRequest {
				t.Fatalf("enroll: %v, want FAILURE badRequest", err)
			}
			if n := e.certCount(t); n != 0 {
				t.Errorf("%d certs recorded after Intune refusal", n)
			}
			calls, bodies := f.snapshot()
			if got := strings.Join(calls, ","); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if fn, ok := bodies["failureNotification"]; ok {
				if fn["hResult"] == nil || !strings.Contains(fn["errorDescription"].(string), "mdm_rejected") {
					t.Errorf("failureNotification body %v", fn)
				}
			}
			evs, err := e.store.TailAudit(t.Context(), 1)
			if err != nil || len(evs) != 1 || evs[0].Result != "reject" || !strings.HasPrefix(evs[0].Reason, "mdm_rejected") {
				t.Errorf("audit %v %+v", err, evs)
			}
		})
	}
}

func TestIntuneErrorCarriesCode(t *testing.T) {
	f := newFakeIntune(t)
	f.validateCode = "SubjectNameMismatch"
	c := f.client(t)
	err := c.Validate(t.Context(), "txn-1", []byte{0x30, 0x00})
	var ie *challenge.IntuneError
	if !errors.As(err, &ie) || !errors.Is(err, challenge.ErrIntuneRejected) {
		t.Fatalf("Validate: %v, want IntuneError", err)
	}
	if ie.Code != "SubjectNameMismatch" || ie.TransactionID != "txn-1" || !uuidRE.MatchString(ie.RequestID) {
		t.Errorf("error %+v", ie)
	}
	// Tokens are cached: one for Graph discovery, one for Intune.
	if err := c.Validate(t.Context(), "txn-2", []byte{0x30, 0x00}); err == nil {
		t.Fatal("second Validate succeeded")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokenRequests != 2 {
		t.Errorf("%d token requests, want 2 (cached)", f.tokenRequests)
	}
}

func TestIntuneTokenLifecycle(t *testing.T) {
	tests := []struct {
		name       string
		expiresIn  int
		revokeOnce bool
		// token requests for two Validate calls: the first also fetches
		// Graph's for discovery.
		wantTokens int
	}{
		{name: "ok/cached_while_valid", expiresIn: 3599, wantTokens: 2},
		// x/oauth2 deems a token expired 10 s before expires_in runs out:
		// a 1 s Intune token is fetched again for every call, no waiting.
		{name: "ok/expired_token_refetched", expiresIn: 1, wantTokens: 3},
		{name: "ok/401_refetches_once", expiresIn: 3599, revokeOnce: true, wantTokens: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeIntune(t)
			f.expiresIn, f.revokeOnce = tc.expiresIn, tc.revokeOnce
			c := f.client(t)
			for _, txn := range []string{"txn-1", "txn-2"} {
				if err := c.Validate(t.Context(), txn, []byte{0x30, 0x00}); err != nil {
					t.Fatalf("Validate %s: %v", txn, err)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.tokenRequests != tc.wantTokens {
				t.Errorf("%d token requests, want %d", f.tokenRequests, tc.wantTokens)
			}
		})
	}
}

func TestIntuneTokenErrorIsClear(t *testing.T) {
	f := newFakeIntune(t)
	c, err := challenge.NewIntune(challenge.IntuneConfig{TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "wrong-secret",
		LoginURL: f.srv.URL, GraphURL: f.srv.URL, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(t.Context(), "txn-1", []byte{0x30, 0x00})
	if err == nil || !strings.Contains(err.Error(), `HTTP 401 error="invalid_client"`) {
		t.Fatalf("Validate: %v, want the token endpoint's status and error code", err)
	}
	// error_description can echo the request: it stays out of the message.
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "AADSTS") {
		t.Errorf("error carries the secret or the server's description: %v", err)
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("error does not unwrap to the 401 RetrieveError: %v", err)
	}
	if errors.Is(err, challenge.ErrIntuneRejected) {
		t.Error("a token failure is not Intune's verdict on the request")
	}
}

func TestNewIntuneValidation(t *testing.T) {
	for _, cfg := range []challenge.IntuneConfig{
		{ClientID: "a", ClientSecret: "b"},
		{TenantID: "t", ClientSecret: "b"},
		{TenantID: "t", ClientID: "a"},
		{TenantID: "t", ClientID: "a", ClientSecret: "b", ValidationURL: "ftp://x"},
	} {
		if _, err := challenge.NewIntune(cfg); !errors.Is(err, challenge.ErrConfig) {
			t.Errorf("NewIntune(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}

// The wiring passes the real types; keep them assignable.
var (
	_ scep.Validator    = (*challenge.Intune)(nil)
	_ challenge.Minter  = (*scep.Minter)(nil)
	_ challenge.Limiter = (*limit.Limiter)(nil)
	_ http.Handler      = (*challenge.Jamf)(nil)
)
