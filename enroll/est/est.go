// Package est is hardbound's EST server (RFC 7030, with RFC 8951's
// clarifications): cacerts, simpleenroll, simplereenroll and csrattrs under
// /.well-known/est/ and /.well-known/est/<profile>/. First enrollment is
// authenticated by a one-time challenge bound to a device in inventory
// (HTTP Basic: device id and challenge, RFC 7030 §3.2.3); renewal by the
// current certificate over mutual TLS. serverkeygen is not offered: keys
// are made on the device. docs/est.md has the rules.
package est

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"hardbound/enroll/ca"
	"hardbound/enroll/gate"
	"hardbound/enroll/limit"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/policy"
)

// Protocol is recorded in store.Cert.Protocol and audit actions.
const Protocol = "est"

// MaxBodyBytes bounds a request body: a base64 PKCS#10 CSR is a few KiB.
const MaxBodyBytes = 64 << 10

// Issuer is the issuing CA; *ca.CA satisfies it.
type Issuer interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*x509.Certificate, error)
	Issuing() *x509.Certificate
	Root() *x509.Certificate
}

// Store is what EST reads and writes; store.Store satisfies it.
type Store interface {
	GetChallenge(ctx context.Context, sha store.Hash) (*store.Challenge, error)
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
	FindAttestationByKey(ctx context.Context, key store.Hash) (*store.Attestation, error)
	RecordIssuance(ctx context.Context, is store.Issuance) error
	RevokeCert(ctx context.Context, sha store.Hash, r store.Revocation, ev *store.AuditEvent) (*store.Cert, error)
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// Decider is the authentication decision; *posture.Service satisfies it.
type Decider interface {
	Decide(ctx context.Context, leaf *x509.Certificate) posture.Verdict
}

// Profile is the EST view of an enrollment profile.
type Profile struct {
	Name     string
	Validity time.Duration
	Platform string
	// Formats are the attestation formats admitted (policy.Formats).
	Formats policy.Formats
	// RequireAttestation refuses a key without a verified attestation
	// (made by the TPM activation flow, which binds the challenge to it).
	RequireAttestation bool
	// RevokeOnRenew revokes the old certificate (superseded) once its
	// renewal is recorded.
	RevokeOnRenew bool
	// RequireChannelBinding refuses a CSR whose challengePassword does not
	// carry the channel binding of the TLS session (RFC 7030 §3.5;
	// binding.go). A CSR that has a challengePassword is checked whatever
	// this says.
	RequireChannelBinding bool
}

// requiresAttestation: the profile refuses unattested keys, by its own
// rule or because its formats admit only hardware-attested ones.
func (p *Profile) requiresAttestation() bool {
	return p.RequireAttestation || !p.Formats.AdmitsUnattested()
}

// Config configures a Server.
type Config struct {
	Profiles       []Profile
	DefaultProfile string // empty: the first
	// Bootstrap are the manufacturer CAs whose device certificates
	// (IEEE 802.1AR IDevIDs) authenticate a first enrollment over TLS
	// instead of a challenge; BootstrapIntermediates help build chains.
	// The device is the IDevID's subject serialNumber, looked up as a
	// device id and then as a "serial" alias. nil: challenges only.
	Bootstrap              *x509.CertPool
	BootstrapIntermediates *x509.CertPool
	// Gate is the issuance gate every protocol applies (the record's
	// profile, platform vs format, attested-fact minimums); nil: none
	// beyond EST's own inventory rule.
	Gate    *gate.Gate
	Limiter *limit.Limiter
	// Metrics counts requests and refusals; nil: none.
	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// Metrics receives EST outcomes; the wiring adapts it to Prometheus
// (admin/metrics). Labels are bounded: op is cacerts, csrattrs,
// simpleenroll, simplereenroll or other; result is ok, refused or error;
// reason is a refusal reason of docs/est.md.
type Metrics interface {
	Request(op, result string)
	Refusal(reason string)
	// Enrollment is the outcome every enrollment protocol reports
	// (protocol "est", the attestation format or none, ok or the reason).
	Enrollment(protocol, format, result string)
}

type nopMetrics struct{}

func (nopMetrics) Request(string, string)            {}
func (nopMetrics) Refusal(string)                    {}
func (nopMetrics) Enrollment(string, string, string) {}

// Server is the EST HTTP handler.
type Server struct {
	ca       Issuer
	store    Store
	decider  Decider
	profiles map[string]*Profile
	def      string
	lim      *limit.Limiter
	log      *slog.Logger
	now      func() time.Time
	cacerts  []byte            // base64 certs-only, built once
	csrattrs map[string][]byte // per profile, base64 CsrAttrs, built once
	metrics  Metrics

	bootstrap, bootstrapInter *x509.CertPool
	gate                      *gate.Gate
}

// New builds a Server. decider is required: renewal is allowed only to a
// certificate the authentication decision admits.
func New(cfg Config, iss Issuer, st Store, decider Decider) (*Server, error) {
	if iss == nil || st == nil || decider == nil {
		return nil, errors.New("est: Issuer, Store and Decider are required")
	}
	if len(cfg.Profiles) == 0 {
		return nil, errors.New("est: at least one profile is required")
	}
	s := &Server{ca: iss, store: st, decider: decider, profiles: map[string]*Profile{}, def: cfg.DefaultProfile,
		lim: cfg.Limiter, log: cfg.Logger, now: cfg.Now, metrics: cfg.Metrics, csrattrs: map[string][]byte{}}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	for i := range cfg.Profiles {
		p := cfg.Profiles[i]
		if err := policy.CheckName(p.Name); err != nil {
			return nil, fmt.Errorf("est: profile: %w", err)
		}
		s.profiles[p.Name] = &p
		der, err := csrAttrs(&p)
		if err != nil {
			return nil, fmt.Errorf("est: csrattrs of %q: %w", p.Name, err)
		}
		s.csrattrs[p.Name] = encode(der)
	}
	s.bootstrap, s.bootstrapInter, s.gate = cfg.Bootstrap, cfg.BootstrapIntermediates, cfg.Gate
	if s.def == "" {
		s.def = cfg.Profiles[0].Name
	}
	if _, ok := s.profiles[s.def]; !ok {
		return nil, fmt.Errorf("est: default profile %q not configured", s.def)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "enroll", "protocol", Protocol)
	if s.now == nil {
		s.now = time.Now
	}
	der := append(append([]byte{}, iss.Issuing().Raw...), iss.Root().Raw...)
	p7, err := pkcs7.DegenerateCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("est: cacerts: %w", err)
	}
	s.cacerts = encode(p7)
	return s, nil
}

// Handler serves /.well-known/est/.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

// route splits /.well-known/est/[<profile>/]<op>.
func route(path string) (profile, op string, ok bool) {
	rest, found := strings.CutPrefix(path, "/.well-known/est/")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 1:
		return "", parts[0], true
	case 2:
		return parts[0], parts[1], parts[0] != ""
	}
	return "", "", false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	label, op, ok := route(r.URL.Path)
	method := map[string]string{"cacerts": http.MethodGet, "csrattrs": http.MethodGet,
		"simpleenroll": http.MethodPost, "simplereenroll": http.MethodPost}[op]
	metricOp := op
	if method == "" {
		metricOp = "other"
	}
	if !ok {
		s.metrics.Request(metricOp, "refused")
		http.NotFound(w, r)
		return
	}
	if label != "" {
		if _, known := s.profiles[label]; !known {
			s.metrics.Request(metricOp, "refused")
			http.Error(w, "unknown EST label", http.StatusNotFound)
			return
		}
	}
	switch {
	case method == "":
		// serverkeygen and fullcmc are not offered (RFC 7030 §4.4, §4.3).
		s.metrics.Request(metricOp, "refused")
		http.Error(w, "EST operation not supported", http.StatusNotFound)
		return
	case r.Method != method:
		s.metrics.Request(metricOp, "refused")
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch op {
	case "cacerts":
		s.metrics.Request(op, "ok")
		writeBase64(w, "application/pkcs7-mime", s.cacerts)
	case "csrattrs":
		s.metrics.Request(op, "ok")
		writeBase64(w, "application/csrattrs", s.csrattrs[s.profileOr(label).Name])
	default:
		s.metrics.Request(op, s.enroll(w, r, label, op == "simplereenroll"))
	}
}

func (s *Server) profileOr(label string) *Profile {
	if p, ok := s.profiles[label]; ok {
		return p
	}
	return s.profiles[s.def]
}

func writeBase64(w http.ResponseWriter, ctype string, b64 []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Transfer-Encoding", "base64")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b64)
}

// encode is base64 in 64-character lines (RFC 7030 §4.1.3 and RFC 8951:
// base64, line breaks allowed), which `openssl base64 -d` requires.
func encode(der []byte) []byte {
	b := base64.StdEncoding.EncodeToString(der)
	out := make([]byte, 0, len(b)+len(b)/64+1)
	for len(b) > 64 {
		out = append(append(out, b[:64]...), '\n')
		b = b[64:]
	}
	return append(append(out, b...), '\n')
}

// readCSR reads a base64 PKCS#10 body (RFC 8951 §3.2: base64, whatever
// Content-Transfer-Encoding says; line breaks allowed).
func readCSR(r *http.Request) (*x509.CertificateRequest, error) {
	ct := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0])
	if !strings.EqualFold(ct, "application/pkcs10") {
		return nil, errContentType
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if len(body) > MaxBodyBytes {
		return nil, errTooLarge
	}
	return ParseCSRBody(body)
}

// ParseCSRBody decodes a base64 (whitespace ignored) PKCS#10 body.
func ParseCSRBody(body []byte) (*x509.CertificateRequest, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, string(body))
	der, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("%w: body is not base64: %w", errBadRequest, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: not a PKCS#10 request: %w", errBadRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %w", errBadRequest, err)
	}
	return csr, nil
}

var (
	errContentType = errors.New("est: Content-Type must be application/pkcs10")
	errTooLarge    = errors.New("est: request body too large")
	errBadRequest  = errors.New("est: bad request")
)

// basicAuth reads the device id and challenge; the password is compared
// only through its stored hash.
func basicAuth(r *http.Request) (user, pass string, ok bool) {
	user, pass, ok = r.BasicAuth()
	return user, pass, ok && user != "" && pass != ""
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func ctEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
