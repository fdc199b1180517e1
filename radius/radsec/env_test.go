package radsec_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/radius/radsec"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

// requireTool finds a real peer binary; in CI (CI=true) a missing one fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (required in CI): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

// env is a whole server on loopback: hardbound's CA, an in-memory store,
// posture, the RADIUS server (UDP, for Serve's janitor and audit writer)
// and the RADIUS/TLS listener in front of it.
type env struct {
	ctx     context.Context
	dir     string
	ca      *ca.CA
	st      *badger.Store
	posture *posture.Service
	radius  *radius.Server
	ls      *radsec.Listener
	addr    string // RADIUS/TLS host:port
	server  tls.Certificate
	metrics *countMetrics
	logs    *syncBuffer // the listener's log
}

// syncBuffer is a log sink tests grep.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, mut func(*radsec.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	e := &env{ctx: ctx, dir: dir, metrics: newCountMetrics(), logs: &syncBuffer{}}
	e.ca = catest.New(t, filepath.Join(dir, "ca"))
	e.st = badgertest.Memory(t)
	var err error
	if e.posture, err = posture.New(e.st, []posture.Profile{{Name: "default", Formats: []string{"tpm", "none"}}}); err != nil {
		t.Fatal(err)
	}
	if e.server, err = e.ca.IssueServerTLS(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 0); err != nil {
		t.Fatal(err)
	}
	eap, err := eaptls.NewServer(eaptls.ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{e.server}, ClientCAs: e.ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	rcfg := radius.Config{Clients: []radius.Client{{Name: "udp-none", Prefix: netip.MustParsePrefix("127.0.0.254/32"),
		Secret: []byte("unused-udp-secret"), RequireMessageAuthenticator: true}}}
	if e.radius, err = radius.New(rcfg, eap, e.posture, e.st, e.st); err != nil {
		t.Fatal(err)
	}
	auth, _, err := e.radius.Listen(ctx, "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := radsec.Config{Certificate: e.server, OwnCA: e.ca.Pool(), Bindings: e.st, Metrics: e.metrics, Auditor: e.st,
		Logger:           slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HandshakeTimeout: 5 * time.Second, PacketTimeout: 2 * time.Second, IdleTimeout: 30 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	if e.ls, err = radsec.New(cfg, e.radius); err != nil {
		t.Fatal(err)
	}
	ln, err := e.ls.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.radius.Serve(ctx, auth, nil) })
	wg.Go(func() { _ = e.ls.Serve(ctx, ln) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("listener log:\n%s", tail(e.logs.String(), 30))
		}
	})
	return e
}

// nasCert issues a NAS certificate through the radsec.Issuer, as `hardbound nas
// issue` does, and returns it with its key.
func (e *env) nasCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	is, err := (&radsec.Issuer{CA: e.ca, Store: e.st}).Issue(e.ctx, radsec.IssueRequest{Name: name, CSR: csr, Actor: "admin:test"})
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: is.Cert}
	for _, x := range is.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// device enrolls a device and returns its client certificate.
func (e *env) device(t *testing.T, id string, r devbind.Request) *devbind.Device {
	t.Helper()
	r.DeviceID = id
	d, err := devbind.Bind(e.ctx, e.ca, e.st, time.Now(), r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeCert writes a certificate chain and key as PEM: name.crt, name.key.
func writeCert(t *testing.T, dir, name string, c tls.Certificate) (crt, key string) {
	t.Helper()
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(crt, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, key
}

// writeCA writes the bundle a NAS trusts (hardbound's issuing CA and root).
func (e *env) writeCA(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ca.crt")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.ca.Issuing().Raw})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.ca.Root().Raw})...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dial opens a RADIUS/TLS connection as a NAS with cert.
func (e *env) dial(t testing.TB, cert tls.Certificate, maxVersion uint16) (*tls.Conn, error) {
	return e.dialCache(t, cert, maxVersion, nil)
}

// dialCache is dial resuming TLS sessions from cache (nil: none), as a NAS
// reconnecting does.
func (e *env) dialCache(t testing.TB, cert tls.Certificate, maxVersion uint16, cache tls.ClientSessionCache) (*tls.Conn, error) {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Root())
	roots.AddCert(e.ca.Issuing())
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: maxVersion, ClientSessionCache: cache,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	return tc, nil
}

// audited counts audit events of action with actor, result and a reason
// starting with reason.
func (e *env) audited(t *testing.T, action, actor, result, reason string) int {
	t.Helper()
	evs, err := e.st.TailAudit(e.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == action && ev.Actor == actor && ev.Result == result && strings.HasPrefix(ev.Reason, reason) {
			n++
		}
	}
	return n
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyFor(t, 10*time.Second, what, cond)
}

// eventuallyFor polls cond for up to d.
func eventuallyFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

type countMetrics struct {
	mu   sync.Mutex
	c    map[string]int
	open int
}

func newCountMetrics() *countMetrics { return &countMetrics{c: map[string]int{}} }

func (m *countMetrics) inc(k string) { m.mu.Lock(); m.c[k]++; m.mu.Unlock() }
func (m *countMetrics) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.c))
	for k, v := range m.c {
		out[k] = v
	}
	return out
}

func (m *countMetrics) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c[k]
}
func (m *countMetrics) Connections(n int) { m.mu.Lock(); m.open = n; m.mu.Unlock() }
func (m *countMetrics) conns() int        { m.mu.Lock(); defer m.mu.Unlock(); return m.open }
func (m *countMetrics) Accepted(s string) { m.inc("accepted/" + s) }
func (m *countMetrics) Refused(r string)  { m.inc("refused/" + r) }
func (m *countMetrics) Closed(r string)   { m.inc("closed/" + r) }
func (m *countMetrics) Packet(k string)   { m.inc("packet/" + k) }

var _ = store.HashCert
