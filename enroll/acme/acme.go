// Package acme is hardbound's RFC 8555 server for device certificates with
// the device-attest-01 challenge (draft-ietf-acme-device-attest).
//
// A device creates an account, orders a certificate for one
// permanent-identifier (or hardware-module) identifier, answers the
// device-attest-01 challenge with a hardware attestation object bound to the
// challenge, then finalizes with a CSR whose key must be the attested key.
// Issuance (certificate, device, attestation, audit event) is recorded in
// the store in one transaction before the finalize response is sent.
//
// Orders (with their authorization and challenge) live in the store, and
// Replay-Nonces verify on every node holding the same nonce key, their
// single use claimed in the store: every node of a store serves every
// request of an enrollment (docs/acme.md). Accounts go through
// AccountStore.
//
// Metrics (through the Metrics interface): enrollments by protocol ("acme"),
// attestation format and result; issuance latency.
package acme

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/gate"
	"hardbound/enroll/limit"
	"hardbound/store"
	"hardbound/store/policy"
)

// Profile is an enrollment profile as the ACME server needs it.
type Profile struct {
	Name     string
	Validity time.Duration // zero: the CA default
	// Formats lists the attestation formats the profile accepts; empty
	// means any hardware format. policy.FormatNone matters to SCEP only:
	// device-attest-01 is attestation.
	Formats policy.Formats
	// RequireInventory refuses devices without an inventory record
	// (docs/inventory.md). Configuration defaults it to true; the zero
	// Profile of a library caller does not require it.
	RequireInventory bool
	// Minimums are what the attested facts must meet (min_os,
	// min_patch_level); posture checks the same at every authentication.
	Minimums policy.Minimums
}

func (p Profile) allows(format string) bool {
	return policy.IsHardware(format) && p.Formats.Admits(format)
}

// Issuer signs device certificates; *ca.CA satisfies it.
type Issuer interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*x509.Certificate, error)
	Issuing() *x509.Certificate
}

// Attester verifies device-attest-01 attestation objects; *attest.Verifier
// satisfies it.
type Attester interface {
	VerifyACME(ctx context.Context, attObj []byte, keyAuthorization string) (*attest.Result, error)
}

// Store is the part of store.Store the ACME server writes to.
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	// The inventory gate (gate.go) finds a device by the identities its
	// evidence proves, and learns its format from its bindings.
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
	RecordIssuance(ctx context.Context, is store.Issuance) error
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	// Orders, their certificates' DER for download, and nonce claims.
	OrderStore
	NonceClaimer
	GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error)
}

// Metrics receives enrollment outcomes. Labels are bounded: protocol is
// "acme"; format is an attestation format or "unknown"; result is one of
// ok, bad_attestation, bad_csr, rejected_identifier, unauthorized,
// rate_limited, malformed, bad_nonce, not_found, too_large,
// unsupported_identifier, order_not_ready, not_in_inventory,
// profile_mismatch, platform_mismatch, below_minimum, error.
type Metrics interface {
	Enrollment(protocol, format, result string)
	IssuanceLatency(protocol string, d time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) Enrollment(string, string, string)     {}
func (nopMetrics) IssuanceLatency(string, time.Duration) {}

// Config configures the server. Zero values get the defaults noted.
type Config struct {
	// Prefix is the URL path the handler is mounted at (default "/acme").
	Prefix string
	// BaseURL is the absolute URL of Prefix as clients see it, e.g.
	// "https://enroll.example.com:8443/acme". Empty: "https://" + the
	// request's Host + Prefix. Set it behind a reverse proxy.
	BaseURL string
	// Profiles are the enrollment profiles; at least one.
	Profiles []Profile
	// DefaultProfile serves /directory and /new-order; empty: the first
	// profile. Every profile also has /profile/<name>/directory.
	DefaultProfile string

	NonceTTL time.Duration // default 30m
	OrderTTL time.Duration // default 1h
	// MaxOrdersPerAccount bounds an account's unexpired orders, finished
	// or not (default 100): a client that abandons orders is refused new
	// ones (rateLimited) until its old ones expire. A device enrolls with
	// a few; a tool enrolling many devices with one account needs more.
	MaxOrdersPerAccount int
	MaxBodyBytes        int64 // default 128 KiB (attestation objects are a few KiB)
}

// Deps are the collaborators. Issuer, Attester and Store are required.
type Deps struct {
	Issuer   Issuer
	Attester Attester
	Store    Store
	// Limiter, if set, rate-limits newAccount and challenge answers per IP
	// and newOrder per device, IP and profile.
	Limiter *limit.Limiter
	// Accounts defaults to NewMemAccounts(0).
	Accounts AccountStore
	// NonceKey (NonceKeyLen octets) authenticates Replay-Nonces. Nodes
	// that share a store must share it, so that a nonce issued by one is
	// accepted by another; nil: a random key of this Server's own.
	NonceKey []byte
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithGate makes the server apply g, shared with the other protocols and
// replaced on a configuration reload (gate.SetProfiles), instead of a gate
// of its own built from the profiles' RequireInventory and Minimums.
func WithGate(g *gate.Gate) Option {
	return func(s *Server) { s.gate = g }
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// WithMetrics sets the metrics sink.
func WithMetrics(m Metrics) Option {
	return func(s *Server) {
		if m != nil {
			s.metrics = m
		}
	}
}

// Server is the ACME server. Handler serves it.
type Server struct {
	cfg      Config
	profiles map[string]Profile
	deflt    string
	issuer   Issuer
	attester Attester
	store    Store
	limiter  *limit.Limiter
	accounts AccountStore
	log      *slog.Logger
	now      func() time.Time
	metrics  Metrics
	nonces   *nonces
	orders   OrderStore
	gate     *gate.Gate
	// anonAudit bounds audit events for refusals of unauthenticated
	// requests (bad JWS, bad nonce, oversize body): each is audited, but a
	// flood of garbage must not turn into a flood of durable writes.
	anonAudit *rate.Limiter
	mux       *http.ServeMux
}

// New checks cfg and deps and returns a Server.
func New(cfg Config, deps Deps, opts ...Option) (*Server, error) {
	if deps.Issuer == nil || deps.Attester == nil || deps.Store == nil {
		return nil, errors.New("acme: Issuer, Attester and Store are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/acme"
	}
	cfg.Prefix = "/" + strings.Trim(cfg.Prefix, "/")
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 30 * time.Minute
	}
	if cfg.OrderTTL <= 0 {
		cfg.OrderTTL = time.Hour
	}
	if cfg.MaxOrdersPerAccount <= 0 {
		cfg.MaxOrdersPerAccount = 100
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 128 << 10
	}
	if len(cfg.Profiles) == 0 {
		return nil, errors.New("acme: at least one profile is required")
	}
	nonceKey := deps.NonceKey
	switch {
	case nonceKey == nil:
		nonceKey = make([]byte, NonceKeyLen)
		_, _ = rand.Read(nonceKey) // crypto/rand.Read never fails (Go 1.24+)
	case len(nonceKey) != NonceKeyLen:
		return nil, fmt.Errorf("acme: nonce key of %d bytes, want %d", len(nonceKey), NonceKeyLen)
	}
	s := &Server{
		cfg: cfg, profiles: map[string]Profile{},
		issuer: deps.Issuer, attester: deps.Attester, store: deps.Store,
		limiter: deps.Limiter, accounts: deps.Accounts,
		log: slog.New(slog.DiscardHandler), now: time.Now, metrics: nopMetrics{},
		anonAudit: rate.NewLimiter(5, 50),
	}
	for _, o := range opts {
		o(s)
	}
	for i, p := range cfg.Profiles {
		if err := policy.CheckName(p.Name); err != nil {
			return nil, fmt.Errorf("acme: profiles[%d].name: %w", i, err)
		}
		if _, dup := s.profiles[p.Name]; dup {
			return nil, fmt.Errorf("acme: profiles[%d].name %q: duplicate", i, p.Name)
		}
		if err := p.Formats.Check(); err != nil {
			return nil, fmt.Errorf("acme: profiles[%d].formats: %w", i, err)
		}
		s.profiles[p.Name] = p
	}
	s.deflt = cfg.DefaultProfile
	if s.deflt == "" {
		s.deflt = cfg.Profiles[0].Name
	}
	if _, ok := s.profiles[s.deflt]; !ok {
		return nil, fmt.Errorf("acme: default profile %q is not a configured profile", s.deflt)
	}
	if s.accounts == nil {
		s.accounts = NewMemAccounts(0)
	}
	if s.gate == nil {
		gps := make([]gate.Profile, 0, len(cfg.Profiles))
		for _, p := range cfg.Profiles {
			gps = append(gps, gate.Profile{Name: p.Name, RequireInventory: p.RequireInventory, Minimums: p.Minimums})
		}
		g, err := gate.New(deps.Store, gps, s.deflt)
		if err != nil {
			return nil, fmt.Errorf("acme: %w", err)
		}
		s.gate = g
	}
	s.log = s.log.With("component", "enroll", "protocol", "acme")
	s.nonces = newNonces(append([]byte(nil), nonceKey...), cfg.NonceTTL, s.now, deps.Store)
	s.orders = deps.Store
	s.routes()
	return s, nil
}

// Handler serves the ACME API under cfg.Prefix. Mount it on an HTTPS mux
// at Prefix + "/" without stripping the prefix.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	p := s.cfg.Prefix
	m := http.NewServeMux()
	m.HandleFunc("GET "+p+"/directory", s.handleDirectory)
	m.HandleFunc("GET "+p+"/profile/{profile}/directory", s.handleDirectory)
	m.HandleFunc("GET "+p+"/new-nonce", s.handleNewNonce)
	m.HandleFunc("POST "+p+"/new-nonce", s.handleNewNonce)
	m.HandleFunc("POST "+p+"/new-account", s.post(true, s.handleNewAccount))
	m.HandleFunc("POST "+p+"/new-order", s.post(false, s.handleNewOrder))
	m.HandleFunc("POST "+p+"/profile/{profile}/new-order", s.post(false, s.handleNewOrder))
	m.HandleFunc("POST "+p+"/acct/{id}", s.post(false, s.handleAccount))
	m.HandleFunc("POST "+p+"/acct/{id}/orders", s.post(false, s.handleAccountOrders))
	m.HandleFunc("POST "+p+"/order/{id}", s.post(false, s.handleOrder))
	m.HandleFunc("POST "+p+"/order/{id}/finalize", s.post(false, s.handleFinalize))
	m.HandleFunc("POST "+p+"/authz/{id}", s.post(false, s.handleAuthz))
	m.HandleFunc("POST "+p+"/chall/{id}", s.post(false, s.handleChallenge))
	m.HandleFunc("POST "+p+"/cert/{id}", s.post(false, s.handleCert))
	m.HandleFunc("POST "+p+"/revoke-cert", s.post(false, s.handleUnsupported))
	m.HandleFunc("POST "+p+"/key-change", s.post(false, s.handleUnsupported))
	s.mux = m
}

// base is the absolute URL of the prefix for this request.
func (s *Server) base(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	return "https://" + r.Host + s.cfg.Prefix
}

// requestURL is the URL the client must have put in the JWS "url" header.
func (s *Server) requestURL(r *http.Request) string {
	return s.base(r) + strings.TrimPrefix(r.URL.Path, s.cfg.Prefix)
}

func (s *Server) commonHeaders(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Replay-Nonce", s.nonces.issue())
	w.Header().Add("Link", `<`+s.base(r)+`/directory>;rel="index"`)
}

type directory struct {
	NewNonce   string        `json:"newNonce"`
	NewAccount string        `json:"newAccount"`
	NewOrder   string        `json:"newOrder"`
	RevokeCert string        `json:"revokeCert"`
	KeyChange  string        `json:"keyChange"`
	Meta       directoryMeta `json:"meta"`
}

type directoryMeta struct {
	Profile string `json:"profile"`
	// Profiles is the draft ACME profiles extension's shape: name -> description.
	Profiles map[string]string `json:"profiles,omitempty"`
}

func (s *Server) handleDirectory(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profile")
	b := s.base(r)
	newOrder := b + "/new-order"
	if name == "" {
		name = s.deflt
	} else {
		if _, ok := s.profiles[name]; !ok {
			writeProblem(w, notFound("profile"))
			return
		}
		newOrder = b + "/profile/" + name + "/new-order"
	}
	names := map[string]string{}
	for n, p := range s.profiles {
		names[n] = "device certificates; attestation formats: " + strings.Join(formatsOf(p), ", ")
	}
	writeJSON(w, http.StatusOK, directory{
		NewNonce: b + "/new-nonce", NewAccount: b + "/new-account", NewOrder: newOrder,
		RevokeCert: b + "/revoke-cert", KeyChange: b + "/key-change",
		Meta: directoryMeta{Profile: name, Profiles: names},
	})
}

func formatsOf(p Profile) []string {
	var out []string
	for _, f := range policy.HardwareFormats() {
		if p.allows(f) {
			out = append(out, f)
		}
	}
	return out
}

func (s *Server) handleNewNonce(w http.ResponseWriter, r *http.Request) {
	s.commonHeaders(w, r)
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodGet {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusOK) // HEAD (RFC 8555 §7.2)
}

// request is a verified ACME POST.
type request struct {
	r         *http.Request
	payload   []byte
	postAsGet bool
	account   *Account // nil for jwk-signed requests (newAccount)
	jwk       *jose.JSONWebKey
	ip        string
	// device and format, once a handler knows them, name the refusal's
	// actor and metric label.
	device, format string
}

type handlerFunc func(w http.ResponseWriter, req *request) *Problem

// post wraps a handler with the RFC 8555 §6.2-§6.5 request checks: body
// size, JWS shape, signature, nonce (single use), url and account.
// jwkOnly marks newAccount, the one resource that takes jwk not kid.
func (s *Server) post(jwkOnly bool, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.commonHeaders(w, r)
		req, p := s.verify(w, r, jwkOnly)
		if p == nil {
			p = h(w, req)
		}
		if p == nil {
			return
		}
		rf := refusal{actor: "acme:anonymous", ip: clientIP(r), authenticated: req != nil}
		if req != nil && req.account != nil {
			rf.actor, rf.subject = "acme:"+req.account.ID, req.account.ID
		}
		if req != nil && req.device != "" {
			rf.actor, rf.subject, rf.format = "device:"+req.device, req.device, req.format
		}
		s.refuse(r.Context(), p, rf)
		writeProblem(w, p)
	}
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, jwkOnly bool) (*request, *Problem) {
	body, p := readBody(w, r, s.cfg.MaxBodyBytes)
	if p != nil {
		return nil, p
	}
	jr, p := parseJWS(body)
	if p != nil {
		return nil, p
	}
	req := &request{r: r, ip: clientIP(r)}
	var key *jose.JSONWebKey
	switch {
	case jwkOnly && jr.jwk == nil:
		return nil, malformed("newAccount must be signed with a jwk, not a kid")
	case !jwkOnly && jr.jwk != nil:
		return nil, malformed("requests other than newAccount must use kid")
	case jr.jwk != nil:
		key = jr.jwk
	default:
		acct, p := s.accountByKID(r, jr.kid)
		if p != nil {
			return nil, p
		}
		req.account = acct
		key = acct.Key
	}
	payload, err := jr.jws.Verify(key)
	if err != nil {
		return nil, malformed("JWS signature does not verify")
	}
	// The nonce is consumed only after the signature verified, so forged
	// requests cannot burn a client's nonces; a replayed request fails here.
	if err := s.nonces.consume(r.Context(), jr.nonce); errors.Is(err, errBadNonce) {
		return nil, problem(ProblemBadNonce, http.StatusBadRequest, "bad_nonce", "nonce is unknown, expired or already used")
	} else if err != nil {
		s.log.Error("nonce claim failed", "err", err)
		return nil, internalErr(err, "nonce check failed")
	}
	if jr.url != s.requestURL(r) {
		return nil, unauthorized("JWS url %q does not match the request URL", jr.url)
	}
	req.jwk = key
	req.payload = payload
	req.postAsGet = len(payload) == 0
	return req, nil
}

func (s *Server) accountByKID(r *http.Request, kid string) (*Account, *Problem) {
	prefix := s.base(r) + "/acct/"
	id, ok := strings.CutPrefix(kid, prefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, problem(ProblemAccountDoesNotExist, http.StatusBadRequest, "unauthorized", "kid is not an account URL of this server")
	}
	a, err := s.accounts.Get(r.Context(), id)
	if errors.Is(err, ErrAccountNotFound) {
		return nil, problem(ProblemAccountDoesNotExist, http.StatusBadRequest, "unauthorized", "account does not exist")
	}
	if err != nil {
		s.log.Error("account lookup failed", "err", err)
		return nil, internalErr(err, "account lookup failed")
	}
	if a.Status != AccountValid {
		return nil, unauthorized("account is %s", a.Status)
	}
	return a, nil
}

func (s *Server) handleUnsupported(w http.ResponseWriter, req *request) *Problem {
	return problem(ProblemUnauthorized, http.StatusForbidden, "unauthorized",
		"not offered: certificates are revoked by administrators, and account keys are replaced by creating a new account")
}

// allow applies the rate limits and maps a refusal to rateLimited.
func (s *Server) allow(device, ip, profile string) *Problem {
	err := s.limiter.Allow(device, ip, profile)
	if err == nil {
		return nil
	}
	p := problem(ProblemRateLimited, http.StatusTooManyRequests, "rate_limited", "%v", err)
	var le *limit.Error
	if errors.As(err, &le) {
		p.retryAfter = le.RetryAfter
		p.Detail = "too many requests per " + string(le.Kind)
	}
	return p
}

type refusal struct {
	actor, subject, ip string
	format             string
	authenticated      bool
}

// refuse records a refusal: metric, log, and an audit event. Refusals of
// unauthenticated requests are audited through a global budget.
func (s *Server) refuse(ctx context.Context, p *Problem, rf refusal) {
	reason := p.reason
	if reason == "" {
		reason = "error"
	}
	format := rf.format
	if format == "" {
		format = "unknown"
	}
	s.metrics.Enrollment("acme", format, reason)
	if !rf.authenticated {
		// Garbage is cheap to send: keep it out of the info log.
		s.log.Debug("acme request refused", "actor", rf.actor, "source", rf.ip, "type", p.Type, "detail", p.Detail)
		if !s.anonAudit.Allow() {
			return
		}
	} else {
		s.log.Info("acme request refused", "actor", rf.actor, "source", rf.ip, "type", p.Type, "detail", p.Detail)
	}
	s.audit(ctx, &store.AuditEvent{
		Actor: rf.actor, Action: "enroll.acme", Subject: rf.subject,
		Result: auditResult(p), Reason: reason + ": " + p.Detail, Source: rf.ip,
	})
}

func auditResult(p *Problem) string {
	if p.Status >= 500 {
		return "error"
	}
	return "reject"
}

// audit appends ev; a failure is logged, not returned: the client's answer
// does not depend on it, and a refusal must still be sent.
func (s *Server) audit(ctx context.Context, ev *store.AuditEvent) {
	ev.V = store.RecordVersion
	ev.Time = s.now().UTC()
	if err := s.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// clientIP is the TCP peer address without port. X-Forwarded-For is not
// trusted: rate limits keyed on a header would be trivially bypassed.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
