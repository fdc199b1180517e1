package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"hardbound/enroll/ca"
	"hardbound/enroll/limit"
	"hardbound/posture"
	"hardbound/store"
)

// CA is what the responder needs from the issuing CA; *ca.CA satisfies it.
// Sign certifies the delegated responder key (RFC 6960 §4.2.2.2).
type CA interface {
	Issuing() *x509.Certificate
	Sign(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error)
}

// Store is what the responder reads; store.Store satisfies it. Cached
// answers follow the change feed.
type Store interface {
	store.Watcher
	GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error)
	GetDevice(ctx context.Context, id string) (*store.Device, error)
}

// Decider is the authentication decision; *posture.Service satisfies it.
type Decider interface {
	Decide(ctx context.Context, leaf *x509.Certificate) posture.Verdict
}

// Config configures a Responder. Zero durations get the defaults noted.
type Config struct {
	// Validity is nextUpdate - thisUpdate of every answer (default 10m):
	// how long a relying party may keep believing it.
	Validity time.Duration
	// Refresh is how long a signed answer is served from memory before it
	// is decided and signed again even without a change in the store
	// (default 1m). Posture can go stale by the clock alone.
	Refresh time.Duration
	// SignerValidity is the lifetime of the delegated signing certificate
	// (default 48h); a new key is certified at half of it.
	SignerValidity time.Duration
	// Posture makes the answers follow the authentication decision for
	// the profiles in PostureProfiles (every profile when empty): a
	// certificate the decision refuses for its device's standing answers
	// revoked/certificateHold (docs/ocsp.md).
	Posture         bool
	PostureProfiles []string
	// CacheSize bounds the cached answers (default 65536).
	CacheSize int
	// NonceRate bounds, per client address, the answers signed for a
	// nonce (each costs a signature; default 100/s, burst 100). Past it
	// the nonce is ignored and the pre-signed answer served, which RFC
	// 5019 §4 lets a responder do; the client sees no nonce echoed.
	NonceRate limit.Rate
}

// Metrics receives responder outcomes; the wiring adapts it to
// Prometheus (admin/metrics). Labels are bounded: status is good, revoked,
// hold, unknown, or the OCSP error status (malformed, unauthorized,
// try_later, internal_error); result is ok or error.
type Metrics interface {
	Response(status string)
	// CacheLookup counts a lookup of the decided-answer cache.
	CacheLookup(hit bool)
	// SignerRotation counts the certification of a new delegated signer.
	SignerRotation(result string)
}

type nopMetrics struct{}

func (nopMetrics) Response(string)       {}
func (nopMetrics) CacheLookup(bool)      {}
func (nopMetrics) SignerRotation(string) {}

// Responder answers OCSP requests for the issuing CA's certificates.
type Responder struct {
	cfg      Config
	ca       CA
	issuer   *x509.Certificate
	store    Store
	decider  Decider
	log      *slog.Logger
	now      func() time.Time
	metrics  Metrics
	profiles map[string]bool

	// issuer hashes per request hash algorithm
	nameHash map[crypto.Hash][]byte
	keyHash  map[crypto.Hash][]byte

	signerMu sync.Mutex
	signer   atomic.Pointer[signerKey]

	cache     answerCache
	nonceLim  *limit.Limiter
	stopWatch func()
}

// Option configures a Responder.
type Option func(*Responder)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Responder) { r.log = l } }

// WithMetrics sets the metrics sink; the default is a no-op.
func WithMetrics(m Metrics) Option {
	return func(r *Responder) {
		if m != nil {
			r.metrics = m
		}
	}
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(r *Responder) { r.now = now } }

// New builds a Responder. decider may be nil only when cfg.Posture is off.
// Close ends its store subscription.
func New(cfg Config, authority CA, st Store, decider Decider, opts ...Option) (*Responder, error) {
	if authority == nil || st == nil {
		return nil, errors.New("ocsp: CA and Store are required")
	}
	if cfg.Posture && decider == nil {
		return nil, errors.New("ocsp: posture answers need the decision (Decider)")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 10 * time.Minute
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Minute
	}
	if cfg.Refresh > cfg.Validity {
		return nil, fmt.Errorf("ocsp: refresh %s exceeds validity %s", cfg.Refresh, cfg.Validity)
	}
	if cfg.SignerValidity <= 0 {
		cfg.SignerValidity = 48 * time.Hour
	}
	if cfg.SignerValidity < 4*cfg.Validity {
		return nil, fmt.Errorf("ocsp: signer validity %s must be at least 4x the answer validity %s", cfg.SignerValidity, cfg.Validity)
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1 << 16
	}
	if cfg.NonceRate == (limit.Rate{}) {
		cfg.NonceRate = limit.Rate{Every: 10 * time.Millisecond, Burst: 100}
	}
	r := &Responder{cfg: cfg, ca: authority, issuer: authority.Issuing(), store: st, decider: decider,
		log: slog.New(slog.DiscardHandler), now: time.Now, metrics: nopMetrics{},
		nameHash: map[crypto.Hash][]byte{}, keyHash: map[crypto.Hash][]byte{}}
	for _, o := range opts {
		o(r)
	}
	r.log = r.log.With("component", "ocsp")
	if len(cfg.PostureProfiles) > 0 {
		r.profiles = map[string]bool{}
		for _, p := range cfg.PostureProfiles {
			r.profiles[p] = true
		}
	}
	if r.issuer == nil {
		return nil, errors.New("ocsp: CA has no issuing certificate")
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		d := h.New()
		d.Write(r.issuer.RawSubject)
		r.nameHash[h] = d.Sum(nil)
		kh, err := keyHashOf(r.issuer, h)
		if err != nil {
			return nil, err
		}
		r.keyHash[h] = kh
	}
	r.cache.init(cfg.CacheSize)
	r.nonceLim = limit.New(limit.Config{PerIP: cfg.NonceRate}, limit.WithClock(r.now))
	r.stopWatch = sync.OnceFunc(st.Watch(r.onChange))
	return r, nil
}

// Close ends the store subscription.
func (r *Responder) Close() { r.stopWatch() }

// Respond answers one DER OCSPRequest with a DER OCSPResponse. Every
// outcome is a response: a malformed request is malformedRequest, a
// certificate of another CA unauthorized, a store failure tryLater
// (RFC 6960 §2.3). cacheable reports a signed answer without a nonce,
// which HTTP caches may keep (RFC 5019 §6).
func (r *Responder) Respond(ctx context.Context, der []byte) (resp []byte, cacheable bool) {
	return r.respond(ctx, der, "")
}

// respond is Respond for a client at ip ("": unknown, never limited).
func (r *Responder) respond(ctx context.Context, der []byte, ip string) (resp []byte, cacheable bool) {
	resp, cacheable, status := r.answer(ctx, der, ip)
	r.metrics.Response(status)
	return resp, cacheable
}

// answer is respond with the metric status of the response.
func (r *Responder) answer(ctx context.Context, der []byte, ip string) (resp []byte, cacheable bool, status string) {
	req, err := ParseRequest(der)
	if err != nil {
		r.log.Debug("OCSP request refused", "err", err)
		return xocsp.MalformedRequestErrorResponse, false, "malformed"
	}
	if req.Nonce != nil && ip != "" && r.nonceLim.Allow("", ip, "") != nil {
		req.Nonce = nil
	}
	if !bytes.Equal(req.IssuerNameHash, r.nameHash[req.Hash]) || !bytes.Equal(req.IssuerKeyHash, r.keyHash[req.Hash]) {
		return xocsp.UnauthorizedErrorResponse, false, "unauthorized"
	}
	serial := ca.SerialString(req.Serial)
	now := r.now()
	// The cached DER is for this serial and hash algorithm without a
	// nonce; a request with a nonce reuses only the decided answer.
	e, hit := r.cache.get(serial, now)
	r.metrics.CacheLookup(hit)
	if hit {
		if req.Nonce == nil && e.der != nil && e.hash == req.Hash {
			return e.der, true, answerStatus(e.answer)
		}
		resp, err := r.signAnswer(ctx, req, e.answer, now)
		if err != nil {
			return xocsp.InternalErrorErrorResponse, false, "internal_error"
		}
		return resp, false, answerStatus(e.answer)
	}
	gen := r.cache.generation()
	a, deviceID, err := r.decide(ctx, serial)
	if err != nil {
		r.log.Warn("OCSP answer failed", "serial", serial, "err", err)
		return xocsp.TryLaterErrorResponse, false, "try_later"
	}
	resp, err = r.signAnswer(ctx, req, a, now)
	if err != nil {
		return xocsp.InternalErrorErrorResponse, false, "internal_error"
	}
	r.log.Debug("OCSP answer", "serial", serial, "status", statusName(a.Status), "reason", a.Reason, "why", a.Why)
	cacheDER := resp
	if req.Nonce != nil {
		cacheDER = nil // signed on the next request without a nonce
	}
	r.cache.put(serial, deviceID, entry{answer: a, der: cacheDER, hash: req.Hash, expires: now.Add(r.cfg.Refresh)}, gen)
	return resp, req.Nonce == nil, answerStatus(a)
}

// answerStatus is the metric status of a signed answer: a revocation with
// certificateHold is "hold", the posture answer.
func answerStatus(a Answer) string {
	if a.Status == xocsp.Revoked && a.Reason == xocsp.CertificateHold {
		return "hold"
	}
	return statusName(a.Status)
}

func (r *Responder) signAnswer(ctx context.Context, req *Request, a Answer, now time.Time) ([]byte, error) {
	s, err := r.signerFor(ctx, now)
	if err != nil {
		r.log.Error("OCSP signer unavailable", "err", err)
		return nil, err
	}
	resp, err := sign(s, req, a, now, now.Add(r.cfg.Validity))
	if err != nil {
		r.log.Error("OCSP response signing failed", "err", err)
		return nil, err
	}
	return resp, nil
}

// decide is the status of one serial now, and its device (for the cache
// index). The mapping is docs/ocsp.md's.
func (r *Responder) decide(ctx context.Context, serial string) (Answer, string, error) {
	c, err := r.store.GetCertBySerial(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Answer{Status: xocsp.Unknown, Why: "not issued here"}, "", nil
	case err != nil:
		return Answer{}, "", fmt.Errorf("ocsp: get cert: %w", err)
	}
	if c.Revoked != nil {
		return Answer{Status: xocsp.Revoked, RevokedAt: c.Revoked.At, Reason: c.Revoked.Reason, Why: "revoked"}, c.DeviceID, nil
	}
	if !r.cfg.Posture || (r.profiles != nil && !r.profiles[c.Profile]) {
		return Answer{Status: xocsp.Good, Why: "not revoked"}, c.DeviceID, nil
	}
	leaf, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return Answer{}, "", fmt.Errorf("ocsp: stored certificate %s: %w", serial, err)
	}
	v := r.decider.Decide(ctx, leaf)
	switch v.Reason {
	case posture.ReasonOK, posture.ReasonCertExpired:
		// An expired certificate is not revoked: relying parties check
		// its validity period themselves.
		return Answer{Status: xocsp.Good, Why: string(v.Reason)}, c.DeviceID, nil
	case posture.ReasonUnknownCert:
		// The binding was just read, so the decision failed on a store
		// read: fail closed for this answer, not for the next.
		return Answer{}, "", fmt.Errorf("ocsp: decision for %s failed (unknown_cert)", serial)
	case posture.ReasonStoreUnavailable:
		// The database went away between the two reads: tryLater, not a
		// hold the device did nothing to earn.
		return Answer{}, "", fmt.Errorf("ocsp: decision for %s: %w", serial, store.ErrUnavailable)
	case posture.ReasonCertRevoked:
		// Revoked between the two reads: the next answer has the record.
		return Answer{}, "", fmt.Errorf("ocsp: %s revoked while answering", serial)
	case posture.ReasonDeviceRevoked:
		// RevokeDevice revokes every binding with the device; a binding
		// that is not (yet) revoked is answered for its device.
		return Answer{Status: xocsp.Revoked, RevokedAt: r.heldSince(ctx, c.DeviceID), Reason: xocsp.CessationOfOperation,
			Why: string(v.Reason)}, c.DeviceID, nil
	}
	// Quarantined, noncompliant, stale or unknown posture, attestation
	// below the profile: the authentication refuses (or quarantines) the
	// device for a standing that can change, so the certificate is on
	// hold, the one RFC 5280 reason that may be lifted.
	return Answer{Status: xocsp.Revoked, RevokedAt: r.heldSince(ctx, c.DeviceID), Reason: xocsp.CertificateHold,
		Why: string(v.Reason)}, c.DeviceID, nil
}

// heldSince is the revocationTime of a hold: when the device's standing
// last changed (its record's UpdatedAt), or now if it cannot be read.
func (r *Responder) heldSince(ctx context.Context, id string) time.Time {
	d, err := r.store.GetDevice(ctx, id)
	if err != nil || d.UpdatedAt.IsZero() {
		return r.now()
	}
	if d.Posture.UpdatedAt.After(d.UpdatedAt) {
		return d.Posture.UpdatedAt
	}
	return d.UpdatedAt
}

// signerKey is a delegated responder key and its certificate.
type signerKey struct {
	cert     *x509.Certificate
	key      crypto.Signer
	keyHash  []byte
	rotateAt time.Time
}

// signerFor returns the current signer, certifying a new key at half of
// the old one's life. The key lives in memory only: every node and every
// restart has its own, which a relying party finds in the response.
func (r *Responder) signerFor(ctx context.Context, now time.Time) (*signerKey, error) {
	if s := r.signer.Load(); s != nil && now.Before(s.rotateAt) {
		return s, nil
	}
	r.signerMu.Lock()
	defer r.signerMu.Unlock()
	old := r.signer.Load()
	if old != nil && now.Before(old.rotateAt) {
		return old, nil
	}
	s, err := r.newSigner(ctx, now)
	if err != nil {
		r.metrics.SignerRotation("error")
		// The old certificate still outlives any answer signed now.
		if old != nil && now.Add(r.cfg.Validity).Before(old.cert.NotAfter) {
			r.log.Warn("OCSP signer rotation failed; keeping the current one", "err", err)
			return old, nil
		}
		return nil, err
	}
	r.signer.Store(s)
	r.metrics.SignerRotation("ok")
	r.log.Info("OCSP signing certificate issued", "serial", ca.SerialString(s.cert.SerialNumber), "not_after", s.cert.NotAfter)
	return s, nil
}

func (r *Responder) newSigner(ctx context.Context, now time.Time) (*signerKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ocsp: signer key: %w", err)
	}
	cert, err := r.ca.Sign(ctx, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "hardbound OCSP responder"},
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        now.Add(r.cfg.SignerValidity),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidNoCheck, Value: []byte{0x05, 0x00}}},
	}, key.Public())
	if err != nil {
		return nil, fmt.Errorf("ocsp: certify signer: %w", err)
	}
	kh, err := keyHashOf(cert, crypto.SHA1)
	if err != nil {
		return nil, err
	}
	life := cert.NotAfter.Sub(now)
	return &signerKey{cert: cert, key: key, keyHash: kh, rotateAt: now.Add(life / 2)}, nil
}

// onChange drops the cached answers a write may have changed.
func (r *Responder) onChange(c store.Change) {
	switch c.Kind {
	case store.ChangeReset:
		r.cache.clear()
	case store.ChangeIssued, store.ChangeCertRevoked:
		if c.Cert != nil {
			r.cache.delSerial(c.Cert.Serial)
		}
		r.cache.delDevice(c.DeviceID)
	case store.ChangeDevice, store.ChangeDeviceRevoked, store.ChangeAttestation:
		r.cache.delDevice(c.DeviceID)
		for _, cc := range c.Certs {
			r.cache.delSerial(cc.Serial)
		}
	}
}

func statusName(s int) string {
	switch s {
	case xocsp.Good:
		return "good"
	case xocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}

// DropCache forgets every cached answer (as a ChangeReset does); the next
// request for each serial is decided and signed again.
func (r *Responder) DropCache() { r.cache.clear() }
