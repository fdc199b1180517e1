package acme_test

import (
	"bytes"
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
	"io"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// testClient is a minimal RFC 8555 client: enough to drive the server the
// way a device's ACME agent does, plus knobs to break each rule.
type testClient struct {
	t   *testing.T
	hc  *http.Client
	dir struct {
		NewNonce, NewAccount, NewOrder string
	}
	key   crypto.Signer
	alg   jose.SignatureAlgorithm
	kid   string
	nonce string
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
	c := &testClient{t: t, hc: hc, key: k, alg: jose.ES256}
	resp, err := hc.Get(directoryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&c.dir); err != nil {
		t.Fatalf("directory: %v", err)
	}
	return c
}

func (c *testClient) freshNonce() string {
	c.t.Helper()
	if c.nonce != "" {
		n := c.nonce
		c.nonce = ""
		return n
	}
	resp, err := c.hc.Head(c.dir.NewNonce)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	n := resp.Header.Get("Replay-Nonce")
	if n == "" {
		c.t.Fatal("newNonce gave no Replay-Nonce")
	}
	return n
}

type signOpts struct {
	nonce   string // overrides the fresh nonce
	url     string // overrides the url header
	jwk     bool   // embed jwk instead of kid
	rawBody []byte // sent as is
}

type nonceSource string

func (n nonceSource) Nonce() (string, error) { return string(n), nil }

// sign returns the flattened JWS for payload (nil = POST-as-GET).
func (c *testClient) sign(url string, payload any, o signOpts) []byte {
	c.t.Helper()
	var body []byte
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			c.t.Fatal(err)
		}
	}
	nonce := o.nonce
	if nonce == "" {
		nonce = c.freshNonce()
	}
	hdrURL := url
	if o.url != "" {
		hdrURL = o.url
	}
	opts := &jose.SignerOptions{NonceSource: nonceSource(nonce), ExtraHeaders: map[jose.HeaderKey]any{"url": hdrURL}}
	sk := jose.SigningKey{Algorithm: c.alg, Key: c.key}
	if o.jwk || c.kid == "" {
		opts.EmbedJWK = true
	} else {
		sk.Key = jose.JSONWebKey{Key: c.key, KeyID: c.kid}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	obj, err := signer.Sign(body)
	if err != nil {
		c.t.Fatal(err)
	}
	out := []byte(obj.FullSerialize())
	if len(body) == 0 {
		// go-jose omits an empty payload; RFC 8555 §6.3 POST-as-GET sends "".
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			c.t.Fatal(err)
		}
		m["payload"] = ""
		if out, err = json.Marshal(m); err != nil {
			c.t.Fatal(err)
		}
	}
	return out
}

func (c *testClient) send(url string, body []byte) *response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/jose+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := resp.Header.Get("Replay-Nonce"); n != "" {
		c.nonce = n
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
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
	r := c.mustPost(c.dir.NewAccount, map[string]any{"termsOfServiceAgreed": true}, http.StatusCreated, nil)
	c.kid = r.header.Get("Location")
	if c.kid == "" {
		c.t.Fatal("newAccount gave no Location")
	}
}

func (c *testClient) thumbprint() string {
	c.t.Helper()
	jwk := jose.JSONWebKey{Key: c.key.Public()}
	b, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		c.t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
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
	r := c.mustPost(c.dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": typ, "value": value}}}, http.StatusCreated, &o)
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
