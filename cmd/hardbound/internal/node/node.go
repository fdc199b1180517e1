// Package node runs one hardbound process: it composes the components' own
// config sections into hardbound.yaml (config.go), starts the components in
// order (store, CA, posture, RADIUS, MDM connectors, enrollment, the
// Disconnect/CoA enforcer, metrics, admin) and stops them in reverse, the
// store last. It holds wiring only: every rule lives in the component it
// belongs to. cmd/hardbound parses flags and calls Start.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/enroll"
	"hardbound/enroll/attest/statuslist"
	"hardbound/enroll/ca"
	"hardbound/enroll/gate"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/radius/radsec"
	"hardbound/store"
	"hardbound/store/atomicfile"
	"hardbound/store/auditexport"
)

// NewLogger is the process logger the log section asks for.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Node is one running server: the components of one hardbound process,
// started in order by Start and stopped in reverse by Shutdown. Tests start
// it with port-0 addresses and read the bound ones from Addr.
type Node struct {
	cfg     *Config
	log     *slog.Logger
	st      store.Store
	auditor auditAppender // in.st, or an audithold.Holder in front of it (outage.go)
	ca      *ca.CA
	posture *posture.Service
	metrics *metrics.Registry
	radius  *radius.Server
	radsec  *radsec.Listener // nil unless RADIUS/TLS listens
	enroll  *enrollment
	// sessionStarts reaches the enforcer from the RADIUS server.
	sessionStarts sessionStarts

	mdmHandlers map[string]http.Handler
	audit       *auditexport.Chain // nil until startAudit

	mu      sync.Mutex
	addrs   map[string]string // listener name -> bound address
	errc    chan error
	closers []func(context.Context) error // run in reverse on shutdown
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	adminTokenPath string
	radiusSecret   string // dev only: the generated NAS secret

	// A reload (reload.go) replaces live, the configuration whose
	// run-time settings are in force (cfg stays the one started with);
	// gate and statusList are the components it reaches besides posture
	// and the verifier (nil when not running).
	reloadMu   sync.Mutex
	live       atomic.Pointer[Config]
	gate       *gate.Gate
	statusList *statuslist.List
}

// Start initialises the data dir (in --dev), opens everything and starts
// every listener. It returns once all listeners are bound.
func Start(parent context.Context, cfg *Config, log *slog.Logger) (_ *Node, err error) {
	ctx, cancel := context.WithCancel(parent)
	in := &Node{cfg: cfg, log: log, addrs: map[string]string{}, errc: make(chan error, 16), ctx: ctx, cancel: cancel}
	defer func() {
		if err != nil {
			in.Shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if cfg.Dev {
		log.Warn("WARNING: --dev mode: test attestation evidence is accepted; never use in production")
		if err := in.devBootstrap(); err != nil {
			return nil, err
		}
	}
	warnProduction(cfg, log)
	in.live.Store(cfg)
	in.metrics = metrics.New()
	names, err := cfg.Enroll.Names("enroll", cfg.profileNames())
	if err != nil {
		return nil, err
	}
	c, err := ca.Load(cfg.DataDir, ca.WithLogger(log), ca.WithOCSPServer(cfg.Enroll.OCSP.URL), ca.WithNames(names))
	if err != nil {
		return nil, fmt.Errorf("%w (create one with `hardbound ca init --data-dir %s`)", err, cfg.DataDir)
	}
	in.ca = c
	in.metrics.CertExpiry("root", c.Root().NotAfter)
	in.metrics.CertExpiry("issuing", c.Issuing().NotAfter)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	in.st = st

	in.posture, err = posture.New(st, cfg.postureProfiles(), append(in.outageOptions(),
		posture.WithLogger(log), posture.WithMetrics(in.metrics.Posture()))...)
	if err != nil {
		return nil, err
	}
	// Load every binding and device in the background: a login storm after
	// a restart then costs no store reads. It stops on shutdown.
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		if err := in.posture.Warm(in.ctx); err != nil {
			return // logged by Warm; cancelled on shutdown
		}
		in.afterWarm(st)
	}()
	// The audit export starts before the components that append to the
	// chain, so it stops after them (closers run in reverse) and its
	// last checkpoint signs their last events.
	if err := in.startAuditHold(); err != nil {
		return nil, err
	}
	if err := in.startAudit(); err != nil {
		return nil, err
	}
	if err := in.startComponents(); err != nil {
		return nil, err
	}
	if err := in.startMetrics(); err != nil {
		return nil, err
	}
	if err := in.startAdmin(); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Node) onClose(f func(context.Context) error) {
	in.mu.Lock()
	in.closers = append(in.closers, f)
	in.mu.Unlock()
}

func (in *Node) setAddr(name, addr string) {
	in.mu.Lock()
	in.addrs[name] = addr
	in.mu.Unlock()
}

// Addr returns a listener's bound address.
func (in *Node) Addr(name string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.addrs[name]
}

// fail reports a listener that stopped unexpectedly; wait returns it.
func (in *Node) fail(name string, err error) {
	if err == nil || errors.Is(err, http.ErrServerClosed) || in.ctx.Err() != nil {
		return
	}
	select {
	case in.errc <- fmt.Errorf("%s: %w", name, err):
	default:
	}
}

// serveHTTP starts an HTTP(S) listener.
func (in *Node) serveHTTP(name, addr string, h http.Handler, tlsCfg *tlsConfig) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	// enroll's constructor holds the timeouts and limits of every
	// listener hardbound serves over HTTP.
	var tc *tls.Config
	if tlsCfg != nil {
		tc = tlsCfg.Config
	}
	srv := enroll.NewHTTPServer(addr, h, tc)
	srv.ErrorLog = slog.NewLogLogger(in.log.With("component", name).Handler(), slog.LevelDebug)
	in.setAddr(name, ln.Addr().String())
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		var err error
		if tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		in.fail(name, err)
	}()
	in.onClose(srv.Shutdown)
	return nil
}

func (in *Node) startMetrics() error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", in.metrics.Handler())
	return in.serveHTTP("metrics", in.cfg.Metrics.Addr, mux, nil)
}

func (in *Node) startAdmin() error {
	srv, err := in.adminHandler()
	if err != nil {
		return err
	}
	kp, err := in.ca.ServerCert(in.ctx, in.cfg.DataDir, "admin", []string{"localhost", "127.0.0.1", "::1"}, true)
	if err != nil {
		return err
	}
	in.certExpiry("admin", kp)
	return in.serveHTTP("admin", in.cfg.Admin.Addr, srv, newTLSConfig(kp))
}

// Wait blocks until the context ends or a listener fails, then shuts down.
func (in *Node) Wait() error {
	var err error
	select {
	case <-in.ctx.Done():
	case err = <-in.errc:
		in.log.Error("listener failed; shutting down", "err", err)
	}
	in.Shutdown()
	return err
}

// Shutdown stops listeners and closes the store last (flushing Badger). It
// is idempotent.
func (in *Node) Shutdown() {
	in.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in.mu.Lock()
	closers := in.closers
	in.closers = nil
	in.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](ctx); err != nil {
			in.log.Error("shutdown", "err", err)
		}
	}
	in.wg.Wait()
	// The store closes last, after every writer (listeners, enforcer, MDM
	// pollers) has returned, so Badger flushes a quiet database.
	if in.st != nil {
		if err := in.st.Close(); err != nil {
			in.log.Error("close store", "err", err)
		}
		in.st = nil
	}
	in.log.Info("hardbound stopped")
}

// devNASClient is the NAS client --dev adds for 127.0.0.0/8.
const devNASClient = "localhost"

// devBootstrap creates, when absent, what a local trial needs: the CA, an
// admin token and a NAS client for 127.0.0.0/8 with a generated secret.
func (in *Node) devBootstrap() error {
	dir := in.cfg.DataDir
	if err := ca.Init(ca.InitOptions{Dir: dir}); err != nil && !errors.Is(err, ca.ErrExists) {
		return fmt.Errorf("dev: create CA: %w", err)
	} else if err == nil {
		in.log.Info("dev: created CA", "dir", filepath.Join(dir, ca.SubDir))
	}
	in.adminTokenPath = filepath.Join(dir, "admin.token")
	tokens := filepath.Join(dir, "admin.tokens")
	if _, err := os.Stat(tokens); errors.Is(err, fs.ErrNotExist) {
		tok, err := randomString(32)
		if err != nil {
			return err
		}
		h := admin.HashToken(tok)
		// The clear token is written once, for the CLI; the server keeps only the hash.
		if err := atomicfile.Write(in.adminTokenPath, []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("dev: admin token: %w", err)
		}
		if err := atomicfile.Write(tokens, []byte("dev "+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
			return fmt.Errorf("dev: admin token: %w", err)
		}
		in.log.Info("dev: created admin token", "file", in.adminTokenPath)
	}
	secretPath := filepath.Join(dir, "radius.secret")
	b, err := os.ReadFile(secretPath)
	if errors.Is(err, fs.ErrNotExist) {
		s, rerr := randomString(18)
		if rerr != nil {
			return rerr
		}
		b = []byte(s)
		if err := atomicfile.Write(secretPath, b, 0o600); err != nil {
			return fmt.Errorf("dev: radius secret: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("dev: radius secret: %w", err)
	}
	in.radiusSecret = strings.TrimSpace(string(b))
	hasLocal := false
	for _, c := range in.cfg.RADIUS.Clients {
		if c.Name == devNASClient {
			hasLocal = true
		}
	}
	if !hasLocal {
		in.cfg.RADIUS.Clients = append(in.cfg.RADIUS.Clients, radius.FileClient{Name: devNASClient, CIDR: "127.0.0.0/8", SecretFile: secretPath})
		if err := in.cfg.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Banner tells the operator what listens where and how to use it.
func (in *Node) Banner(w io.Writer) {
	fmt.Fprintf(w, "hardbound %s running, data in %s\n", in.cfg.Version, in.cfg.DataDir)
	for _, l := range []struct{ name, what string }{
		{"radius-auth", "RADIUS authentication (udp)"},
		{"radius-acct", "RADIUS accounting (udp)"},
		{"radsec", "RADIUS/TLS (RadSec); NAS certificates: hardbound nas issue NAME --out DIR"},
		{"enroll-https", "enrollment: ACME https://%s/acme/directory, SCEP https://%s/scep"},
		{"enroll-http", "SCEP and CRL over http://%s/scep, http://%s/crl"},
		{"admin", "admin API https://%s/api/v1/, console https://%s/ui/"},
		{"metrics", "metrics http://%s/metrics"},
	} {
		a := in.Addr(l.name)
		if a == "" {
			continue
		}
		what := strings.ReplaceAll(l.what, "%s", a)
		fmt.Fprintf(w, "  %-13s %-22s %s\n", l.name, a, what)
	}
	for _, c := range in.cfg.RADIUS.Clients {
		// What the configuration says, not what --dev would have added.
		secret := "inline secret"
		if c.SecretFile != "" {
			secret = "secret in " + c.SecretFile
		}
		fmt.Fprintf(w, "  NAS client %q %s, %s\n", c.Name, c.CIDR, secret)
	}
	if in.cfg.Dev {
		fmt.Fprintf(w, "dev mode:\n")
		fmt.Fprintf(w, "  admin token in %s; try: hardbound device list\n", in.adminTokenPath)
		fmt.Fprintf(w, "  CA root: %s\n", filepath.Join(in.cfg.DataDir, ca.SubDir, "root.crt"))
	}
}

// Config is the configuration the node runs, with --dev additions applied.
func (in *Node) Config() *Config { return in.cfg }

// Store is the node's store; CA its issuing CA; Posture its standing
// service. End-to-end tests read and change state through them.
func (in *Node) Store() store.Store        { return in.st }
func (in *Node) CA() *ca.CA                { return in.ca }
func (in *Node) Posture() *posture.Service { return in.posture }

// DevRADIUSSecret is the NAS secret --dev generated for 127.0.0.0/8, and
// DevTokenPath the file holding the admin token it created ("" otherwise).
func (in *Node) DevRADIUSSecret() string { return in.radiusSecret }
func (in *Node) DevTokenPath() string    { return in.adminTokenPath }
