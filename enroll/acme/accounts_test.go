package acme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest"
	"hardbound/store"
	"hardbound/store/badger"
)

func publicJWK(t *testing.T) (*jose.JSONWebKey, string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: k.Public()}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return jwk, base64.RawURLEncoding.EncodeToString(sum), k
}

// accountStores are the AccountStore implementations, which must behave
// alike apart from durability.
func accountStores(t *testing.T) map[string]acme.AccountStore {
	t.Helper()
	st, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return map[string]acme.AccountStore{"memory": acme.NewMemAccounts(0), "store": acme.StoreAccounts(st)}
}

func TestAccountStoresAgree(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, s acme.AccountStore)
	}{
		{"create_then_lookups_find_it", func(t *testing.T, s acme.AccountStore) {
			key, tp, _ := publicJWK(t)
			a, ok, err := s.Create(t.Context(), &acme.Account{ID: "a1", Key: key, Thumbprint: tp,
				Contact: []string{"mailto:a@example.com"}, Status: acme.AccountValid, CreatedAt: created})
			if err != nil || !ok || a.ID != "a1" {
				t.Fatalf("Create = %+v, %v, %v", a, ok, err)
			}
			for what, get := range map[string]func() (*acme.Account, error){
				"Get":          func() (*acme.Account, error) { return s.Get(t.Context(), "a1") },
				"ByThumbprint": func() (*acme.Account, error) { return s.ByThumbprint(t.Context(), tp) },
			} {
				got, err := get()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got.ID != "a1" || got.Thumbprint != tp || got.Status != acme.AccountValid || !got.CreatedAt.Equal(created) ||
					len(got.Contact) != 1 || got.Contact[0] != "mailto:a@example.com" {
					t.Fatalf("%s = %+v", what, got)
				}
				if gtp, err := got.Key.Thumbprint(crypto.SHA256); err != nil || base64.RawURLEncoding.EncodeToString(gtp) != tp {
					t.Fatalf("%s: key does not round-trip (%v)", what, err)
				}
			}
		}},
		{"second_create_for_one_key_returns_the_first", func(t *testing.T, s acme.AccountStore) {
			key, tp, _ := publicJWK(t)
			if _, _, err := s.Create(t.Context(), &acme.Account{ID: "first", Key: key, Thumbprint: tp, Status: acme.AccountValid}); err != nil {
				t.Fatal(err)
			}
			a, ok, err := s.Create(t.Context(), &acme.Account{ID: "second", Key: key, Thumbprint: tp, Status: acme.AccountValid})
			if err != nil || ok || a.ID != "first" {
				t.Fatalf("second Create = %+v, created=%v, %v; want the first, not created", a, ok, err)
			}
			if _, err := s.Get(t.Context(), "second"); !errors.Is(err, acme.ErrAccountNotFound) {
				t.Fatalf("Get(second) = %v, want ErrAccountNotFound", err)
			}
		}},
		{"concurrent_creates_for_one_key_make_one_account", func(t *testing.T, s acme.AccountStore) {
			key, tp, _ := publicJWK(t)
			const n = 8
			ids := make([]string, n)
			var createdN atomic.Int32
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					a, ok, err := s.Create(context.Background(), &acme.Account{ID: string(rune('a' + i)), Key: key, Thumbprint: tp, Status: acme.AccountValid})
					if err != nil {
						t.Errorf("Create %d: %v", i, err)
						return
					}
					if ok {
						createdN.Add(1)
					}
					ids[i] = a.ID
				})
			}
			wg.Wait()
			if createdN.Load() != 1 {
				t.Fatalf("%d creates reported created, want 1", createdN.Load())
			}
			for i, id := range ids {
				if id != ids[0] {
					t.Fatalf("create %d got account %q, create 0 got %q", i, id, ids[0])
				}
			}
		}},
		{"update_persists_status_and_contact", func(t *testing.T, s acme.AccountStore) {
			key, tp, _ := publicJWK(t)
			a, _, err := s.Create(t.Context(), &acme.Account{ID: "u1", Key: key, Thumbprint: tp, Status: acme.AccountValid})
			if err != nil {
				t.Fatal(err)
			}
			a.Status, a.Contact = acme.AccountDeactivated, []string{"mailto:b@example.com"}
			if err := s.Update(t.Context(), a); err != nil {
				t.Fatal(err)
			}
			got, err := s.ByThumbprint(t.Context(), tp)
			if err != nil || got.Status != acme.AccountDeactivated || len(got.Contact) != 1 || got.Contact[0] != "mailto:b@example.com" {
				t.Fatalf("after Update = %+v, %v", got, err)
			}
		}},
		{"unknown_is_account_not_found", func(t *testing.T, s acme.AccountStore) {
			key, tp, _ := publicJWK(t)
			if _, err := s.Get(t.Context(), "nope"); !errors.Is(err, acme.ErrAccountNotFound) {
				t.Errorf("Get = %v", err)
			}
			if _, err := s.ByThumbprint(t.Context(), tp); !errors.Is(err, acme.ErrAccountNotFound) {
				t.Errorf("ByThumbprint = %v", err)
			}
			if err := s.Update(t.Context(), &acme.Account{ID: "nope", Key: key, Thumbprint: tp, Status: acme.AccountValid}); !errors.Is(err, acme.ErrAccountNotFound) {
				t.Errorf("Update = %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for impl, s := range accountStores(t) {
				t.Run(impl, func(t *testing.T) { tc.run(t, s) })
			}
		})
	}
}

func TestStoreAccountsNeverStoresAPrivateKey(t *testing.T) {
	t.Parallel()
	st, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, tp, priv := publicJWK(t)
	_, _, err = acme.StoreAccounts(st).Create(t.Context(), &acme.Account{ID: "p", Key: &jose.JSONWebKey{Key: priv}, Thumbprint: tp, Status: acme.AccountValid})
	if err == nil {
		t.Fatal("an account with a private key was stored")
	}
	if _, err := st.GetACMEAccount(t.Context(), "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetACMEAccount = %v, want nothing stored", err)
	}
}

// swapHandler lets one listener (one base URL, so account URLs stay valid)
// be served by a new acme.Server, as after a process restart.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// TestAccountSurvivesRestart registers an account, then replaces the ACME
// server and reopens the on-disk store under it, and uses the account
// again. With the in-memory default the account is gone (the reported
// bug); with StoreAccounts it enrolls, and a deactivation survives too.
func TestAccountSurvivesRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		durable bool
	}{
		{"store_accounts_keep_the_account", true},
		{"memory_accounts_forget_it", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			caDir, dataDir := t.TempDir(), t.TempDir()
			issuer := catest.New(t, caDir)
			auth := authority(t)
			var (
				sw  swapHandler
				st  *badger.Store
				err error
			)
			// start (re)opens the store and puts a fresh ACME server behind the listener.
			start := func() {
				t.Helper()
				if st != nil {
					if err := st.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if st, err = badger.Open(ctx, dataDir); err != nil {
					t.Fatal(err)
				}
				deps := acme.Deps{Issuer: issuer, Attester: attest.New(auth.Roots()), Store: st}
				if tc.durable {
					deps.Accounts = acme.StoreAccounts(st)
				}
				s, err := acme.New(acme.Config{Profiles: []acme.Profile{{Name: "devices"}}}, deps)
				if err != nil {
					t.Fatal(err)
				}
				mux := http.NewServeMux()
				mux.Handle("/acme/", s.Handler())
				var h http.Handler = mux
				sw.h.Store(&h)
			}
			start()
			t.Cleanup(func() { st.Close() })
			srv := httptest.NewTLSServer(&sw)
			t.Cleanup(srv.Close)

			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := acmetest.New(ctx, srv.Client(), srv.URL+"/acme/directory", key, jose.ES256)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.Register(ctx); err != nil {
				t.Fatal(err)
			}
			kid := cl.KID

			start() // restart
			_, err = cl.NewOrder(ctx, acme.TypePermanentIdentifier, "SN-RESTART")
			if !tc.durable {
				var p *acmetest.Problem
				if !errors.As(err, &p) || p.Type != acme.ProblemAccountDoesNotExist {
					t.Fatalf("newOrder after restart with in-memory accounts = %v, want accountDoesNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("newOrder after restart: %v", err)
			}
			// The account enrolls, and newAccount finds it again for the same key.
			dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, "SN-RESTART", func(keyAuth string) ([]byte, error) {
				return auth.Apple(dev.Public(), "SN-RESTART", "", keyAuth)
			}, csr)
			if err != nil || len(chain) == 0 {
				t.Fatalf("enroll after restart: %v", err)
			}
			body, err := cl.Sign(ctx, cl.Dir.NewAccount, map[string]any{"onlyReturnExisting": true}, acmetest.SignOptions{JWK: true})
			if err != nil {
				t.Fatal(err)
			}
			r, err := cl.Send(ctx, cl.Dir.NewAccount, body)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusOK || r.Header.Get("Location") != kid {
				t.Fatalf("newAccount(onlyReturnExisting) after restart: status %d, Location %q; want 200 with %s", r.Status, r.Header.Get("Location"), kid)
			}

			// A deactivation is durable as well.
			if _, err := cl.Post(ctx, kid, map[string]any{"status": acme.AccountDeactivated}, nil); err != nil {
				t.Fatalf("deactivate: %v", err)
			}
			start()
			_, err = cl.NewOrder(ctx, acme.TypePermanentIdentifier, "SN-RESTART")
			var p *acmetest.Problem
			if !errors.As(err, &p) || p.Type != acme.ProblemUnauthorized {
				t.Fatalf("newOrder with a deactivated account after restart = %v, want unauthorized", err)
			}
		})
	}
}
