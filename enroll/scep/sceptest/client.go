// Package sceptest is a small SCEP client built on smallstep/scep, for tests,
// integration tests and `hardbound bench enroll`. It has no testing.T
// dependency.
package sceptest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"

	hbscep "hardbound/enroll/scep"
)

// maxResponse bounds what the client reads from a server.
const maxResponse = 1 << 20

// ErrFailure is wrapped by *Failure.
var ErrFailure = errors.New("sceptest: CertRep FAILURE")

// Failure is a CertRep FAILURE answer.
type Failure struct {
	FailInfo scep.FailInfo
	// Text is the RFC 8894 failInfoText, when the server sent one.
	Text string
}

func (f *Failure) Error() string {
	if f.Text != "" {
		return fmt.Sprintf("sceptest: CertRep FAILURE failInfo=%s: %s", string(f.FailInfo), f.Text)
	}
	return fmt.Sprintf("sceptest: CertRep FAILURE failInfo=%s", string(f.FailInfo))
}

// Unwrap lets errors.Is(err, ErrFailure) match.
func (f *Failure) Unwrap() error { return ErrFailure }

// HTTPError is a non-200 HTTP answer.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("sceptest: HTTP %d: %s", e.Status, e.Body) }

// Client speaks SCEP to URL (e.g. https://host:8443/scep or /scep/<profile>).
type Client struct {
	URL  string
	HTTP *http.Client // default http.DefaultClient
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) get(ctx context.Context, q url.Values) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	return c.do(req)
}

func (c *Client) do(req *http.Request) ([]byte, string, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// GetCACaps returns the capability lines.
func (c *Client) GetCACaps(ctx context.Context) ([]string, error) {
	b, _, err := c.get(ctx, url.Values{"operation": {"GetCACaps"}})
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// GetCACert returns the certificates of the GetCACert answer and its content type.
func (c *Client) GetCACert(ctx context.Context) ([]*x509.Certificate, string, error) {
	b, ct, err := c.get(ctx, url.Values{"operation": {"GetCACert"}})
	if err != nil {
		return nil, "", err
	}
	certs, err := scep.CACerts(b)
	if err != nil {
		return nil, "", fmt.Errorf("sceptest: GetCACert: %w", err)
	}
	return certs, ct, nil
}

// Request is one enrollment.
type Request struct {
	// Key is the device key; RSA is what SCEP envelopes need.
	Key       crypto.Signer
	Challenge string
	Subject   pkix.Name
	URIs      []*url.URL
	// Renew, if set, sends a RenewalReq signed by this certificate (with
	// RenewKey, its private key) instead of a PKCSReq signed by a
	// self-signed certificate over Key.
	Renew    *x509.Certificate
	RenewKey crypto.Signer
	// UseGET sends PKIOperation as GET ?message=<base64> instead of POST.
	UseGET bool
}

// Enroll sends a PKCSReq or RenewalReq and returns the issued certificate,
// a *Failure for a CertRep FAILURE, or another error.
func (c *Client) Enroll(ctx context.Context, r Request) (*x509.Certificate, error) {
	certs, _, err := c.GetCACert(ctx)
	if err != nil {
		return nil, err
	}
	signerCert, signerKey, err := signer(r)
	if err != nil {
		return nil, err
	}
	raw, err := buildMessage(certs, r, signerCert, signerKey)
	if err != nil {
		return nil, err
	}
	resp, err := c.Send(ctx, raw, r.UseGET)
	if err != nil {
		return nil, err
	}
	return ParseCertRep(resp, signerCert, signerKey)
}

// Message builds the PKIMessage DER for r (exposed for fuzz seeds and
// negative tests that tamper with it).
func (c *Client) Message(ctx context.Context, r Request) ([]byte, error) {
	certs, _, err := c.GetCACert(ctx)
	if err != nil {
		return nil, err
	}
	return BuildMessage(certs, r)
}

// BuildMessage builds the PKIMessage DER for r, encrypted to the
// encipherment-capable certificates among caCerts.
func BuildMessage(caCerts []*x509.Certificate, r Request) ([]byte, error) {
	signerCert, signerKey, err := signer(r)
	if err != nil {
		return nil, err
	}
	return buildMessage(caCerts, r, signerCert, signerKey)
}

// BuildMessageWithSigner is BuildMessage with a given envelope signer
// certificate (over r.Key for a PKCSReq), so the caller can decrypt the
// CertRep with it.
func BuildMessageWithSigner(caCerts []*x509.Certificate, r Request, signerCert *x509.Certificate) ([]byte, error) {
	signerKey := r.Key
	if r.Renew != nil {
		signerKey = r.RenewKey
	}
	if signerKey == nil {
		return nil, errors.New("sceptest: no signer key")
	}
	return buildMessage(caCerts, r, signerCert, signerKey)
}

func buildMessage(caCerts []*x509.Certificate, r Request, signerCert *x509.Certificate, signerKey crypto.Signer) ([]byte, error) {
	if r.Key == nil {
		return nil, errors.New("sceptest: Key is required")
	}
	tmpl := &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: r.Subject, URIs: r.URIs},
		ChallengePassword:  r.Challenge,
	}
	der, err := x509util.CreateCertificateRequest(rand.Reader, tmpl, r.Key)
	if err != nil {
		return nil, fmt.Errorf("sceptest: CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("sceptest: CSR: %w", err)
	}
	// Orders smallstep/pkcs7's one global setting before this Encrypt.
	hbscep.ConfigurePKCS7()
	mt := scep.PKCSReq
	if r.Renew != nil {
		mt = scep.RenewalReq
	}
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{
		MessageType: mt,
		Recipients:  caCerts,
		SignerKey:   signerKey,
		SignerCert:  signerCert,
	}, scep.WithCertsSelector(scep.EnciphermentCertsSelector()))
	if err != nil {
		return nil, fmt.Errorf("sceptest: PKIMessage: %w", err)
	}
	return msg.Raw, nil
}

// Send posts (or GETs) a raw PKIMessage and returns the raw answer.
func (c *Client) Send(ctx context.Context, raw []byte, useGET bool) ([]byte, error) {
	if useGET {
		b, _, err := c.get(ctx, url.Values{"operation": {"PKIOperation"}, "message": {base64.StdEncoding.EncodeToString(raw)}})
		return b, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"?operation=PKIOperation", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-pki-message")
	b, _, err := c.do(req)
	return b, err
}

// ParseCertRep verifies and decrypts a CertRep.
func ParseCertRep(resp []byte, signerCert *x509.Certificate, signerKey crypto.Signer) (*x509.Certificate, error) {
	rep, err := scep.ParsePKIMessage(resp)
	if err != nil {
		return nil, fmt.Errorf("sceptest: parse CertRep: %w", err)
	}
	if rep.MessageType != scep.CertRep || rep.CertRepMessage == nil {
		return nil, errors.New("sceptest: answer is not a CertRep")
	}
	switch rep.PKIStatus {
	case scep.SUCCESS:
	case scep.FAILURE:
		return nil, &Failure{FailInfo: rep.FailInfo, Text: failInfoText(resp)}
	default:
		return nil, fmt.Errorf("sceptest: pkiStatus %q", string(rep.PKIStatus))
	}
	if err := rep.DecryptPKIEnvelope(signerCert, signerKey); err != nil {
		return nil, fmt.Errorf("sceptest: decrypt CertRep: %w", err)
	}
	return rep.Certificate, nil
}

// failInfoText reads the optional failInfoText signed attribute.
func failInfoText(resp []byte) string {
	p7, err := pkcs7.Parse(resp)
	if err != nil {
		return ""
	}
	var s string
	if err := p7.UnmarshalSignedAttribute(hbscep.OIDFailInfoText, &s); err != nil {
		return ""
	}
	return s
}

// signer returns the envelope signer: the old cert for a renewal, else a
// self-signed cert over the device key (RFC 8894 §2.3).
func signer(r Request) (*x509.Certificate, crypto.Signer, error) {
	if r.Renew != nil {
		if r.RenewKey == nil {
			return nil, nil, errors.New("sceptest: RenewKey is required with Renew")
		}
		return r.Renew, r.RenewKey, nil
	}
	if r.Key == nil {
		return nil, nil, errors.New("sceptest: Key is required")
	}
	return SelfSigned(r.Key, r.Subject)
}

// SelfSigned makes the throw-away certificate a PKCSReq is signed with.
func SelfSigned(key crypto.Signer, subject pkix.Name) (*x509.Certificate, crypto.Signer, error) {
	if subject.CommonName == "" {
		subject.CommonName = "SCEP client"
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      subject,
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("sceptest: self-signed: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// NewKey returns an RSA 2048 device key.
func NewKey() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

// BuildInner builds a PKIMessage whose pkcsPKIEnvelope carries inner as
// is (normally a PKCS#10 CSR), encrypted to the encipherment-capable
// caCerts and signed by signerCert/signerKey with messageType mt. Fuzzers
// use it so that mutated CSR bytes get past the envelope's signature and
// decryption to the server's CSR, challengePassword and renewal checks.
func BuildInner(caCerts []*x509.Certificate, inner []byte, mt scep.MessageType, signerCert *x509.Certificate, signerKey crypto.Signer) ([]byte, error) {
	hbscep.ConfigurePKCS7()
	// NewCSRRequest encrypts csr.Raw and derives the transactionID from
	// csr.PublicKey; nothing else of the CSR is read.
	csr := &x509.CertificateRequest{Raw: inner, PublicKey: signerKey.Public()}
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{
		MessageType: mt,
		Recipients:  caCerts,
		SignerKey:   signerKey,
		SignerCert:  signerCert,
	}, scep.WithCertsSelector(scep.EnciphermentCertsSelector()))
	if err != nil {
		return nil, fmt.Errorf("sceptest: PKIMessage: %w", err)
	}
	return msg.Raw, nil
}

// CSR returns the DER of the PKCS#10 request BuildMessage would put in the
// envelope for r (seed material for fuzzers).
func CSR(r Request) ([]byte, error) {
	if r.Key == nil {
		return nil, errors.New("sceptest: Key is required")
	}
	tmpl := &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: r.Subject, URIs: r.URIs},
		ChallengePassword:  r.Challenge,
	}
	return x509util.CreateCertificateRequest(rand.Reader, tmpl, r.Key)
}
