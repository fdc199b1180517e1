package jamf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeJamf serves the Jamf Pro API token and computer-inventory endpoints.
// tokenReply, if set, answers valid token requests instead of the sample.
func fakeJamf(t *testing.T, expireFirst bool, tokenReply http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var tokens atomic.Int32
	var rejected atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/oauth/token":
			if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
				r.PostForm.Get("client_id") != "cid" || r.PostForm.Get("client_secret") != "csecret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tokens.Add(1)
			if tokenReply != nil {
				tokenReply(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(sample(t, "jamf-api-oauth-token.json")))
		case "/api/v1/computers-inventory/13":
			if r.URL.Query().Get("section") != "GROUP_MEMBERSHIPS" || r.Header.Get("Authorization") != "Bearer eyJhbGciOiJIUzI1NiJ9.jamf-test-token.sig" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if expireFirst && !rejected.Swap(true) {
				w.WriteHeader(http.StatusUnauthorized) // token revoked early
				return
			}
			w.Write([]byte(sample(t, "jamf-api-computer-inventory-groups.json")))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &tokens
}

func TestAPIClientGroups(t *testing.T) {
	t.Parallel()
	for _, expire := range []bool{false, true} {
		srv, tokens := fakeJamf(t, expire, nil)
		c, err := NewAPIClient(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret"})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			groups, err := c.Groups(context.Background(), Computer, 13)
			if err != nil {
				t.Fatal(err)
			}
			want := []Group{{1, "All Managed Clients"}, {42, "Noncompliant - FileVault off"}, {7, "Engineering"}}
			if !slices.Equal(groups, want) {
				t.Fatalf("groups %v", groups)
			}
		}
		want := int32(1)
		if expire {
			want = 2
		}
		if n := tokens.Load(); n != want {
			t.Fatalf("expire=%v: %d token requests, want %d", expire, n, want)
		}
		if _, err := c.Groups(context.Background(), MobileDevice, 77); !errors.Is(err, ErrLookupUnsupported) {
			t.Fatalf("mobile lookup: %v", err)
		}
		if _, err := c.Groups(context.Background(), Computer, 14); err == nil {
			t.Fatal("unknown computer: no error")
		}
	}
}

// x/oauth2 treats a token as expired 10 s before expires_in runs out, so a
// 1 s token is never reused: each lookup fetches one, without any waiting.
func TestAPIClientRefetchesExpiredToken(t *testing.T) {
	t.Parallel()
	srv, tokens := fakeJamf(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"eyJhbGciOiJIUzI1NiJ9.jamf-test-token.sig","token_type":"Bearer","expires_in":1}`))
	})
	c, err := NewAPIClient(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Groups(context.Background(), Computer, 13); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Load(); n != 3 {
		t.Fatalf("%d token requests, want 3", n)
	}
}

func TestAPIClientTokenErrorsAreClear(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		reply  http.HandlerFunc
		want   string
	}{
		{name: "fail/bad_secret_status_and_code", secret: "wrong-secret", want: "HTTP 401"},
		{name: "fail/oauth_error_code", secret: "csecret", reply: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_client","error_description":"client csecret is disabled"}`))
		}, want: `HTTP 400 error "invalid_client"`},
		{name: "fail/server_error_page", secret: "csecret", reply: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, strings.Repeat("<html>csecret</html>", 1000), http.StatusServiceUnavailable)
		}, want: "HTTP 503"},
		{name: "fail/no_access_token", secret: "csecret", reply: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token_type":"Bearer","expires_in":299}`))
		}, want: "missing access_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeJamf(t, false, tc.reply)
			c, err := NewAPIClient(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: tc.secret})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Groups(context.Background(), Computer, 13)
			if err == nil || !strings.HasPrefix(err.Error(), "jamf: api token: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want jamf: api token: ...%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || len(err.Error()) > 200 {
				t.Fatalf("error leaks the server's text or the secret: %.300s", err)
			}
		})
	}
}

func TestHandlerWithAPIConfirmsInventory(t *testing.T) {
	t.Parallel()
	srv, _ := fakeJamf(t, false, nil)
	api, err := NewAPIClient(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret"})
	if err != nil {
		t.Fatal(err)
	}
	h, u, _, _ := newHandler(t, api)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, post(sample(t, "jamf-computer-inventory-completed.json"), basic))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := u.Reports(); !slices.Equal(got, []string{"mac-13 noncompliant jamf mdm:jamf"}) {
		t.Fatalf("reports %q", got)
	}
	// Mobile group change: the API cannot confirm, the webhook is trusted.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post(sample(t, "jamf-smartgroup-mobile-membership-change.json"), basic))
	if rec.Code != 200 || len(u.Reports()) != 3 {
		t.Fatalf("status %d reports %q", rec.Code, u.Reports())
	}
}

func TestNewAPIClientValidates(t *testing.T) {
	t.Parallel()
	if _, err := NewAPIClient(APIConfig{BaseURL: "jamf.local", ClientID: "a", ClientSecret: "b"}); err == nil {
		t.Fatal("relative URL accepted")
	}
	if _, err := NewAPIClient(APIConfig{BaseURL: "https://jamf.local"}); err == nil {
		t.Fatal("missing credentials accepted")
	}
}

func FuzzParseGroupMemberships(f *testing.F) {
	f.Add([]byte(sample(f, "jamf-api-computer-inventory-groups.json")))
	f.Add([]byte(`{"groupMemberships":[{"groupId":12}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := parseGroupMemberships(body); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
	})
}
