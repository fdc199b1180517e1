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
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"hardbound/store"
)

// Token is an admin credential, by name and SHA-256 of its value.
type Token struct {
	Name   string
	SHA256 [32]byte
}

// HashToken returns the stored form of a token value.
func HashToken(value string) [32]byte { return sha256.Sum256([]byte(value)) }

// LoadTokens reads "name sha256hex" lines (blank lines and # comments skipped).
func LoadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin: tokens: %w", err)
	}
	defer f.Close()
	var out []Token
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if !ok || err != nil || len(b) != 32 || name == "" {
			return nil, fmt.Errorf("admin: %s line %d: want \"name sha256hex\"", path, n)
		}
		t := Token{Name: name}
		copy(t.SHA256[:], b)
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("admin: tokens: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin: %s holds no token", path)
	}
	return out, nil
}

// Server is the admin HTTP handler.
type Server struct {
	deps    Deps
	tokens  []Token
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	maxBody int64
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
	if len(tokens) == 0 {
		return nil, errors.New("admin: at least one token is required")
	}
	s := &Server{deps: deps, tokens: tokens, log: slog.New(slog.DiscardHandler), now: time.Now, maxBody: 1 << 20}
	for _, o := range opts {
		o(s)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/health", s.health)
	s.auth(m, "GET /api/v1/devices", s.listDevices)
	s.auth(m, "GET /api/v1/devices/{id}", s.getDevice)
	s.auth(m, "POST /api/v1/devices/{id}/quarantine", s.quarantine)
	s.auth(m, "POST /api/v1/devices/{id}/release", s.release)
	s.auth(m, "POST /api/v1/devices/{id}/revoke", s.revokeDevice)
	s.auth(m, "POST /api/v1/devices/{id}/posture", s.setPosture)
	s.auth(m, "GET /api/v1/certs", s.listCerts)
	s.auth(m, "GET /api/v1/certs/{serial}", s.getCert)
	s.auth(m, "POST /api/v1/certs/{serial}/revoke", s.revokeCert)
	s.auth(m, "GET /api/v1/sessions", s.listSessions)
	s.auth(m, "GET /api/v1/audit", s.tailAudit)
	s.auth(m, "GET /api/v1/audit/verify", s.verifyAudit)
	s.auth(m, "POST /api/v1/audit/verify", s.verifyAudit)
	s.auth(m, "GET /api/v1/audit/export", s.exportAudit)
	s.auth(m, "POST /api/v1/scep/challenges", s.mintChallenge)
	s.auth(m, "GET /api/v1/attestations/{id}", s.getAttestation)
	s.auth(m, "POST /api/v1/attestations/activate", s.activate)
	s.auth(m, "POST /api/v1/attestations", s.attest)
	s.auth(m, "POST /api/v1/dev/devices", s.devEnroll)
	s.inventoryRoutes(m)
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

// auth registers h behind bearer-token authentication.
func (s *Server) auth(m *http.ServeMux, pattern string, h http.HandlerFunc) {
	m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.check(r.Header.Get("Authorization"))
		if !ok {
			reason := "wrong_token"
			if r.Header.Get("Authorization") == "" {
				reason = "missing_token"
			}
			s.record(r.Context(), &store.AuditEvent{Actor: "anonymous", Action: "admin.auth", Subject: r.Method + " " + r.URL.Path,
				Result: "denied", Reason: reason, Source: r.RemoteAddr})
			w.Header().Set("WWW-Authenticate", `Bearer realm="hardbound"`)
			writeErr(w, http.StatusUnauthorized, "unauthorized: "+strings.ReplaceAll(reason, "_", " "))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		h(w, r.WithContext(context.WithValue(r.Context(), ctxActor{}, "admin:"+name)))
	})
}

// check compares the presented token against every stored hash in constant
// time, without stopping at the first match, so timing says nothing about
// which token (or how much of one) matched.
func (s *Server) check(header string) (string, bool) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	h := HashToken(strings.TrimSpace(tok))
	name, found := "", 0
	for _, t := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], t.SHA256[:]) == 1 {
			name, found = t.Name, 1
		}
	}
	return name, found == 1
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
