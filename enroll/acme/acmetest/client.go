// Package acmetest is a small RFC 8555 client for device-attest-01, used by
// hardbound's tests and by `hardbound bench enroll`. It speaks exactly what
// a device's ACME agent does (account, order, device-attest-01, finalize,
// download) and exposes the low-level Sign/Send steps so tests can break
// each protocol rule. It has no testing.T dependency.
package acmetest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// maxResponse bounds what the client reads from the server.
const maxResponse = 1 << 20

// Directory is the subset of the ACME directory the client uses.
type Directory struct {
	NewNonce   string `json:"newNonce"`
	NewAccount string `json:"newAccount"`
	NewOrder   string `json:"newOrder"`
}

// Problem is an error response from the server.
type Problem struct {
	Status      int
	Type        string `json:"type"`
	Detail      string `json:"detail"`
	Subproblems []struct {
		Type       string `json:"type"`
		Identifier *struct{ Type, Value string }
	} `json:"subproblems"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("acmetest: %d %s: %s", p.Status, p.Type, p.Detail)
}

// Response is a raw server answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Problem decodes an error response; nil if the status is not an error.
func (r *Response) Problem() *Problem {
	if r.Status < 400 {
		return nil
	}
	p := &Problem{Status: r.Status}
	if err := json.Unmarshal(r.Body, p); err != nil || p.Type == "" {
		p.Type, p.Detail = "", string(r.Body)
	}
	return p
}

// Client is one ACME account. It is not safe for concurrent use (it
// carries the last Replay-Nonce).
type Client struct {
	HTTP *http.Client
	Dir  Directory
	Key  crypto.Signer
	Alg  jose.SignatureAlgorithm
	// KID is the account URL once Register succeeded.
	KID   string
	nonce string
}

// New fetches the directory. alg must fit key (ES256 for P-256 ...).
func New(ctx context.Context, hc *http.Client, directoryURL string, key crypto.Signer, alg jose.SignatureAlgorithm) (*Client, error) {
	c := &Client{HTTP: hc, Key: key, Alg: alg}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, directoryURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("acmetest: directory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("acmetest: directory: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&c.Dir); err != nil {
		return nil, fmt.Errorf("acmetest: directory: %w", err)
	}
	return c, nil
}

// Nonce returns the last Replay-Nonce seen, or fetches one from newNonce.
func (c *Client) Nonce(ctx context.Context) (string, error) {
	if n := c.nonce; n != "" {
		c.nonce = ""
		return n, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.Dir.NewNonce, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("acmetest: newNonce: %w", err)
	}
	resp.Body.Close()
	n := resp.Header.Get("Replay-Nonce")
	if n == "" {
		return "", errors.New("acmetest: newNonce gave no Replay-Nonce")
	}
	return n, nil
}

// SignOptions break protocol rules on purpose (tests).
type SignOptions struct {
	Nonce string // instead of a fresh nonce
	URL   string // instead of the request URL
	JWK   bool   // embed the jwk even when registered
}

type staticNonce string

func (n staticNonce) Nonce() (string, error) { return string(n), nil }

// Sign returns the flattened JWS of payload for url; a nil payload is a
// POST-as-GET (payload "").
func (c *Client) Sign(ctx context.Context, url string, payload any, o SignOptions) ([]byte, error) {
	var body []byte
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	nonce := o.Nonce
	if nonce == "" {
		var err error
		if nonce, err = c.Nonce(ctx); err != nil {
			return nil, err
		}
	}
	hdrURL := url
	if o.URL != "" {
		hdrURL = o.URL
	}
	opts := &jose.SignerOptions{NonceSource: staticNonce(nonce), ExtraHeaders: map[jose.HeaderKey]any{"url": hdrURL}}
	sk := jose.SigningKey{Algorithm: c.Alg, Key: c.Key}
	if o.JWK || c.KID == "" {
		opts.EmbedJWK = true
	} else {
		sk.Key = jose.JSONWebKey{Key: c.Key, KeyID: c.KID}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		return nil, fmt.Errorf("acmetest: signer: %w", err)
	}
	obj, err := signer.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("acmetest: sign: %w", err)
	}
	out := []byte(obj.FullSerialize())
	if len(body) == 0 {
		// go-jose omits an empty payload; RFC 8555 §6.3 POST-as-GET sends "".
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			return nil, err
		}
		m["payload"] = ""
		if out, err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Send POSTs a signed body and remembers the returned Replay-Nonce.
func (c *Client) Send(ctx context.Context, url string, body []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/jose+json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("acmetest: POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("acmetest: POST %s: %w", url, err)
	}
	if n := resp.Header.Get("Replay-Nonce"); n != "" {
		c.nonce = n
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Post signs and sends; a problem response is returned as *Problem, and
// one badNonce is retried with the fresh nonce, as RFC 8555 §6.5 suggests.
func (c *Client) Post(ctx context.Context, url string, payload, out any) (*Response, error) {
	for attempt := 0; ; attempt++ {
		body, err := c.Sign(ctx, url, payload, SignOptions{})
		if err != nil {
			return nil, err
		}
		r, err := c.Send(ctx, url, body)
		if err != nil {
			return nil, err
		}
		if p := r.Problem(); p != nil {
			if p.Type == "urn:ietf:params:acme:error:badNonce" && attempt == 0 {
				continue
			}
			return r, p
		}
		if out != nil {
			if err := json.Unmarshal(r.Body, out); err != nil {
				return r, fmt.Errorf("acmetest: POST %s: decode: %w", url, err)
			}
		}
		return r, nil
	}
}

// Register creates (or finds) the account for Key.
func (c *Client) Register(ctx context.Context) error {
	r, err := c.Post(ctx, c.Dir.NewAccount, map[string]any{"termsOfServiceAgreed": true}, nil)
	if err != nil {
		return err
	}
	c.KID = r.Header.Get("Location")
	if c.KID == "" {
		return errors.New("acmetest: newAccount gave no Location")
	}
	return nil
}

// Thumbprint is the RFC 7638 thumbprint of the account key, base64url.
func (c *Client) Thumbprint() (string, error) {
	jwk := jose.JSONWebKey{Key: c.Key.Public()}
	b, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Order is an ACME order object.
type Order struct {
	Status         string   `json:"status"`
	Authorizations []string `json:"authorizations"`
	Finalize       string   `json:"finalize"`
	Certificate    string   `json:"certificate"`
	URL            string   `json:"-"`
}

// Challenge is an ACME challenge object.
type Challenge struct {
	Type   string `json:"type"`
	URL    string `json:"url"`
	Status string `json:"status"`
	Token  string `json:"token"`
}

// Authorization is an ACME authorization object.
type Authorization struct {
	Status     string      `json:"status"`
	Challenges []Challenge `json:"challenges"`
}

// NewOrder orders a certificate for one identifier.
func (c *Client) NewOrder(ctx context.Context, typ, value string) (*Order, error) {
	var o Order
	r, err := c.Post(ctx, c.Dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": typ, "value": value}}}, &o)
	if err != nil {
		return nil, err
	}
	o.URL = r.Header.Get("Location")
	return &o, nil
}

// DeviceAttestChallenge fetches the order's authorization and returns its
// device-attest-01 challenge and the key authorization to attest.
func (c *Client) DeviceAttestChallenge(ctx context.Context, o *Order) (*Challenge, string, error) {
	if len(o.Authorizations) == 0 {
		return nil, "", errors.New("acmetest: order has no authorizations")
	}
	var az Authorization
	if _, err := c.Post(ctx, o.Authorizations[0], nil, &az); err != nil {
		return nil, "", err
	}
	tp, err := c.Thumbprint()
	if err != nil {
		return nil, "", err
	}
	for i := range az.Challenges {
		if ch := az.Challenges[i]; ch.Type == "device-attest-01" {
			return &ch, ch.Token + "." + tp, nil
		}
	}
	return nil, "", errors.New("acmetest: no device-attest-01 challenge offered")
}

// AnswerDeviceAttest posts {"attObj": base64url(attObj)}.
func (c *Client) AnswerDeviceAttest(ctx context.Context, ch *Challenge, attObj []byte) (*Challenge, error) {
	var out Challenge
	_, err := c.Post(ctx, ch.URL, map[string]string{"attObj": base64.RawURLEncoding.EncodeToString(attObj)}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Finalize posts the CSR (DER).
func (c *Client) Finalize(ctx context.Context, o *Order, csrDER []byte) (*Order, error) {
	var out Order
	if _, err := c.Post(ctx, o.Finalize, map[string]string{"csr": base64.RawURLEncoding.EncodeToString(csrDER)}, &out); err != nil {
		return nil, err
	}
	out.URL = o.URL
	return &out, nil
}

// Certificate downloads and parses the PEM chain.
func (c *Client) Certificate(ctx context.Context, url string) ([]*x509.Certificate, error) {
	r, err := c.Post(ctx, url, nil, nil)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	rest := r.Body
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acmetest: certificate: %w", err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("acmetest: certificate: not a clean PEM chain")
	}
	return chain, nil
}

// Enroll runs a whole enrollment for one identifier: order, attest (the
// callback builds the attestation object for the key authorization),
// finalize with csrDER, download. The account must be registered.
func (c *Client) Enroll(ctx context.Context, typ, value string, attest func(keyAuth string) ([]byte, error), csrDER []byte) ([]*x509.Certificate, error) {
	o, err := c.NewOrder(ctx, typ, value)
	if err != nil {
		return nil, err
	}
	ch, keyAuth, err := c.DeviceAttestChallenge(ctx, o)
	if err != nil {
		return nil, err
	}
	obj, err := attest(keyAuth)
	if err != nil {
		return nil, fmt.Errorf("acmetest: attest: %w", err)
	}
	if _, err := c.AnswerDeviceAttest(ctx, ch, obj); err != nil {
		return nil, err
	}
	fin, err := c.Finalize(ctx, o, csrDER)
	if err != nil {
		return nil, err
	}
	if fin.Status != "valid" || fin.Certificate == "" {
		return nil, fmt.Errorf("acmetest: finalized order is %q", fin.Status)
	}
	return c.Certificate(ctx, fin.Certificate)
}
