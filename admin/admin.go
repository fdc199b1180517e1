// Package admin is hardbound's admin HTTPS API. The CLI is its client.
//
// Every request but GET /api/v1/health needs "Authorization: Bearer <token>";
// tokens are kept only as SHA-256 hashes and compared in constant time. A
// missing or wrong token is a 401 and an audit event. Every mutating call is
// an audit event whose actor is "admin:<token name>".
//
// Requests and answers are this package's own types (api.go), each made
// from its store record in one function, so what the API shows is decided
// here and not by the records' layout; errors are mapped to statuses in one
// place (errors.go).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"hardbound/admin/token"
	"hardbound/store"
	"hardbound/store/auditbudget"
)

// Token is an admin credential (token.Token): name, scope, expiry and the
// SHA-256 of its value.
type Token = token.Token

// HashToken returns the stored form of a token value.
func HashToken(value string) [32]byte { return token.Hash(value) }

// LoadTokens reads a token file (token.Parse); a file with no token is an
// error.
func LoadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin: tokens: %w", err)
	}
	defer f.Close()
	out, err := token.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("admin: %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin: %s holds no token", path)
	}
	return out, nil
}

// Server is the admin HTTP handler.
type Server struct {
	deps    Deps
	tokens  Tokens
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	maxBody int64
	metrics Metrics
	budget  *auditbudget.Budget // audits of unauthenticated refusals (refusals.go)
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) { s.log = l.With("component", "admin") }
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New builds the API handler.
func New(deps Deps, tokens []Token, opts ...Option) (*Server, error) {
	if deps.Store == nil || deps.Standing == nil {
		return nil, errors.New("admin: Store and Standing are required")
	}
	toks := deps.Tokens
	if toks == nil {
		if len(tokens) == 0 {
			return nil, errors.New("admin: at least one token is required")
		}
		toks = token.NewSet(tokens)
	}
	s := &Server{deps: deps, tokens: toks, log: slog.New(slog.DiscardHandler), now: time.Now, maxBody: 1 << 20,
		metrics: nopMetrics{}, budget: auditbudget.New(0, 0)}
	for _, o := range opts {
		o(s)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/health", s.health)
	s.auth(m, "GET /api/v1/devices", reads, s.listDevices)
	s.auth(m, "GET /api/v1/devices/{id}", reads, s.getDevice)
	s.auth(m, "POST /api/v1/devices/{id}/quarantine", writes, s.quarantine)
	s.auth(m, "POST /api/v1/devices/{id}/release", writes, s.release)
	s.auth(m, "POST /api/v1/devices/{id}/revoke", writes, s.revokeDevice)
	s.auth(m, "POST /api/v1/devices/{id}/posture", writes, s.setPosture)
	s.auth(m, "GET /api/v1/certs", reads, s.listCerts)
	s.auth(m, "GET /api/v1/certs/{serial}", reads, s.getCert)
	s.auth(m, "POST /api/v1/certs/{serial}/revoke", writes, s.revokeCert)
	s.auth(m, "GET /api/v1/sessions", reads, s.listSessions)
	s.auth(m, "GET /api/v1/audit", reads, s.tailAudit)
	s.auth(m, "GET /api/v1/audit/verify", reads, s.verifyAudit)
	s.auth(m, "POST /api/v1/audit/verify", reads, s.verifyAudit)
	s.auth(m, "GET /api/v1/audit/export", reads, s.exportAudit)
	s.auth(m, "POST /api/v1/scep/challenges", writes, s.mintChallenge)
	s.auth(m, "GET /api/v1/attestations/{id}", reads, s.getAttestation)
	s.auth(m, "POST /api/v1/attestations/activate", enrolls, s.activate)
	s.auth(m, "POST /api/v1/attestations", enrolls, s.attest)
	s.auth(m, "POST /api/v1/dev/devices", writes, s.devEnroll)
	s.auth(m, "POST /api/v1/nas", writes, s.issueNAS)
	s.auth(m, "POST /api/v1/config/reload", writes, s.reloadConfig)
	s.auth(m, "POST /api/v1/resumption/rotate-keys", writes, s.rotateTicketKeys)
	s.inventoryRoutes(m)
	s.auth(m, "GET /api/v1/tokens", manages, s.listTokens)
	s.auth(m, "POST /api/v1/tokens", manages, s.createToken)
	s.auth(m, "POST /api/v1/tokens/{name}/revoke", manages, s.revokeToken)
	// Anything else under /api/ is a JSON 404 that says what was not found.
	m.HandleFunc("/api/", s.notFound)
	s.mux = m
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

type ctxActor struct{}

func actorOf(ctx context.Context) string {
	a, _ := ctx.Value(ctxActor{}).(string)
	return a
}

// access is what a route does, which decides the scopes it admits.
type access int

const (
	reads   access = iota // GET of devices, certs, sessions, audit: admin, read
	writes                // any change: admin
	enrolls               // the device-side flows (TPM activation, attestation): admin, enroll
	manages               // the tokens themselves: admin
)

// Allowed reports whether a token of scope may use a route of kind a.
func (a access) allowed(sc token.Scope) bool {
	switch sc {
	case token.Admin:
		return true
	case token.Read:
		return a == reads
	case token.Enroll:
		return a == enrolls
	}
	return false
}

func (a access) String() string {
	return [...]string{"read", "write", "enroll", "token management"}[a]
}

// auth registers h behind bearer-token authentication and the scope check.
// A missing, wrong or expired token is a 401, a token whose scope does not
// cover the route a 403; both are audit events, the 403 with the token's
// name as actor.
func (s *Server) auth(m *http.ServeMux, pattern string, need access, h http.HandlerFunc) {
	m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		tok, reason := s.check(r.Header.Get("Authorization"))
		if reason != "" {
			// Unauthenticated refusals go through the audit budget: a
			// flood of wrong tokens cannot grow the chain without bound.
			s.denied(r.Context(), r.Method, r.URL.Path, reason, r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="hardbound"`)
			writeErr(w, http.StatusUnauthorized, "unauthorized: "+strings.ReplaceAll(reason, "_", " "))
			return
		}
		actor := "admin:" + tok.Name
		if sc := tok.EffectiveScope(); !need.allowed(sc) {
			s.record(r.Context(), &store.AuditEvent{Actor: actor, Action: "admin.auth", Subject: r.Method + " " + r.URL.Path,
				Result: "denied", Reason: "scope", Source: r.RemoteAddr})
			writeErr(w, http.StatusForbidden, fmt.Sprintf("forbidden: a %s token may not %s (%s %s)", sc, need, r.Method, r.URL.Path))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		h(w, r.WithContext(context.WithValue(r.Context(), ctxActor{}, actor)))
	})
}

// check finds the bearer token (token.Set compares in constant time) and
// returns it, or the audit reason it was refused for.
func (s *Server) check(header string) (Token, string) {
	if header == "" {
		return Token{}, "missing_token"
	}
	v, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || strings.TrimSpace(v) == "" {
		return Token{}, "wrong_token"
	}
	t, err := s.tokens.Check(strings.TrimSpace(v), s.now())
	switch {
	case errors.Is(err, token.ErrExpired):
		return Token{}, "expired_token"
	case err != nil:
		if errors.Is(err, token.ErrFile) {
			s.log.Warn("admin token check", "err", err)
		}
		return Token{}, "wrong_token"
	}
	return t, ""
}

// notFound answers a path no route has: what was not found, in JSON.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeErr(w, http.StatusNotFound, fmt.Sprintf("not found: no API endpoint %s %s (see GET /api/v1/health; endpoints are listed in docs/admin.md)", r.Method, r.URL.Path))
}

func (s *Server) record(ctx context.Context, ev *store.AuditEvent) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	if err := s.deps.Store.AppendAudit(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "action", ev.Action, "err", err)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
