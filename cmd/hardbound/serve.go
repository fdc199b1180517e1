package main

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
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/admin/token"
	"hardbound/enroll"
	"hardbound/enroll/ca"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/store"
	"hardbound/store/atomicfile"
	"hardbound/store/badger"
)

func newServeCmd(e *env) *cobra.Command {
	var cfgPath, dataDir, logFormat string
	var dev bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the RADIUS, enrollment, admin and metrics listeners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				cfgPath = e.getenv("HARDBOUND_CONFIG")
			}
			if cfgPath == "" && !dev {
				return errors.New("serve needs --config FILE (or --dev for a local trial on embedded defaults)")
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			if logFormat != "" {
				cfg.Log.Format = logFormat
			}
			cfg.Dev = dev
			log := newLogger(cfg.Log, e.stderr)
			applyMemoryLimit(cfg, e.getenv("GOMEMLIMIT"), log)
			inst, err := start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			inst.banner(e.stdout)
			return inst.wait()
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (hardbound.yaml; env HARDBOUND_CONFIG)")
	cmd.Flags().BoolVar(&dev, "dev", false, "local trial: create data dir, CA, admin token and a 127.0.0.0/8 NAS client as needed (WARNING: accepts test attestation evidence)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "override data_dir")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "text or json (overrides log.format)")
	return cmd
}

// applyMemoryLimit sets the runtime's soft memory limit from memory_limit.
// It is process-wide, so only the serve command calls it, not start (tests
// run many instances in one process). Without memory_limit the runtime
// keeps its own setting (GOMEMLIMIT, or none).
func applyMemoryLimit(cfg *Config, gomemlimit string, log *slog.Logger) {
	if cfg.memoryLimit == 0 {
		if gomemlimit != "" {
			log.Info("memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		}
		return
	}
	debug.SetMemoryLimit(cfg.memoryLimit)
	log.Info("memory limit set", "memory_limit", cfg.MemoryLimit, "bytes", cfg.memoryLimit, "overrides_GOMEMLIMIT", gomemlimit != "")
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// instance is one running server. Tests start it with port-0 addresses and
// read the bound ones from addrs.
type instance struct {
	cfg     *Config
	log     *slog.Logger
	st      store.Store
	ca      *ca.CA
	posture *posture.Service
	metrics *metrics.Registry
	radius  *radius.Server
	enroll  *enrollment

	mdmHandlers map[string]http.Handler

	mu      sync.Mutex
	addrs   map[string]string // listener name -> bound address
	errc    chan error
	closers []func(context.Context) error // run in reverse on shutdown
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	adminTokenPath string
	radiusSecret   string // dev only: the generated NAS secret
}

// start initialises the data dir (in --dev), opens everything and starts
// every listener. It returns once all listeners are bound.
func start(parent context.Context, cfg *Config, log *slog.Logger) (_ *instance, err error) {
	ctx, cancel := context.WithCancel(parent)
	in := &instance{cfg: cfg, log: log, addrs: map[string]string{}, errc: make(chan error, 16), ctx: ctx, cancel: cancel}
	defer func() {
		if err != nil {
			in.shutdown()
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
	in.metrics = metrics.New()
	c, err := ca.Load(cfg.DataDir, ca.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("%w (create one with `hardbound ca init --data-dir %s`)", err, cfg.DataDir)
	}
	in.ca = c
	st, err := badger.Open(ctx, filepath.Join(cfg.DataDir, "db"), badger.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	in.st = st

	in.posture, err = posture.New(st, cfg.postureProfiles(), posture.WithLogger(log), posture.WithMetrics(in.metrics.Posture()))
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
		// The warm read every device and binding through Badger's mapped
		// tables: hand those pages back to the kernel (they stay on disk;
		// Decide now answers from the caches). Tables written later are
		// released by the store itself.
		t0 := time.Now()
		rel, err := st.ReleaseTablePages(in.ctx)
		switch {
		case err != nil && in.ctx.Err() == nil:
			in.log.Warn("release table pages after warm", "err", err)
		case err == nil:
			in.log.Info("released table pages after warm", "tables", rel.Tables, "mapped_bytes", rel.Bytes,
				"took", time.Since(t0).Round(time.Millisecond))
		}
	}()
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

func (in *instance) onClose(f func(context.Context) error) {
	in.mu.Lock()
	in.closers = append(in.closers, f)
	in.mu.Unlock()
}

func (in *instance) setAddr(name, addr string) {
	in.mu.Lock()
	in.addrs[name] = addr
	in.mu.Unlock()
}

// Addr returns a listener's bound address.
func (in *instance) Addr(name string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.addrs[name]
}

// fail reports a listener that stopped unexpectedly; wait returns it.
func (in *instance) fail(name string, err error) {
	if err == nil || errors.Is(err, http.ErrServerClosed) || in.ctx.Err() != nil {
		return
	}
	select {
	case in.errc <- fmt.Errorf("%s: %w", name, err):
	default:
	}
}

// serveHTTP starts an HTTP(S) listener.
func (in *instance) serveHTTP(name, addr string, h http.Handler, tlsCfg *tlsConfig) error {
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

func (in *instance) startMetrics() error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", in.metrics.Handler())
	return in.serveHTTP("metrics", in.cfg.Metrics.Addr, mux, nil)
}

func (in *instance) startAdmin() error {
	// The token file is re-read when it changes, so `hardbound token
	// create --data-dir` works on it even while the server runs.
	path := in.cfg.Admin.TokenPath(in.cfg.DataDir)
	tokens, err := token.OpenFile(path)
	if err != nil {
		return err
	}
	if l, err := tokens.List(time.Now()); err == nil && len(l) == 0 && in.cfg.Admin.Addr != "" {
		in.log.Warn("no admin token yet; make the first one with: hardbound token create NAME --scope admin --data-dir "+in.cfg.DataDir, "file", path)
	}
	deps := in.adminDeps()
	deps.Tokens = tokens
	srv, err := admin.New(deps, nil, admin.WithLogger(in.log))
	if err != nil {
		return err
	}
	kp, err := in.ca.ServerCert(in.ctx, in.cfg.DataDir, "admin", []string{"localhost", "127.0.0.1", "::1"}, true)
	if err != nil {
		return err
	}
	return in.serveHTTP("admin", in.cfg.Admin.Addr, srv, newTLSConfig(kp))
}

// wait blocks until the context ends or a listener fails, then shuts down.
func (in *instance) wait() error {
	var err error
	select {
	case <-in.ctx.Done():
	case err = <-in.errc:
		in.log.Error("listener failed; shutting down", "err", err)
	}
	in.shutdown()
	return err
}

// shutdown stops listeners and closes the store last (flushing Badger). It
// is idempotent.
func (in *instance) shutdown() {
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

// devBootstrap creates, when absent, what a local trial needs: the CA, an
// admin token and a NAS client for 127.0.0.0/8 with a generated secret.
func (in *instance) devBootstrap() error {
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
		if c.Name == "localhost" {
			hasLocal = true
		}
	}
	if !hasLocal {
		in.cfg.RADIUS.Clients = append(in.cfg.RADIUS.Clients, radius.FileClient{Name: "localhost", CIDR: "127.0.0.0/8", SecretFile: secretPath})
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

// banner tells the operator what listens where and how to use it.
func (in *instance) banner(w io.Writer) {
	fmt.Fprintf(w, "hardbound %s running, data in %s\n", buildVersion(), in.cfg.DataDir)
	for _, l := range []struct{ name, what string }{
		{"radius-auth", "RADIUS authentication (udp)"},
		{"radius-acct", "RADIUS accounting (udp)"},
		{"enroll-https", "enrollment: ACME https://%s/acme/directory, SCEP https://%s/scep"},
		{"enroll-http", "SCEP and CRL over http://%s/scep, http://%s/crl"},
		{"admin", "admin API https://%s/api/v1/"},
		{"metrics", "metrics http://%s/metrics"},
	} {
		a := in.Addr(l.name)
		if a == "" {
			continue
		}
		what := strings.ReplaceAll(l.what, "%s", a)
		fmt.Fprintf(w, "  %-13s %-22s %s\n", l.name, a, what)
	}
	if in.cfg.Dev {
		fmt.Fprintf(w, "dev mode:\n")
		fmt.Fprintf(w, "  NAS client \"localhost\" 127.0.0.0/8, secret in %s\n", filepath.Join(in.cfg.DataDir, "radius.secret"))
		fmt.Fprintf(w, "  admin token in %s; try: hardbound device list\n", in.adminTokenPath)
		fmt.Fprintf(w, "  CA root: %s\n", filepath.Join(in.cfg.DataDir, ca.SubDir, "root.crt"))
	}
}
