// Package enroll is hardbound's enrollment HTTP service: ACME with
// device-attest-01 under /acme/, SCEP under /scep (the handler comes from
// enroll/scep through Deps.SCEP) and the issuing CA's CRL under /crl (DER)
// and /crl.pem.
//
// Two handlers are offered: Handler for the HTTPS listener (everything) and
// PlainHandler for the plain-HTTP listener (SCEP and CRL only, which is what
// MDM SCEP payloads and CRL distribution points use; ACME requires HTTPS).
package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"hardbound/enroll/acme"
	"hardbound/enroll/gate"
	"hardbound/enroll/limit"
	"hardbound/store"
)

// Profile is an enrollment profile: its name (used in URLs, records and
// metrics; policy.CheckName), the device certificate validity and the
// attestation formats it accepts (policy.Formats; empty = any hardware
// format).
type Profile = acme.Profile

// CA is what the service needs from the issuing CA; *ca.CA satisfies it.
type CA interface {
	acme.Issuer
	CRL(ctx context.Context, entries []x509.RevocationListEntry, number *big.Int, nextUpdate time.Time) ([]byte, error)
}

// KeyDeriver derives keys from the CA's key (*ca.CA satisfies it): keys
// every node holding the CA files agrees on.
type KeyDeriver interface {
	DeriveKey(purpose string, n int) ([]byte, error)
}

// Store is what the service needs from the store; store.Store satisfies it.
// The CRL follows the store's change feed (Watch).
type Store interface {
	acme.Store
	store.Watcher
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
}

// Config configures the service. Zero values get the defaults noted.
type Config struct {
	// BaseURL is the external HTTPS URL of the service root as devices see
	// it, e.g. "https://enroll.example.com:8443". Empty: derived from each
	// request's Host header. Set it behind a proxy or a NAT.
	BaseURL string
	// Profiles are the enrollment profiles (at least one).
	Profiles []Profile
	// DefaultProfile is served at /acme/directory; empty: the first one.
	// Every profile has /acme/profile/<name>/directory.
	DefaultProfile string
	// Limits is used when Deps.Limiter is nil.
	Limits limit.Config
	// MaxBodyBytes caps SCEP and CRL request bodies (default 256 KiB).
	// ACME caps its own at 128 KiB and answers with a problem document.
	MaxBodyBytes int64
	// CRLMaxAge is how long a built CRL is served before it is rebuilt even
	// without a revocation (default 1h).
	CRLMaxAge time.Duration
	// CRLValidity is nextUpdate - thisUpdate (default 24h).
	CRLValidity time.Duration
}

// Deps are the collaborators. CA, Store and Attester are required.
type Deps struct {
	CA       CA
	Store    Store
	Attester acme.Attester
	// SCEP is mounted at /scep on both listeners; nil: no SCEP.
	SCEP http.Handler
	// Limiter is shared with the SCEP handler so one device or IP has one
	// budget across protocols; nil: limit.New(cfg.Limits).
	Limiter *limit.Limiter
	// Accounts stores ACME accounts; nil: in memory (bounded).
	Accounts acme.AccountStore
	// ACMENonceKey authenticates ACME Replay-Nonces (acme.Deps.NonceKey);
	// nil: derived from the CA key when the CA can (KeyDeriver), so the
	// nodes sharing the CA files accept each other's nonces.
	ACMENonceKey []byte
	// Holds, if set, adds certificateHold entries to the CRL: the
	// certificates the OCSP responder holds for their device's standing
	// (enroll/ocsp Responder.Holds). The CRL is then rebuilt when a
	// device's status or compliance changes, too.
	Holds func(ctx context.Context) ([]x509.RevocationListEntry, error)
	// Gate, if set, is the issuance gate ACME applies (acme.WithGate),
	// shared with SCEP and EST; nil: ACME builds its own from Profiles.
	Gate *gate.Gate
}

// Option configures a Service.
type Option func(*options)

type options struct {
	log     *slog.Logger
	now     func() time.Time
	metrics acme.Metrics
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithMetrics sets the enrollment metrics sink (shared with enroll/acme).
func WithMetrics(m acme.Metrics) Option { return func(o *options) { o.metrics = m } }

// Service is the enrollment HTTP service.
type Service struct {
	cfg   Config
	ca    CA
	store Store
	scep  http.Handler
	acme  *acme.Server
	log   *slog.Logger
	now   func() time.Time
	crl   crlCache
	holds func(ctx context.Context) ([]x509.RevocationListEntry, error)

	stopWatch func() // ends the store subscription (Close)
}

// New builds the service and its ACME server.
func New(cfg Config, deps Deps, opts ...Option) (*Service, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if deps.CA == nil || deps.Store == nil || deps.Attester == nil {
		return nil, errors.New("enroll: CA, Store and Attester are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 10
	}
	if cfg.CRLMaxAge <= 0 {
		cfg.CRLMaxAge = time.Hour
	}
	if cfg.CRLValidity <= 0 {
		cfg.CRLValidity = 24 * time.Hour
	}
	if cfg.CRLMaxAge > cfg.CRLValidity {
		return nil, fmt.Errorf("enroll: crl max age %s exceeds crl validity %s", cfg.CRLMaxAge, cfg.CRLValidity)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	lim := deps.Limiter
	if lim == nil {
		lim = limit.New(cfg.Limits)
	}
	log := o.log.With("component", "enroll")
	acmeBase := ""
	if cfg.BaseURL != "" {
		acmeBase = cfg.BaseURL + "/acme"
	}
	nonceKey := deps.ACMENonceKey
	if kd, ok := deps.CA.(KeyDeriver); ok && nonceKey == nil {
		k, err := kd.DeriveKey("acme nonce", acme.NonceKeyLen)
		if err != nil {
			log.Warn("acme nonces are valid on this node only: no key derived from the CA", "err", err)
		}
		nonceKey = k
	}
	aopts := []acme.Option{acme.WithLogger(o.log), acme.WithClock(o.now)}
	if o.metrics != nil {
		aopts = append(aopts, acme.WithMetrics(o.metrics))
	}
	if deps.Gate != nil {
		aopts = append(aopts, acme.WithGate(deps.Gate))
	}
	as, err := acme.New(acme.Config{
		Prefix: "/acme", BaseURL: acmeBase, Profiles: cfg.Profiles, DefaultProfile: cfg.DefaultProfile,
	}, acme.Deps{Issuer: deps.CA, Attester: deps.Attester, Store: deps.Store, Limiter: lim, Accounts: deps.Accounts,
		NonceKey: nonceKey}, aopts...)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	s := &Service{cfg: cfg, ca: deps.CA, store: deps.Store, scep: deps.SCEP, acme: as, log: log, now: o.now, holds: deps.Holds}
	s.stopWatch = sync.OnceFunc(deps.Store.Watch(s.onChange))
	return s, nil
}

// Handler is the HTTPS handler: /acme/, /scep, /crl, /crl.pem.
func (s *Service) Handler() http.Handler {
	m := http.NewServeMux()
	// ACME caps its own bodies and answers with a problem document.
	m.Handle("/acme/", s.acme.Handler())
	s.mountCommon(m)
	return m
}

// PlainHandler is the plain-HTTP handler: /scep, /crl and /crl.pem only.
// SCEP protects its payloads with CMS, and CRLs are signed.
func (s *Service) PlainHandler() http.Handler {
	m := http.NewServeMux()
	s.mountCommon(m)
	return m
}

func (s *Service) mountCommon(m *http.ServeMux) {
	if s.scep != nil {
		h := s.capBodies(s.scep)
		m.Handle("/scep", h)
		m.Handle("/scep/", h)
	}
	crl := s.capBodies(http.HandlerFunc(s.handleCRL))
	m.Handle("GET /crl", crl)
	m.Handle("GET /crl.der", crl)
	m.Handle("GET /crl.pem", crl)
}

// capBodies bounds every request body; a handler reading past the cap gets
// an error (and the connection is closed after the response).
func (s *Service) capBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// NewHTTPServer returns an http.Server with timeouts suited to enrollment
// traffic: slow-loris bounded by ReadHeaderTimeout, whole requests by
// ReadTimeout, and a header size cap that still fits SCEP GET requests
// (the PKI message travels base64 in the query). tlsCfg may be nil (plain
// HTTP); otherwise it is cloned with a TLS 1.2 floor.
func NewHTTPServer(addr string, h http.Handler, tlsCfg *tls.Config) *http.Server {
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if tlsCfg != nil {
		c := tlsCfg.Clone()
		if c.MinVersion < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
		}
		srv.TLSConfig = c
	}
	return srv
}
