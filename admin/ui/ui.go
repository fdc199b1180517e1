// Package ui is hardbound's admin console: server-rendered pages under
// /ui/ on the admin listener, for people who would rather look than type.
//
// A user signs in with an admin token (admin/token); the console then keeps
// a session (an HttpOnly, Secure, SameSite=Strict cookie naming a random id,
// with an idle timeout) and re-checks the token behind it on every request,
// so revoking a token ends its sessions. Every change is a POST carrying the
// session's CSRF token; the token's scope decides what is shown and
// allowed (read: the pages; admin: the actions too; enroll: nothing).
// Actions go through the same Standing as the API, which audits them with
// the actor admin:<token name>; the console adds the operator's reason as
// its own audit event.
//
// Pages are html/template, assets are embedded (go:embed), nothing comes
// from a CDN. Charts are SVG drawn on the server from the server's own
// counters (admin/metrics History); the only script reloads the overview.
package ui

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/admin/token"
	"hardbound/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the console reads and audits through (store.Store).
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error)
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
	ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error)
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error)
	VerifyAudit(ctx context.Context) (store.VerifyResult, error)
}

// Standing changes a device's standing (*posture.Service), auditing each
// change in its own transaction.
type Standing interface {
	Quarantine(ctx context.Context, deviceID, actor string) (*store.Device, error)
	Release(ctx context.Context, deviceID, actor string) (*store.Device, error)
	RevokeDevice(ctx context.Context, deviceID string, reason int, actor string) (*store.Device, []*store.Cert, error)
	RevokeCert(ctx context.Context, serial string, reason int, actor string) (*store.Cert, error)
}

// Tokens checks the token a session signed in with (*token.Set).
type Tokens interface {
	Check(value string, now time.Time) (token.Token, error)
	CheckHash(h [32]byte, now time.Time) (token.Token, error)
}

// Metrics is the server's own recent counters (*metrics.History).
type Metrics interface {
	Interval() time.Duration
	Rates(family string, want map[string]string, by string) map[string][]metrics.Point
	Values(family string, want map[string]string, by string) map[string][]metrics.Point
	Totals(family string, want map[string]string, by string) map[string]float64
}

// NASClient is a RADIUS client as configured, without its secret.
type NASClient struct {
	Name                        string
	CIDR                        string
	CoAPort                     int
	RequireMessageAuthenticator bool
	SendRejectReason            bool
	TLSMaxVersion               string
}

// Deps are the console's collaborators; Metrics and Clients may be empty.
type Deps struct {
	Store    Store
	Standing Standing
	Tokens   Tokens
	Metrics  Metrics
	Clients  []NASClient
	// CA is the issuing CA's certificate, shown on the overview with its
	// expiry; nil hides it.
	CA *x509.Certificate
	// Inventory, if set, serves the inventory import page (the same
	// store/inventory the API's import uses); nil leaves it out.
	Inventory *admin.Inventory
	// OnVerify, if set, hears every verification of the audit chain run
	// from the console (the server exports the last outcome as a metric).
	OnVerify func(store.VerifyResult, time.Time)
}

// Options tune the console.
type Options struct {
	// IdleTimeout ends a session not used for this long (default 15m).
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, used or not
	// (default 12h).
	MaxAge time.Duration
	// MaxSessions bounds the sessions kept; signing in beyond it ends
	// the least recently used (default 1000).
	MaxSessions int
	Logger      *slog.Logger
	Now         func() time.Time
}

// Console is the /ui/ handler.
type Console struct {
	deps  Deps
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	mux   *http.ServeMux
	// logins bounds sign-in attempts (all sources together), so a token
	// cannot be guessed at line rate even though each guess is audited.
	logins *rate.Limiter

	mu       sync.Mutex
	sessions map[string]*session

	verifyMu   sync.Mutex
	lastVerify *verified
}

type verified struct {
	At     time.Time
	Result store.VerifyResult
}

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// New builds the console.
func New(deps Deps, opt Options) (*Console, error) {
	if deps.Store == nil || deps.Standing == nil || deps.Tokens == nil {
		return nil, errors.New("ui: Store, Standing and Tokens are required")
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 15 * time.Minute
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 12 * time.Hour
	}
	if opt.MaxSessions <= 0 {
		opt.MaxSessions = 1000
	}
	c := &Console{deps: deps, opt: opt, log: slog.New(slog.DiscardHandler), now: time.Now,
		sessions: map[string]*session{}, logins: rate.NewLimiter(5, 20)}
	if opt.Logger != nil {
		c.log = opt.Logger.With("component", "console")
	}
	if opt.Now != nil {
		c.now = opt.Now
	}
	if err := c.parse(); err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /ui/{$}", c.root)
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.signedIn(false, c.logout))
	m.HandleFunc("GET /ui/overview", c.signedIn(false, c.overview))
	m.HandleFunc("GET /ui/devices", c.signedIn(false, c.devices))
	m.HandleFunc("GET /ui/devices/{id}", c.signedIn(false, c.device))
	m.HandleFunc("GET /ui/devices/{id}/{action}", c.signedIn(true, c.deviceConfirm))
	m.HandleFunc("POST /ui/devices/{id}/{action}", c.signedIn(true, c.deviceAction))
	m.HandleFunc("GET /ui/certs", c.signedIn(false, c.certs))
	m.HandleFunc("GET /ui/certs/{serial}/revoke", c.signedIn(true, c.certConfirm))
	m.HandleFunc("POST /ui/certs/{serial}/revoke", c.signedIn(true, c.certRevoke))
	m.HandleFunc("GET /ui/sessions", c.signedIn(false, c.sessionsPage))
	m.HandleFunc("GET /ui/audit", c.signedIn(false, c.audit))
	m.HandleFunc("POST /ui/audit/verify", c.signedIn(false, c.verify))
	m.HandleFunc("GET /ui/nas", c.signedIn(false, c.nas))
	m.HandleFunc("GET /ui/inventory", c.signedIn(true, c.inventoryPage))
	m.HandleFunc("POST /ui/inventory", c.signedIn(true, c.inventoryImport))
	m.HandleFunc("/ui/", c.notFound)
	c.mux = m
	return c, nil
}

// ServeHTTP implements http.Handler. Every answer forbids framing, caching
// and any script or style not served by the console itself.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) parse() error {
	funcs := template.FuncMap{
		"ts":     fmtTime,
		"ago":    func(t time.Time) string { return ago(c.now(), t) },
		"dash":   dash,
		"short":  short,
		"hash":   func(h store.Hash) string { return short(h.String()) },
		"reason": reasonName,
		"num":    fmtNum,
		"rate":   fmtRate,
		"join":   strings.Join,
		"query":  query,
		"split":  strings.Fields,
		"span":   spanText,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	c.pages = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return fmt.Errorf("ui: %s: %w", n, err)
		}
		c.pages[name] = t
	}
	return nil
}

// page is what every template gets.
type page struct {
	Title     string
	Inventory bool // the inventory page is served (nav)
	Nav       string
	S         *session // nil on the sign-in page
	CSRF      string
	Error     string
	Notice    string
	Data      any
	Refresh   int // seconds; 0: no live refresh
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	if p.S != nil {
		p.CSRF = p.S.CSRF
	}
	p.Inventory = c.deps.Inventory != nil
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		c.log.ErrorContext(r.Context(), "render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// problem renders an error page.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, s *session, code int, msg string) {
	c.render(w, r, code, "problem", page{Title: http.StatusText(code), S: s, Error: msg})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.problem(w, r, c.current(r), http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
}

func (c *Console) root(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (c *Console) record(ctx context.Context, ev *store.AuditEvent) {
	if ev.Time.IsZero() {
		ev.Time = c.now()
	}
	if err := c.deps.Store.AppendAudit(ctx, ev); err != nil {
		c.log.ErrorContext(ctx, "audit append failed", "action", ev.Action, "err", err)
	}
}
