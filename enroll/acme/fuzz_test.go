package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/policy"
)

// nullDeps satisfy New for tests that never get past request verification.
type nullDeps struct{}

func (nullDeps) Issue(context.Context, ca.IssueRequest) (*x509.Certificate, error) {
	return nil, context.Canceled
}
func (nullDeps) Issuing() *x509.Certificate { return nil }
func (nullDeps) VerifyACME(context.Context, []byte, string) (*attest.Result, error) {
	return nil, attest.ErrBadAttestation
}
func (nullDeps) GetDevice(context.Context, string) (*store.Device, error) {
	return nil, store.ErrNotFound
}
func (nullDeps) FindDeviceByAlias(context.Context, string, string) (*store.Device, error) {
	return nil, store.ErrNotFound
}
func (nullDeps) ListCerts(context.Context, store.CertFilter, store.Page) ([]*store.Cert, string, error) {
	return nil, "", nil
}
func (nullDeps) GetAttestation(context.Context, string) (*store.Attestation, error) {
	return nil, store.ErrNotFound
}
func (nullDeps) RecordIssuance(context.Context, store.Issuance) error { return nil }
func (nullDeps) AppendAudit(context.Context, *store.AuditEvent) error { return nil }
func (nullDeps) ClaimNonce(context.Context, string, store.Hash, time.Time) error {
	return nil
}
func (nullDeps) CreateACMEOrder(context.Context, *store.ACMEOrder, int) error { return nil }
func (nullDeps) GetACMEOrder(context.Context, string) (*store.ACMEOrder, error) {
	return nil, store.ErrNotFound
}
func (nullDeps) UpdateACMEOrder(context.Context, *store.ACMEOrder, uint64) error {
	return store.ErrNotFound
}
func (nullDeps) ListACMEOrders(context.Context, string) ([]*store.ACMEOrder, error) { return nil, nil }
func (nullDeps) GetCert(context.Context, store.Hash) (*store.Cert, error) {
	return nil, store.ErrNotFound
}

var jwsSeeds = []string{
	`{"protected":"eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoiYSIsInVybCI6Imh0dHBzOi8veCJ9","payload":"","signature":"AAAA"}`,
	`{"protected":"e30","payload":"e30","signature":""}`,
	`{"signatures":[],"payload":""}`,
	`{"protected":"!!","payload":"","signature":"AAAA"}`,
	`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`,
	`[]`, `null`, ``, `{`,
}

// FuzzParseJWS: any body yields a request or a problem, never a panic.
func FuzzParseJWS(f *testing.F) {
	for _, s := range jwsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := parseJWS(body)
		if (req == nil) == (p == nil) {
			t.Fatalf("parseJWS returned req=%v problem=%v", req, p)
		}
		if p != nil && p.Type == "" {
			t.Fatal("problem without type")
		}
	})
}

// FuzzPost drives every POST endpoint's request path (body cap, JWS,
// nonce, url, account lookup, payload decoding) with arbitrary bodies.
func FuzzPost(f *testing.F) {
	s, err := New(Config{Profiles: []Profile{{Name: "p"}}}, Deps{Issuer: nullDeps{}, Attester: nullDeps{}, Store: nullDeps{}})
	if err != nil {
		f.Fatal(err)
	}
	paths := []string{"/acme/new-account", "/acme/new-order", "/acme/acct/x", "/acme/order/x/finalize", "/acme/chall/x", "/acme/cert/x"}
	for i, sd := range jwsSeeds {
		f.Add(uint8(i), []byte(sd))
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "https://example.test"+paths[int(which)%len(paths)], bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/jose+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 400 {
			t.Fatalf("unauthenticated body accepted: %d %s", w.Code, w.Body)
		}
		if w.Header().Get("Replay-Nonce") == "" {
			t.Fatal("response without Replay-Nonce")
		}
	})
}

// FuzzParseNonce: any Replay-Nonce header value is refused or accepted
// without panicking, and only a value made under the key is accepted.
func FuzzParseNonce(f *testing.F) {
	key := bytes.Repeat([]byte{3}, NonceKeyLen)
	n := newNonces(key, time.Hour, time.Now, nullDeps{})
	good := n.issue()
	for _, s := range []string{good, good[:nonceLen-1] + "A", "", "AAAA", strings.Repeat("_", nonceLen), strings.Repeat("=", nonceLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		issued, raw, err := parseNonce(key, v)
		if err != nil {
			if !errors.Is(err, errBadNonce) {
				t.Fatalf("refusal %v does not wrap errBadNonce", err)
			}
			return
		}
		if len(raw) != nonceRawLen || issued.IsZero() {
			t.Fatalf("accepted %q: %d raw octets, issued %v", v, len(raw), issued)
		}
		if _, _, err := parseNonce(bytes.Repeat([]byte{4}, NonceKeyLen), v); err == nil {
			t.Fatalf("%q verifies under two keys", v)
		}
	})
}

// FuzzDeviceIdentity: identifier validation never panics and never
// returns an empty device id without a problem.
func FuzzDeviceIdentity(f *testing.F) {
	for _, s := range []string{"SN1", "SN1/1.2.3", "a/2.999.1", "/1.2", "x/", "x/1.40", "x/01.2", "sn/1.3.6.1.4.1.99999"} {
		f.Add(TypePermanentIdentifier, s)
		f.Add(TypeHardwareModule, s)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		dev, p := deviceIdentity(Identifier{Type: typ, Value: value})
		if p == nil && dev == "" {
			t.Fatal("empty device id accepted")
		}
	})
}

// FuzzCheckCSRNames: arbitrary subjectAltName extension bytes in a CSR are
// refused or accepted without panicking.
func FuzzCheckCSRNames(f *testing.F) {
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x03, 0xa0, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, ext []byte) {
		csr := &x509.CertificateRequest{}
		csr.Extensions = append(csr.Extensions, pkixExt(ext))
		_ = checkCSRNames(csr, Identifier{Type: TypePermanentIdentifier, Value: "SN"})
	})
}

// FuzzPayload signs arbitrary payload bytes with a registered account key,
// so the fuzzer reaches the JSON payload parsers behind signature checks:
// newOrder, a pending challenge and a ready order's finalize.
func FuzzPayload(f *testing.F) {
	st := badgertest.Memory(f)
	s, err := New(Config{Profiles: []Profile{{Name: "p"}}}, Deps{Issuer: nullDeps{}, Attester: nullDeps{}, Store: st})
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: key.Public()}
	tp, _ := thumbprint(jwk)
	if _, _, err := s.accounts.Create(context.Background(), &Account{ID: "fuzz", Key: jwk, Thumbprint: tp, Status: AccountValid}); err != nil {
		f.Fatal(err)
	}
	const base = "https://example.test/acme"
	for _, seed := range []string{
		`{"identifiers":[{"type":"permanent-identifier","value":"SN"}]}`,
		`{"attObj":"oWNmbXRlYXBwbGU"}`, `{"attObj":""}`, `{"csr":"MIIB"}`, `{}`, `[]`, `{"identifiers":null}`, ``,
	} {
		f.Add(uint8(0), []byte(seed))
		f.Add(uint8(1), []byte(seed))
		f.Add(uint8(2), []byte(seed))
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		now := time.Now().UTC()
		o := &store.ACMEOrder{ID: randomID(16), Account: "fuzz", Profile: "p", IdentifierType: TypePermanentIdentifier,
			IdentifierValue: "SN", DeviceID: "SN", Token: randomID(32),
			Status: StatusPending, AuthzStatus: StatusPending, ChallStatus: StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		var path string
		switch which % 3 {
		case 0:
			path = "/new-order"
		case 1:
			path = "/chall/" + o.ID
		default:
			ev, err := encodeEvidence(&attest.Result{Format: policy.FormatApple, PublicKey: key.Public(), DeviceID: "SN"})
			if err != nil {
				t.Fatal(err)
			}
			o.Status, o.AuthzStatus, o.ChallStatus, o.Evidence = StatusReady, StatusValid, StatusValid, ev
			path = "/order/" + o.ID + "/finalize"
		}
		if err := st.CreateACMEOrder(context.Background(), o, 1<<30); err != nil {
			t.Fatal(err)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: base + "/acct/fuzz"}},
			&jose.SignerOptions{NonceSource: staticNonce(s.nonces.issue()), ExtraHeaders: map[jose.HeaderKey]any{"url": base + path}})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, base+path, strings.NewReader(obj.FullSerialize()))
		r.Header.Set("Content-Type", "application/jose+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("error %d is not a problem document", w.Code)
		}
		if which%3 == 2 && w.Code < 400 {
			t.Fatalf("finalize succeeded with an issuer that always fails: %d", w.Code)
		}
	})
}

type staticNonce string

func (n staticNonce) Nonce() (string, error) { return string(n), nil }
