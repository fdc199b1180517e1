package entra_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"hardbound/posture/mdm/entra"
)

func TestNew(t *testing.T) {
	t.Parallel()
	creds := entra.Config{TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "s3cret"}
	with := func(f func(*entra.Config)) entra.Config {
		c := creds
		f(&c)
		return c
	}
	tests := []struct {
		name                string
		cfg                 entra.Config
		wantErr             bool
		wantToken, wantGrph string
	}{
		{name: "ok/public-cloud", cfg: creds,
			wantToken: "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token", wantGrph: "https://graph.microsoft.com"},
		{name: "ok/trailing-slashes", cfg: with(func(c *entra.Config) {
			c.LoginURL, c.GraphURL = "https://login.microsoftonline.us/", "https://graph.microsoft.us//"
		}), wantToken: "https://login.microsoftonline.us/tenant-1/oauth2/v2.0/token", wantGrph: "https://graph.microsoft.us"},
		{name: "ok/domain-tenant", cfg: with(func(c *entra.Config) { c.TenantID = "contoso.onmicrosoft.com" }),
			wantToken: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token", wantGrph: "https://graph.microsoft.com"},
		{name: "ok/escaped-tenant", cfg: with(func(c *entra.Config) { c.TenantID = "a b" }),
			wantToken: "https://login.microsoftonline.com/a%20b/oauth2/v2.0/token", wantGrph: "https://graph.microsoft.com"},
		{name: "fail/no-tenant", cfg: with(func(c *entra.Config) { c.TenantID = "" }), wantErr: true},
		{name: "fail/no-client", cfg: with(func(c *entra.Config) { c.ClientID = "" }), wantErr: true},
		{name: "fail/no-secret", cfg: with(func(c *entra.Config) { c.ClientSecret = "" }), wantErr: true},
		{name: "fail/tenant-path", cfg: with(func(c *entra.Config) { c.TenantID = "t/../x" }), wantErr: true},
		{name: "fail/tenant-query", cfg: with(func(c *entra.Config) { c.TenantID = "t?x" }), wantErr: true},
		{name: "fail/tenant-fragment", cfg: with(func(c *entra.Config) { c.TenantID = "t#x" }), wantErr: true},
		{name: "fail/relative-graph", cfg: with(func(c *entra.Config) { c.GraphURL = "graph.local" }), wantErr: true},
		{name: "fail/ftp-login", cfg: with(func(c *entra.Config) { c.LoginURL = "ftp://login.local" }), wantErr: true},
		{name: "fail/hostless-login", cfg: with(func(c *entra.Config) { c.LoginURL = "https://" }), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app, err := entra.New(tc.cfg)
			if tc.wantErr {
				if !errors.Is(err, entra.ErrConfig) {
					t.Fatalf("New(%+v) = %v, want ErrConfig", tc.cfg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := app.TokenURL(); got != tc.wantToken {
				t.Errorf("TokenURL() = %q, want %q", got, tc.wantToken)
			}
			if got := app.GraphURL(); got != tc.wantGrph {
				t.Errorf("GraphURL() = %q, want %q", got, tc.wantGrph)
			}
			if got, want := app.GraphScope(), tc.wantGrph+"/.default"; got != want {
				t.Errorf("GraphScope() = %q, want %q", got, want)
			}
		})
	}
}

func TestOnGraph(t *testing.T) {
	t.Parallel()
	app, err := entra.New(entra.Config{TenantID: "t", ClientID: "c", ClientSecret: "s", GraphURL: "https://graph.test"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://graph.test/v1.0/deviceManagement/managedDevices?$skiptoken=x", true},
		{"https://graph.test", true},
		{"http://graph.test/v1.0", false},
		{"https://graph.test:8443/v1.0", false},
		{"https://evil.test/v1.0", false},
		{"https://graph.test.evil.test/v1.0", false},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := app.OnGraph(u); got != tc.want {
			t.Errorf("OnGraph(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

// The bearer posts the client credentials as form fields to the tenant's
// token endpoint and asks for the scope it was made for.
func TestBearerFetchesFromTheTenant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, scope string
	}{
		{"graph", "https://graph.test/.default"},
		{"intune", "https://api.manage.microsoft.com//.default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/tenant-1/oauth2/v2.0/token" {
					http.Error(w, "wrong endpoint "+r.URL.Path, http.StatusNotFound)
					return
				}
				if _, _, basic := r.BasicAuth(); basic {
					http.Error(w, "secret in Authorization", http.StatusBadRequest)
					return
				}
				if r.PostFormValue("grant_type") != "client_credentials" || r.PostFormValue("client_id") != "app-1" ||
					r.PostFormValue("client_secret") != "s3cret" || r.PostFormValue("scope") != tc.scope {
					http.Error(w, "bad form", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-" + tc.name, "token_type": "Bearer", "expires_in": 3600})
			}))
			t.Cleanup(srv.Close)
			app, err := entra.New(entra.Config{TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "s3cret",
				LoginURL: srv.URL, GraphURL: "https://graph.test"})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := app.Bearer(tc.scope, srv.Client()).Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok != "tok-"+tc.name {
				t.Errorf("token = %q, want %q", tok, "tok-"+tc.name)
			}
		})
	}
}
