package acme_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/acme"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/limit"
	"hardbound/store"
	"hardbound/store/policy"
)

func wantProblem(t *testing.T, r *response, status int, typ string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.body)
	}
	got, detail := r.problem(t)
	if got != typ {
		t.Fatalf("problem type = %q, want %q (%s)", got, typ, detail)
	}
	return detail
}

// readyOrder runs an enrollment up to a valid challenge.
func readyOrder(t *testing.T, e *env, c *testClient, serial string) (orderObj, *ecdsaKey) {
	t.Helper()
	o := c.newOrder(acme.TypePermanentIdentifier, serial)
	chURL, keyAuth := c.challenge(o)
	dev := p256(t)
	c.mustPost(chURL, attPayload(attestFor(t, e.auth, policy.FormatApple, dev, serial, keyAuth)), http.StatusOK, nil)
	return o, dev
}

func TestRequestChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})

	t.Run("reject/bad_nonce_gets_fresh_nonce", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		r := c.send(c.Dir.NewOrder, c.sign(c.Dir.NewOrder, map[string]any{}, signOpts{Nonce: "bm90LWEtbm9uY2U"}))
		wantProblem(t, r, http.StatusBadRequest, acme.ProblemBadNonce)
		if r.header.Get("Replay-Nonce") == "" {
			t.Fatal("badNonce response carries no fresh Replay-Nonce")
		}
		// The fresh nonce works.
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-NONCE")
		if o.Status != "pending" {
			t.Fatalf("order after badNonce retry: %+v", o)
		}
	})

	t.Run("reject/replayed_request", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		body := c.sign(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": acme.TypePermanentIdentifier, "value": "SN-REPLAY"}}}, signOpts{})
		if r := c.send(c.Dir.NewOrder, body); r.status != http.StatusCreated {
			t.Fatalf("first send = %d: %s", r.status, r.body)
		}
		wantProblem(t, c.send(c.Dir.NewOrder, body), http.StatusBadRequest, acme.ProblemBadNonce)
	})

	t.Run("reject/wrong_url_header", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		body := c.sign(c.Dir.NewOrder, map[string]any{}, signOpts{URL: strings.Replace(c.Dir.NewOrder, "new-order", "new-account", 1)})
		wantProblem(t, c.send(c.Dir.NewOrder, body), http.StatusForbidden, acme.ProblemUnauthorized)
	})

	t.Run("reject/oversize_body", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		big := map[string]string{"junk": strings.Repeat("A", 200<<10)}
		wantProblem(t, c.send(c.Dir.NewOrder, c.sign(c.Dir.NewOrder, big, signOpts{})), http.StatusRequestEntityTooLarge, acme.ProblemMalformed)
	})

	t.Run("reject/unknown_account", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		c.KID = c.KID + "x"
		wantProblem(t, c.post(c.Dir.NewOrder, map[string]any{}), http.StatusBadRequest, acme.ProblemAccountDoesNotExist)
	})

	t.Run("reject/jwk_after_registration", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		wantProblem(t, c.send(c.Dir.NewOrder, c.sign(c.Dir.NewOrder, map[string]any{}, signOpts{JWK: true})), http.StatusBadRequest, acme.ProblemMalformed)
	})

	t.Run("reject/only_return_existing_unknown_key", func(t *testing.T) {
		t.Parallel()
		c := newTestClient(t, e.srv.Client(), e.dirURL)
		wantProblem(t, c.post(c.Dir.NewAccount, map[string]any{"onlyReturnExisting": true}), http.StatusBadRequest, acme.ProblemAccountDoesNotExist)
	})

	t.Run("reject/wrong_content_type", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		resp, err := e.srv.Client().Post(c.Dir.NewOrder, "application/json", bytes.NewReader(c.sign(c.Dir.NewOrder, map[string]any{}, signOpts{})))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})

	t.Run("reject/garbage_body", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		wantProblem(t, c.send(c.Dir.NewOrder, []byte(`{"protected":"!!","payload":"","signature":"AAAA"}`)), http.StatusBadRequest, acme.ProblemMalformed)
	})

	t.Run("reject/unsupported_identifier_type", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		r := c.post(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "example.com"}}})
		wantProblem(t, r, http.StatusBadRequest, acme.ProblemUnsupportedIdentifier)
	})

	t.Run("reject/bad_assigner_oid", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		r := c.post(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": acme.TypePermanentIdentifier, "value": "SN/1.99.3"}}})
		wantProblem(t, r, http.StatusBadRequest, acme.ProblemMalformed)
	})

	t.Run("reject/other_accounts_order", func(t *testing.T) {
		t.Parallel()
		c1, c2 := e.client(t), e.client(t)
		o := c1.newOrder(acme.TypePermanentIdentifier, "SN-MINE")
		wantProblem(t, c2.post(o.location, nil), http.StatusForbidden, acme.ProblemUnauthorized)
	})

	t.Run("reject/finalize_before_challenge", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-EARLY")
		wantProblem(t, c.post(o.Finalize, csrFor(t, p256(t), "")), http.StatusForbidden, acme.ProblemOrderNotReady)
	})
}

type ecdsaKey = ecdsaPrivateKey

func TestAttestationAndCSRChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{profiles: []acme.Profile{
		{Name: "devices"},
		{Name: "apple-only", Formats: []string{policy.FormatApple}},
	}})

	t.Run("reject/csr_key_is_not_attested_key", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o, _ := readyOrder(t, e, c, "SN-CSRKEY")
		wantProblem(t, c.post(o.Finalize, csrFor(t, p256(t), "")), http.StatusBadRequest, acme.ProblemBadCSR)
		var ord orderObj
		c.mustPost(o.location, nil, http.StatusOK, &ord)
		if ord.Status != "invalid" {
			t.Fatalf("order after bad CSR = %q, want invalid", ord.Status)
		}
	})

	t.Run("reject/csr_names_another_device", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o, dev := readyOrder(t, e, c, "SN-CSRNAME")
		wantProblem(t, c.post(o.Finalize, csrWithPermanentID(t, dev, "SN-OTHER")), http.StatusBadRequest, acme.ProblemBadCSR)
	})

	t.Run("ok/csr_names_the_order_identifier", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o, dev := readyOrder(t, e, c, "SN-CSRSAME")
		c.mustPost(o.Finalize, csrWithPermanentID(t, dev, "SN-CSRSAME"), http.StatusOK, nil)
	})

	t.Run("reject/identifier_not_attested", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-CLAIMED")
		chURL, keyAuth := c.challenge(o)
		dev := p256(t)
		r := c.post(chURL, attPayload(attestFor(t, e.auth, policy.FormatApple, dev, "SN-ACTUAL", keyAuth)))
		wantProblem(t, r, http.StatusBadRequest, acme.ProblemBadAttestationStatement)
		if !strings.Contains(string(r.body), acme.ProblemRejectedIdentifier) {
			t.Errorf("no rejectedIdentifier subproblem: %s", r.body)
		}
		var ord orderObj
		c.mustPost(o.location, nil, http.StatusOK, &ord)
		if ord.Status != "invalid" {
			t.Fatalf("order = %q, want invalid", ord.Status)
		}
		wantProblem(t, c.post(o.Finalize, csrFor(t, dev, "")), http.StatusForbidden, acme.ProblemOrderNotReady)
	})

	t.Run("reject/stale_nonce_in_attestation", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-BADATT")
		chURL, keyAuth := c.challenge(o)
		dev := p256(t)
		obj, err := e.auth.AppleWith(dev.Public(), "SN-BADATT", "", keyAuth, attesttest.AppleOptions{Nonce: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, c.post(chURL, attPayload(obj)), http.StatusBadRequest, acme.ProblemBadAttestationStatement)
	})

	t.Run("reject/attestation_for_another_key_authorization", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-KEYAUTH")
		chURL, keyAuth := c.challenge(o)
		dev := p256(t)
		// Android binds the whole key authorization: another account's
		// thumbprint must fail.
		wrong := strings.SplitN(keyAuth, ".", 2)[0] + ".AAAA"
		wantProblem(t, c.post(chURL, attPayload(attestFor(t, e.auth, policy.FormatAndroidKey, dev, "SN-KEYAUTH", wrong))), http.StatusBadRequest, acme.ProblemBadAttestationStatement)
	})

	t.Run("reject/garbage_attestation", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-GARBAGE")
		chURL, _ := c.challenge(o)
		wantProblem(t, c.post(chURL, attPayload([]byte{0xa1, 0x63, 'f', 'm', 't'})), http.StatusBadRequest, acme.ProblemBadAttestationStatement)
	})

	t.Run("reject/missing_attobj", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-NOATT")
		chURL, _ := c.challenge(o)
		wantProblem(t, c.post(chURL, map[string]any{}), http.StatusBadRequest, acme.ProblemMalformed)
	})

	t.Run("reject/format_not_allowed_by_profile", func(t *testing.T) {
		t.Parallel()
		c := newTestClient(t, e.srv.Client(), e.srv.URL+"/acme/profile/apple-only/directory")
		c.register()
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-TPMONAPPLE")
		chURL, keyAuth := c.challenge(o)
		dev := p256(t)
		wantProblem(t, c.post(chURL, attPayload(attestFor(t, e.auth, policy.FormatTPM, dev, "SN-TPMONAPPLE", keyAuth))), http.StatusBadRequest, acme.ProblemBadAttestationStatement)
	})

	t.Run("reject/revoked_device", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		o, dev := readyOrder(t, e, c, "SN-REVOKED")
		c.mustPost(o.Finalize, csrFor(t, dev, ""), http.StatusOK, nil)
		if _, _, err := e.store.RevokeDevice(context.Background(), "SN-REVOKED", storeRevocation(), nil); err != nil {
			t.Fatal(err)
		}
		// Refused at the challenge already: the gate reads the record.
		o2 := c.newOrder(acme.TypePermanentIdentifier, "SN-REVOKED")
		chURL, keyAuth := c.challenge(o2)
		wantProblem(t, c.post(chURL, attPayload(attestFor(t, e.auth, policy.FormatApple, p256(t), "SN-REVOKED", keyAuth))), http.StatusForbidden, acme.ProblemUnauthorized)
	})
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{limits: limit.Config{PerDevice: limit.Rate{Every: time.Hour, Burst: 1}}})
	c := e.client(t)
	c.newOrder(acme.TypePermanentIdentifier, "SN-BUSY")
	r := c.post(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": acme.TypePermanentIdentifier, "value": "SN-BUSY"}}})
	wantProblem(t, r, http.StatusTooManyRequests, acme.ProblemRateLimited)
	if r.header.Get("Retry-After") == "" {
		t.Error("rateLimited without Retry-After")
	}
	if n := e.metrics.count("acme/unknown/rate_limited"); n != 1 {
		t.Errorf("rate_limited metric = %d", n)
	}
	evs, err := e.store.TailAudit(context.Background(), 1)
	if err != nil || len(evs) != 1 || evs[0].Result != "reject" || evs[0].Actor != "device:SN-BUSY" || !strings.HasPrefix(evs[0].Reason, "rate_limited") {
		t.Fatalf("refusal audit = %+v, %v", evs, err)
	}
}

func TestRefusalsAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client(t)
	o := c.newOrder(acme.TypePermanentIdentifier, "SN-AUDIT")
	chURL, _ := c.challenge(o)
	c.post(chURL, attPayload([]byte("not cbor")))
	evs, err := e.store.TailAudit(context.Background(), 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("tail: %v %v", evs, err)
	}
	ev := evs[0]
	if ev.Action != "enroll.acme" || ev.Result != "reject" || ev.Actor != "device:SN-AUDIT" || !strings.HasPrefix(ev.Reason, "bad_attestation") || ev.Source != "127.0.0.1" {
		t.Fatalf("audit event = %+v", ev)
	}
}

func TestConcurrentFinalizeIssuesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client(t)
	o, dev := readyOrder(t, e, c, "SN-RACE")
	const n = 4
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = c.sign(o.Finalize, csrFor(t, dev, ""), signOpts{})
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := c.HTTP.Post(o.Finalize, "application/jose+json", bytes.NewReader(bodies[i]))
			if err != nil {
				t.Error(err)
				return
			}
			r.Body.Close()
			statuses[i] = r.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusForbidden: // orderNotReady
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d finalizes succeeded, want exactly 1 (%v)", ok, statuses)
	}
	certs, _, err := e.store.ListCerts(context.Background(), store.CertFilter{DeviceID: "SN-RACE"}, store.Page{})
	if err != nil || len(certs) != 1 {
		t.Fatalf("device has %d certs (%v), want 1", len(certs), err)
	}
}

// TestOrdersBoundedPerAccount: an account holding MaxOrdersPerAccount
// unexpired orders is refused another with rateLimited and a
// Retry-After; another account is not affected, and the account's orders
// are listed.
func TestOrdersBoundedPerAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{maxOrders: 2})
	c := e.client(t)
	c.newOrder(acme.TypePermanentIdentifier, "SN-B1")
	c.newOrder(acme.TypePermanentIdentifier, "SN-B2")
	r := c.post(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": acme.TypePermanentIdentifier, "value": "SN-B3"}}})
	wantProblem(t, r, http.StatusTooManyRequests, acme.ProblemRateLimited)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("rateLimited without Retry-After")
	}
	if o := e.client(t).newOrder(acme.TypePermanentIdentifier, "SN-B3"); o.Status != "pending" {
		t.Fatalf("another account's order: %+v", o)
	}
	var list struct{ Orders []string }
	c.mustPost(c.KID+"/orders", nil, http.StatusOK, &list)
	if len(list.Orders) != 2 {
		t.Fatalf("account lists %d orders, want 2: %v", len(list.Orders), list.Orders)
	}
}
