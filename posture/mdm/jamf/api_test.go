package jamf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// fakeJamf serves the Jamf Pro API token and computer-inventory endpoints.
func fakeJamf(t *testing.T, expireFirst bool) (*httptest.Server, *atomic.Int32) {
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
		srv, tokens := fakeJamf(t, expire)
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

func TestAPIClientTokenExpiry(t *testing.T) {
	t.Parallel()
	srv, tokens := fakeJamf(t, false)
	clock := time.Unix(1_790_000_000, 0)
	c, _ := NewAPIClient(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret", Now: func() time.Time { return clock }})
	c.Groups(context.Background(), Computer, 13)
	clock = clock.Add(4 * time.Minute) // 299 s token, refreshed at 80 % of its life
	c.Groups(context.Background(), Computer, 13)
	if n := tokens.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
}

func TestHandlerWithAPIConfirmsInventory(t *testing.T) {
	t.Parallel()
	srv, _ := fakeJamf(t, false)
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
