// Package ca is hardbound's issuing certificate authority: it creates and
// loads the CA key material, applies the CSR policy, issues device client
// certificates by profile, signs server and RA certificates and produces CRLs.
//
// All signing goes through a crypto.Signer so the issuing key can live in an
// HSM or KMS later without changing callers.
package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrExists is returned by Init when CA material is already present.
	ErrExists = errors.New("ca: CA already exists")
	// ErrCSRPolicy is wrapped by every rejection of a CSR or public key.
	ErrCSRPolicy = errors.New("ca: CSR policy violation")
	// ErrInvalidRequest is wrapped when an issuance request (not the key or
	// CSR) is malformed: missing device id, bad validity, bad CRL input.
	ErrInvalidRequest = errors.New("ca: invalid request")
	// ErrCAExpired is returned when the issuing CA cannot sign at the current
	// time because it is expired or not yet valid.
	ErrCAExpired = errors.New("ca: issuing CA not valid now")
)

// DefaultValidity is the device certificate lifetime when a Profile leaves
// Validity at zero. Short-lived certs keep revocation cheap.
const DefaultValidity = 14 * 24 * time.Hour

// clockSkew is how far NotBefore is back-dated so devices with slightly slow
// clocks accept a certificate the moment it is issued.
const clockSkew = time.Minute

// Profile selects how a device certificate is issued.
type Profile struct {
	Name     string
	Validity time.Duration // zero means DefaultValidity
}

// Metrics receives issuance outcomes. Labels are bounded: kind is one of
// "device", "server", "sign", "crl"; result is "ok", "policy" or "error".
type Metrics interface {
	Signed(kind, result string)
}

type nopMetrics struct{}

func (nopMetrics) Signed(string, string) {}

// Option configures a CA built by New or Load.
type Option func(*config)

type config struct {
	logger  *slog.Logger
	now     func() time.Time
	metrics Metrics
	ocsp    []string
	names   map[string]Names
}

// WithOCSPServer puts url in the Authority Information Access extension
// (id-ad-ocsp, RFC 5280 §4.2.2.1) of every device certificate Issue signs,
// so relying parties find the responder (enroll/ocsp). Empty: none.
func WithOCSPServer(url string) Option {
	return func(c *config) {
		if url != "" {
			c.ocsp = []string{url}
		}
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithClock sets the time source; tests use it to pin issuance times.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithMetrics sets the metrics sink; the default is a no-op.
func WithMetrics(m Metrics) Option {
	return func(c *config) {
		if m != nil {
			c.metrics = m
		}
	}
}

// CA is an issuing certificate authority. It is safe for concurrent use: all
// fields are set once by New and only read afterwards.
type CA struct {
	issuing *x509.Certificate
	root    *x509.Certificate
	signer  crypto.Signer
	log     *slog.Logger
	now     func() time.Time
	metrics Metrics
	ocsp    []string // AIA OCSP URLs of device certificates
	names   map[string]Names
}

// New builds a CA from an issuing certificate, the signer holding its key and
// the root it chains to. It checks that the issuing cert is a CA allowed to
// sign certificates, that the signer's public key is the issuing cert's key,
// and that the issuing cert's signature verifies under root. An expired CA is
// loaded (so CRLs can still be inspected) but logged; issuing then fails with
// ErrCAExpired.
func New(issuing *x509.Certificate, signer crypto.Signer, root *x509.Certificate, opts ...Option) (*CA, error) {
	cfg := config{
		logger:  slog.New(slog.DiscardHandler),
		now:     time.Now,
		metrics: nopMetrics{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if issuing == nil || signer == nil || root == nil {
		return nil, errors.New("ca: new: issuing certificate, signer and root are all required")
	}
	if !issuing.BasicConstraintsValid || !issuing.IsCA {
		return nil, errors.New("ca: new: issuing certificate is not a CA (basicConstraints cA=FALSE or absent)")
	}
	if issuing.KeyUsage != 0 && issuing.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("ca: new: issuing certificate lacks keyCertSign key usage")
	}
	if !root.BasicConstraintsValid || !root.IsCA {
		return nil, errors.New("ca: new: root certificate is not a CA")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(issuing.PublicKey) {
		return nil, errors.New("ca: new: signer key does not match the issuing certificate's public key")
	}
	if err := issuing.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("ca: new: issuing certificate does not chain to root: %w", err)
	}
	c := &CA{
		issuing: issuing,
		root:    root,
		signer:  signer,
		log:     cfg.logger.With("component", "ca"),
		now:     cfg.now,
		metrics: cfg.metrics,
		ocsp:    cfg.ocsp,
		names:   cfg.names,
	}
	if now := c.now(); now.After(issuing.NotAfter) {
		c.log.Warn("issuing CA is expired; issuance will fail", "not_after", issuing.NotAfter)
	} else if remaining := issuing.NotAfter.Sub(now); remaining < 90*24*time.Hour {
		c.log.Warn("issuing CA expires soon", "not_after", issuing.NotAfter, "remaining", remaining.Round(time.Hour))
	}
	return c, nil
}

// Issuing returns the issuing CA certificate. Callers must not modify it.
func (c *CA) Issuing() *x509.Certificate { return c.issuing }

// Root returns the root certificate. Callers must not modify it.
func (c *CA) Root() *x509.Certificate { return c.root }

// Signer returns the issuing CA's signer, e.g. for a SCEP RA that signs with
// the CA key. Callers must not use it to sign arbitrary certificates.
func (c *CA) Signer() crypto.Signer { return c.signer }

// Pool returns a new pool holding only the issuing CA. Client certs are
// verified against the issuing CA, not the root, so certificates from any
// other CA under the same root are not accepted. Each call returns a fresh
// pool so one caller's additions never leak into another's trust.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.issuing)
	return p
}
