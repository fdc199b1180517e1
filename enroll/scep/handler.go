package scep

import (
	"crypto/rsa"
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

	"hardbound/store/auditbudget"

	"github.com/smallstep/scep"
)

// caps is the GetCACaps answer (RFC 8894 §3.5.2). No SHA-1, no DES: clients
// that cannot do SHA-256 and AES are not supported.
const caps = "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\nRenewal\n"

// Handler serves SCEP. Mount it at /scep (and /scep/ for per-profile URLs);
// it is safe for concurrent use.
type Handler struct {
	ca             CA
	store          Store
	ra             *RA
	profiles       map[string]*Profile
	defaultProfile string
	limiter        Limiter
	metrics        Metrics
	log            *slog.Logger
	now            func() time.Time
	maxBody        int64
	caCertBundle   []byte
	gate           Gate
	// budget bounds the refusal audits a requester who never proved a
	// challenge can cause (store/auditbudget): the first of each reason
	// per source address in a window is written, the rest counted in it.
	budget *auditbudget.Budget
}

// New builds a Handler from cfg. It logs a WARNING for every profile that
// enables a static challenge.
func New(cfg Config) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ConfigurePKCS7()
	h := &Handler{
		ca:             cfg.CA,
		store:          cfg.Store,
		ra:             cfg.RA,
		profiles:       make(map[string]*Profile, len(cfg.Profiles)),
		defaultProfile: cfg.DefaultProfile,
		limiter:        cfg.Limiter,
		metrics:        cfg.Metrics,
		log:            cfg.Logger,
		now:            cfg.Now,
		maxBody:        cfg.MaxBodyBytes,
		gate:           cfg.Gate,
		budget:         auditbudget.New(0, 0),
	}
	if h.metrics == nil {
		h.metrics = nopMetrics{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "enroll", "protocol", "scep")
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	for i := range cfg.Profiles {
		p := cfg.Profiles[i]
		h.profiles[p.Name] = &p
		if p.StaticChallenge != "" {
			h.log.Warn("WARNING: SCEP profile accepts a static challenge; anyone who knows it can enroll any device identity, and its certificates are marked unattested",
				"profile", p.Name)
		}
	}
	if h.defaultProfile == "" {
		h.defaultProfile = cfg.Profiles[0].Name
	}
	certs := []*x509.Certificate{cfg.RA.Cert, cfg.CA.Issuing(), cfg.CA.Root()}
	for _, c := range certs[1:] {
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			// Older clients encrypt to, or cast to RSA, every certificate
			// of GetCACert; a CA made with `ca init --key-type rsa` serves them.
			h.log.Info("SCEP GetCACert carries a non-RSA CA certificate; clients that need RSA throughout (Debian's scepclient, micromdm's without -key-encipherment-selector) need an RSA CA",
				"subject", c.Subject.String())
			break
		}
	}
	bundle, err := scep.DegenerateCertificates(certs)
	if err != nil {
		return nil, fmt.Errorf("scep: GetCACert bundle: %w", err)
	}
	h.caCertBundle = bundle
	return h, nil
}

// ServeHTTP dispatches on the operation query parameter.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	op := r.URL.Query().Get("operation")
	switch op {
	case "GetCACaps":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, caps)
	case "GetCACert":
		w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
		_, _ = w.Write(h.caCertBundle)
	case "PKIOperation":
		h.servePKIOperation(w, r)
	default:
		http.Error(w, "unknown SCEP operation", http.StatusBadRequest)
	}
}

func (h *Handler) servePKIOperation(w http.ResponseWriter, r *http.Request) {
	var raw []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "message too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		raw = b
	} else {
		m := r.URL.Query().Get("message")
		if int64(len(m)) > h.maxBody*4/3+4 {
			http.Error(w, "message too large", http.StatusRequestEntityTooLarge)
			return
		}
		b, ok := decodeMessageParam(m)
		if !ok {
			http.Error(w, "message is not base64", http.StatusBadRequest)
			return
		}
		raw = b
	}
	res := h.pkiOperation(r.Context(), raw, remoteIP(r), profileFromPath(r.URL.Path))
	if res.status != http.StatusOK {
		if res.retryAfter != "" {
			w.Header().Set("Retry-After", res.retryAfter)
		}
		http.Error(w, res.text, res.status)
		return
	}
	w.Header().Set("Content-Type", "application/x-pki-message")
	_, _ = w.Write(res.body)
}

// decodeMessageParam decodes a GET PKIOperation message. Clients send
// standard base64, sometimes URL-safe, sometimes unpadded, and a '+' that
// was not percent-encoded arrives as a space.
func decodeMessageParam(m string) ([]byte, bool) {
	if m == "" {
		return nil, false
	}
	m = strings.ReplaceAll(m, " ", "+")
	m = strings.TrimRight(strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, m), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(m); err == nil {
			return b, true
		}
	}
	return nil, false
}

// profileFromPath returns the profile named by the last path segment,
// ignoring the "pkiclient.exe" suffix some clients append; "" if none.
func profileFromPath(p string) string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s == "" || strings.EqualFold(s, "pkiclient.exe") || strings.EqualFold(s, "cgi-bin") {
			continue
		}
		return s
	}
	return ""
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
