// Package admin is hardbound's admin HTTPS API. The CLI is its client.
//
// Every request but GET /api/v1/health needs "Authorization: Bearer <token>";
// tokens are kept only as SHA-256 hashes and compared in constant time. A
// missing or wrong token is a 401 and an audit event. Every mutating call is
// an audit event whose actor is "admin:<token name>".
package admin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"hardbound/posture"
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

// Store is what the API reads and audits through.
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error)
	GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error)
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error)
	VerifyAudit(ctx context.Context) (store.VerifyResult, error)
}

// Standing changes a device's standing (posture.Service).
type Standing interface {
	SetCompliance(ctx context.Context, deviceID string, state store.Compliance, source, actor string) (*store.Device, error)
	Quarantine(ctx context.Context, deviceID, actor string) (*store.Device, error)
	Release(ctx context.Context, deviceID, actor string) (*store.Device, error)
	RevokeDevice(ctx context.Context, deviceID string, reason int, actor string) (*store.Device, []*store.Cert, error)
	RevokeCert(ctx context.Context, serial string, reason int, actor string) (*store.Cert, error)
}

// ChallengeRequest asks for a one-time SCEP challenge.
type ChallengeRequest struct {
	DeviceID  string     `json:"device_id"`
	KeySHA256 store.Hash `json:"key_sha256,omitzero"`
	Profile   string     `json:"profile,omitempty"`
	TTL       string     `json:"ttl,omitempty"` // Go duration, default 15m
}

// ChallengeResponse carries the clear challenge, shown once.
type ChallengeResponse struct {
	Challenge string    `json:"challenge"`
	DeviceID  string    `json:"device_id,omitempty"`
	KeySHA256 string    `json:"key_sha256,omitempty"`
	Profile   string    `json:"profile,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Deps are the API's collaborators. Optional ones may be nil: their
// endpoints then answer 501.
type Deps struct {
	Store    Store
	Standing Standing
	// MintChallenge mints a SCEP challenge (enroll/scep).
	MintChallenge func(ctx context.Context, r ChallengeRequest, actor string) (ChallengeResponse, error)
	// ActivateTPM starts the TPM attestation flow: the body names the EK
	// and AK; the answer is the credential only that TPM can activate.
	ActivateTPM func(ctx context.Context, body []byte, actor string) (any, error)
	// Attest verifies attestation evidence (the JSON body) and returns an
	// attestation-bound challenge (enroll/scep).
	Attest func(ctx context.Context, body []byte, actor string) (any, error)
	// DevEnroll creates a bound, attested test device; set only in --dev.
	DevEnroll func(ctx context.Context, body []byte, actor string) (any, error)
}

// ErrBadRequest marks errors from Deps funcs that are the caller's fault.
var ErrBadRequest = errors.New("admin: bad request")

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
	s.auth(m, "POST /api/v1/scep/challenges", s.mintChallenge)
	s.auth(m, "POST /api/v1/attestations/activate", s.activate)
	s.auth(m, "POST /api/v1/attestations", s.attest)
	s.auth(m, "POST /api/v1/dev/devices", s.devEnroll)
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

// fail maps an error to a status: not found 404, invalid 400/409, else 500
// (logged; the client sees a generic message).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, "not found")
	case errors.Is(err, posture.ErrInvalid):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrBadRequest), errors.As(err, &mbe):
		writeErr(w, http.StatusBadRequest, err.Error())
	default:
		s.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		writeErr(w, http.StatusInternalServerError, "internal error")
	}
}

func page(r *http.Request) (store.Page, error) {
	p := store.Page{After: r.URL.Query().Get("after")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return p, fmt.Errorf("%w: limit must be 1..1000", ErrBadRequest)
		}
		p.Limit = n
	}
	return p, nil
}

// List is a page of results; Next is the cursor for the following page.
type List[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.DeviceFilter{Status: store.DeviceStatus(q.Get("status")), Compliance: store.Compliance(q.Get("compliance")), Profile: q.Get("profile")}
	switch f.Status {
	case "", store.DeviceActive, store.DeviceQuarantined, store.DeviceRevoked:
	default:
		s.fail(w, r, fmt.Errorf("%w: status must be active, quarantined or revoked", ErrBadRequest))
		return
	}
	switch f.Compliance {
	case "", store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		s.fail(w, r, fmt.Errorf("%w: compliance must be compliant, noncompliant or unknown", ErrBadRequest))
		return
	}
	items, next, err := s.deps.Store.ListDevices(r.Context(), f, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[*store.Device]{Items: nonNil(items), Next: next})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// DeviceDetail is a device with its certificates and live sessions.
type DeviceDetail struct {
	Device   *store.Device    `json:"device"`
	Certs    []*store.Cert    `json:"certs"`
	Sessions []*store.Session `json:"sessions"`
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.deps.Store.GetDevice(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certs, _, err := s.deps.Store.ListCerts(r.Context(), store.CertFilter{DeviceID: id}, store.Page{Limit: 1000})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, c := range certs {
		c.DER = nil
	}
	sess, _, err := s.deps.Store.ListSessions(r.Context(), id, true, store.Page{Limit: 1000})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DeviceDetail{Device: d, Certs: nonNil(certs), Sessions: nonNil(sess)})
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	d, err := s.deps.Standing.Quarantine(r.Context(), r.PathValue("id"), actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "device.quarantine")
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	d, err := s.deps.Standing.Release(r.Context(), r.PathValue("id"), actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "device.release")
}

// deviceResult answers a standing change; a refused change is audited here
// (a successful one was audited in its own transaction).
func (s *Server) deviceResult(w http.ResponseWriter, r *http.Request, d *store.Device, err error, action string) {
	if err != nil {
		s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Subject: r.PathValue("id"),
			Result: "error", Reason: errReason(err), Source: r.RemoteAddr})
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func errReason(err error) string {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, posture.ErrInvalid), errors.Is(err, ErrBadRequest):
		return "invalid"
	}
	return "internal"
}

// RevokeRequest carries an RFC 5280 reason: a name (keyCompromise) or code.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// crlReasons are the RFC 5280 §5.3.1 CRLReason codes by name.
var crlReasons = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
	"superseded": 4, "cessationOfOperation": 5, "certificateHold": 6,
	"privilegeWithdrawn": 9, "aACompromise": 10,
}

// ParseReason turns a reason name or number into an RFC 5280 code.
func ParseReason(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	if n, ok := crlReasons[s]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 10 && n != 7 && n != 8 {
		return n, nil
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q", ErrBadRequest, s)
}

func (s *Server) readRevoke(w http.ResponseWriter, r *http.Request) (int, bool) {
	var req RevokeRequest
	if err := decode(r, &req, true); err != nil {
		s.fail(w, r, err)
		return 0, false
	}
	n, err := ParseReason(req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return 0, false
	}
	return n, true
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) {
	reason, ok := s.readRevoke(w, r)
	if !ok {
		return
	}
	d, certs, err := s.deps.Standing.RevokeDevice(r.Context(), r.PathValue("id"), reason, actorOf(r.Context()))
	if err != nil {
		s.deviceResult(w, r, nil, err, "device.revoke")
		return
	}
	for _, c := range certs {
		c.DER = nil
	}
	writeJSON(w, http.StatusOK, DeviceDetail{Device: d, Certs: nonNil(certs), Sessions: []*store.Session{}})
}

func (s *Server) revokeCert(w http.ResponseWriter, r *http.Request) {
	reason, ok := s.readRevoke(w, r)
	if !ok {
		return
	}
	c, err := s.deps.Standing.RevokeCert(r.Context(), strings.ToLower(r.PathValue("serial")), reason, actorOf(r.Context()))
	if err != nil {
		s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: "cert.revoke", Subject: r.PathValue("serial"),
			Result: "error", Reason: errReason(err), Source: r.RemoteAddr})
		s.fail(w, r, err)
		return
	}
	c.DER = nil
	writeJSON(w, http.StatusOK, c)
}

// PostureRequest sets a device's compliance by hand.
type PostureRequest struct {
	State store.Compliance `json:"state"`
}

func (s *Server) setPosture(w http.ResponseWriter, r *http.Request) {
	var req PostureRequest
	err := decode(r, &req, false)
	if err == nil {
		switch req.State {
		case store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
		default:
			err = fmt.Errorf("%w: state must be compliant, noncompliant or unknown", ErrBadRequest)
		}
	}
	if err != nil {
		s.deviceResult(w, r, nil, err, "posture.set")
		return
	}
	d, err := s.deps.Standing.SetCompliance(r.Context(), r.PathValue("id"), req.State, "admin", actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "posture.set")
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.CertFilter{DeviceID: q.Get("device"), RevokedOnly: q.Get("revoked") == "true"}
	items, next, err := s.deps.Store.ListCerts(r.Context(), f, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, c := range items {
		c.DER = nil
	}
	writeJSON(w, http.StatusOK, List[*store.Cert]{Items: nonNil(items), Next: next})
}

func (s *Server) getCert(w http.ResponseWriter, r *http.Request) {
	c, err := s.deps.Store.GetCertBySerial(r.Context(), strings.ToLower(r.PathValue("serial")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	items, next, err := s.deps.Store.ListSessions(r.Context(), q.Get("device"), q.Get("all") != "true", p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[*store.Session]{Items: nonNil(items), Next: next})
}

func (s *Server) tailAudit(w http.ResponseWriter, r *http.Request) {
	n := 50
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 10000 {
			s.fail(w, r, fmt.Errorf("%w: n must be 1..10000", ErrBadRequest))
			return
		}
	}
	evs, err := s.deps.Store.TailAudit(r.Context(), n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[*store.AuditEvent]{Items: nonNil(evs)})
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	res, err := s.deps.Store.VerifyAudit(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) mintChallenge(w http.ResponseWriter, r *http.Request) {
	if s.deps.MintChallenge == nil {
		writeErr(w, http.StatusNotImplemented, "SCEP challenges are not enabled")
		return
	}
	var req ChallengeRequest
	if err := decode(r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.DeviceID == "" {
		s.fail(w, r, fmt.Errorf("%w: device_id is required", ErrBadRequest))
		return
	}
	resp, err := s.deps.MintChallenge(r.Context(), req, actorOf(r.Context()))
	if err != nil {
		s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: "scep.challenge", Subject: req.DeviceID,
			Result: "error", Reason: errReason(err), Source: r.RemoteAddr})
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request) {
	s.rawCall(w, r, s.deps.ActivateTPM, "attestation.activate")
}

func (s *Server) attest(w http.ResponseWriter, r *http.Request) {
	s.rawCall(w, r, s.deps.Attest, "attestation.verify")
}

func (s *Server) devEnroll(w http.ResponseWriter, r *http.Request) {
	if s.deps.DevEnroll == nil {
		writeErr(w, http.StatusForbidden, "test enrollment is only available in --dev mode")
		return
	}
	s.rawCall(w, r, s.deps.DevEnroll, "dev.enroll")
}

// rawCall hands the body to fn and answers 201 with its result; errors
// are audited and mapped like every other call.
func (s *Server) rawCall(w http.ResponseWriter, r *http.Request, fn func(context.Context, []byte, string) (any, error), action string) {
	if fn == nil {
		writeErr(w, http.StatusNotImplemented, action+" is not enabled")
		return
	}
	body, err := readAll(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := fn(r.Context(), body, actorOf(r.Context()))
	if err != nil {
		s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Result: "error",
			Reason: errReason(err), Source: r.RemoteAddr})
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}
