package acme_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
)

func TestAccountKeyAlgorithms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      crypto.Signer
		alg      jose.SignatureAlgorithm
		wantType string // "" = account created
	}{
		{"ok/rs256", rsaKey, jose.RS256, ""},
		{"ok/eddsa", edKey, jose.EdDSA, ""},
		{"ok/es384", p384, jose.ES384, ""},
		{"reject/ps256", rsaKey, jose.PS256, acme.ProblemBadSignatureAlgorithm},
		{"reject/rsa_1024", rsaSmall, jose.RS256, acme.ProblemBadPublicKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, e.srv.Client(), e.dirURL)
			c.Key, c.Alg = tc.key, tc.alg
			r := c.post(c.Dir.NewAccount, map[string]any{"termsOfServiceAgreed": true})
			if tc.wantType != "" {
				wantProblem(t, r, http.StatusBadRequest, tc.wantType)
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("newAccount = %d: %s", r.status, r.body)
			}
			c.KID = r.header.Get("Location")
			// Same key again: the existing account, 200.
			if r := c.send(c.Dir.NewAccount, c.sign(c.Dir.NewAccount, map[string]any{}, signOpts{JWK: true})); r.status != http.StatusOK || r.header.Get("Location") != c.KID {
				t.Fatalf("repeat newAccount = %d %q", r.status, r.header.Get("Location"))
			}
			o := c.newOrder(acme.TypePermanentIdentifier, "SN-KEYS-"+tc.name[3:])
			if o.Status != "pending" {
				t.Fatalf("order = %+v", o)
			}
		})
	}
}
