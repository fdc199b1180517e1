package acme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme/acmetest"
)

// testClient wraps acmetest.Client with testing.T error handling.
type testClient struct {
	*acmetest.Client
	t *testing.T
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) problem(t *testing.T) (typ string, detail string) {
	t.Helper()
	var p struct {
		Type, Detail string
		Subproblems  []struct{ Type string }
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("response %d is not a problem document: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("problem Content-Type = %q", ct)
	}
	return p.Type, p.Detail
}

func newTestClient(t *testing.T, hc *http.Client, directoryURL string) *testClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := acmetest.New(context.Background(), hc, directoryURL, k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{Client: c, t: t}
}

type signOpts = acmetest.SignOptions

// sign returns the flattened JWS for payload (nil = POST-as-GET).
func (c *testClient) sign(url string, payload any, o signOpts) []byte {
	c.t.Helper()
	b, err := c.Sign(context.Background(), url, payload, o)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *testClient) send(url string, body []byte) *response {
	c.t.Helper()
	r, err := c.Send(context.Background(), url, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return &response{status: r.Status, header: r.Header, body: r.Body}
}

func (c *testClient) post(url string, payload any) *response {
	c.t.Helper()
	return c.send(url, c.sign(url, payload, signOpts{}))
}

func (c *testClient) mustPost(url string, payload any, wantStatus int, out any) *response {
	c.t.Helper()
	r := c.post(url, payload)
	if r.status != wantStatus {
		c.t.Fatalf("POST %s = %d, want %d: %s", url, r.status, wantStatus, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			c.t.Fatalf("POST %s: %v: %s", url, err, r.body)
		}
	}
	return r
}

func (c *testClient) register() {
	c.t.Helper()
	if err := c.Register(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testClient) thumbprint() string {
	c.t.Helper()
	tp, err := c.Thumbprint()
	if err != nil {
		c.t.Fatal(err)
	}
	return tp
}

type orderObj struct {
	Status         string
	Authorizations []string
	Finalize       string
	Certificate    string
	location       string
}

type authzObj struct {
	Status     string
	Identifier struct{ Type, Value string }
	Challenges []struct {
		Type, URL, Status, Token string
	}
}

func (c *testClient) newOrder(typ, value string) orderObj {
	c.t.Helper()
	var o orderObj
	r := c.mustPost(c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": typ, "value": value}}}, http.StatusCreated, &o)
	o.location = r.header.Get("Location")
	return o
}

// challenge returns the device-attest-01 challenge URL and the key authorization.
func (c *testClient) challenge(o orderObj) (url, keyAuth string) {
	c.t.Helper()
	var az authzObj
	c.mustPost(o.Authorizations[0], nil, http.StatusOK, &az)
	if len(az.Challenges) != 1 || az.Challenges[0].Type != "device-attest-01" {
		c.t.Fatalf("authz challenges = %+v", az.Challenges)
	}
	ch := az.Challenges[0]
	return ch.URL, ch.Token + "." + c.thumbprint()
}

func attPayload(attObj []byte) map[string]string {
	return map[string]string{"attObj": base64.RawURLEncoding.EncodeToString(attObj)}
}

func csrFor(t *testing.T, key crypto.Signer, cn string) map[string]string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"csr": base64.RawURLEncoding.EncodeToString(der)}
}

func parsePEMChain(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(strings.TrimSpace(string(b))) != 0 {
		t.Fatalf("trailing data after PEM chain: %q", b)
	}
	return out
}

// csrWithPermanentID makes a CSR whose SAN is one PermanentIdentifier
// otherName (RFC 4043) with the given value.
func csrWithPermanentID(t *testing.T, key crypto.Signer, value string) map[string]string {
	t.Helper()
	pi, err := asn1.Marshal(struct {
		Value string `asn1:"utf8"`
	}{value})
	if err != nil {
		t.Fatal(err)
	}
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3})
	val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: pi})
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, val...)}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"csr": base64.RawURLEncoding.EncodeToString(der)}
}
