package radius

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/radius/packet"
	"hardbound/store"
)

// ---- PKI -------------------------------------------------------------------

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	tls  tls.Certificate
}

type testPKI struct {
	ca, foreignCA testCert
	server        testCert
	clients       map[string]testCert // by name: ok, unbound, revoked, ...
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

// newPKI builds (once per test binary) a CA, a server cert and client certs.
func newPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = buildPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func buildPKI() (*testPKI, error) {
	now := time.Now()
	serial := int64(1)
	mk := func(cn string, parent *testCert, isCA bool, eku []x509.ExtKeyUsage, nb, na time.Time, dns []string) (testCert, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return testCert{}, err
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: cn},
			NotBefore:             nb,
			NotAfter:              na,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           eku,
			BasicConstraintsValid: true,
			IsCA:                  isCA,
			DNSNames:              dns,
		}
		if isCA {
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
		signer, parentCert := crypto.Signer(key), tmpl
		if parent != nil {
			signer, parentCert = parent.key, parent.cert
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
		if err != nil {
			return testCert{}, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return testCert{}, err
		}
		return testCert{cert: c, key: key, tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}}, nil
	}
	p := &testPKI{clients: map[string]testCert{}}
	var err error
	year := 365 * 24 * time.Hour
	if p.ca, err = mk("hardbound test CA", nil, true, nil, now.Add(-time.Hour), now.Add(year), nil); err != nil {
		return nil, err
	}
	if p.foreignCA, err = mk("foreign CA", nil, true, nil, now.Add(-time.Hour), now.Add(year), nil); err != nil {
		return nil, err
	}
	if p.server, err = mk("radius.test", &p.ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, now.Add(-time.Hour), now.Add(year), []string{"radius.test"}); err != nil {
		return nil, err
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	for _, name := range []string{"ok", "vlan", "unbound", "cert_revoked", "device_revoked", "device_quarantined"} {
		if p.clients[name], err = mk("device-"+name, &p.ca, false, client, now.Add(-time.Hour), now.Add(year), nil); err != nil {
			return nil, err
		}
	}
	if p.clients["expired"], err = mk("device-expired", &p.ca, false, client, now.Add(-48*time.Hour), now.Add(-24*time.Hour), nil); err != nil {
		return nil, err
	}
	if p.clients["foreign"], err = mk("device-foreign", &p.foreignCA, false, client, now.Add(-time.Hour), now.Add(year), nil); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *testPKI) eapServer(t testing.TB) *eaptls.Server {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	srv, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS: &tls.Config{Certificates: []tls.Certificate{p.server.tls}, ClientCAs: pool},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// peerTLS is the supplicant config for client name ("" = no client cert).
func (p *testPKI) peerTLS(name string, maxVersion uint16) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.cert)
	c := &tls.Config{RootCAs: roots, ServerName: "radius.test", MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
	if name != "" {
		// GetClientCertificate, not Certificates: Go's client would silently
		// send no certificate when it does not chain to the server's CAs,
		// and the foreign-CA case must really present its cert.
		cert := p.clients[name].tls
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return c
}

// decider is the test Decider: a table keyed by cert SHA-256.
func (p *testPKI) decider() *tableDecider {
	d := &tableDecider{m: map[store.Hash]posture.Verdict{}}
	add := func(name string, v posture.Verdict) {
		h := store.HashCert(p.clients[name].cert)
		v.CertSHA256 = h
		d.m[h] = v
	}
	add("ok", posture.Verdict{Allow: true, Reason: posture.ReasonOK, DeviceID: "dev-ok", SessionTimeout: 3600 * time.Second})
	add("vlan", posture.Verdict{Allow: true, Reason: posture.ReasonOK, DeviceID: "dev-vlan", VLAN: "42"})
	add("cert_revoked", posture.Verdict{Reason: posture.ReasonCertRevoked, DeviceID: "dev-cr"})
	add("device_revoked", posture.Verdict{Reason: posture.ReasonDeviceRevoked, DeviceID: "dev-dr"})
	add("device_quarantined", posture.Verdict{Reason: posture.ReasonDeviceQuarantined, DeviceID: "dev-q"})
	return d
}

type tableDecider struct {
	m map[store.Hash]posture.Verdict
}

func (d *tableDecider) Decide(_ context.Context, leaf *x509.Certificate) posture.Verdict {
	h := store.HashCert(leaf)
	if v, ok := d.m[h]; ok {
		return v
	}
	return posture.Verdict{Reason: posture.ReasonUnknownCert, CertSHA256: h}
}

// writePEM writes the files eapol_test needs into dir.
func (p *testPKI) writePEM(t testing.TB, dir, name string) (ca, cert, key string) {
	t.Helper()
	write := func(file, typ string, der []byte) string {
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ca = write("ca.pem", "CERTIFICATE", p.ca.cert.Raw)
	c := p.clients[name]
	cert = write(name+".pem", "CERTIFICATE", c.cert.Raw)
	kder, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	key = write(name+".key", "PRIVATE KEY", kder)
	return ca, cert, key
}

// ---- stores ----------------------------------------------------------------

type memSessions struct {
	mu        sync.Mutex
	m         map[string]store.Session
	failPut   error
	failClose error
	puts      int
}

func newMemSessions() *memSessions { return &memSessions{m: map[string]store.Session{}} }

func (m *memSessions) PutSession(_ context.Context, s *store.Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return m.failPut
	}
	m.puts++
	m.m[s.NAS+"/"+s.AcctSessionID] = *s
	return nil
}

func (m *memSessions) GetSession(_ context.Context, nas, id string) (*store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[nas+"/"+id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &s, nil
}

// CloseNASSessions follows the store contract (storetest checks the real one).
func (m *memSessions) CloseNASSessions(_ context.Context, scope store.NASScope, at time.Time, cause uint32) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failClose != nil {
		return 0, m.failClose
	}
	n := 0
	for k, s := range m.m {
		if !scope.Matches(&s) || !s.Live() || s.StartedAt.After(at) {
			continue
		}
		s.StoppedAt, s.UpdatedAt, s.TerminateCause, s.ClosedByOnOff = at, at, cause, true
		m.m[k] = s
		n++
	}
	return n, nil
}

func (m *memSessions) get(nas, id string) (store.Session, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[nas+"/"+id]
	return s, ok
}

type memAudit struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (m *memAudit) AppendAudit(_ context.Context, ev *store.AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, *ev)
	return nil
}

func (m *memAudit) AppendAudits(_ context.Context, evs []*store.AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		m.events = append(m.events, *ev)
	}
	return nil
}

func (m *memAudit) all() []store.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.AuditEvent(nil), m.events...)
}

// ---- metrics ---------------------------------------------------------------

type countMetrics struct {
	mu sync.Mutex
	c  map[string]int
}

func newCountMetrics() *countMetrics { return &countMetrics{c: map[string]int{}} }

func (m *countMetrics) inc(k string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.c[k]++
}

func (m *countMetrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.c)
}

func (m *countMetrics) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c[k]
}

func (m *countMetrics) Request(p, r string)                    { m.inc("request/" + p + "/" + r) }
func (m *countMetrics) Reject(r string)                        { m.inc("reject/" + r) }
func (m *countMetrics) Drop(c string)                          { m.inc("drop/" + c) }
func (m *countMetrics) AuthDuration(r string, _ time.Duration) { m.inc("duration/" + r) }
func (m *countMetrics) Conversations(int)                      {}
func (m *countMetrics) Accounting(s, r string)                 { m.inc("acct/" + s + "/" + r) }
func (m *countMetrics) AuditError()                            { m.inc("audit_error") }

// ---- a small RADIUS client (the NAS side) -----------------------------------

const testSecret = "s3cret-for-tests"

// buildRequest encodes a request. For Access-Request/Status-Server withMA
// appends a correct Message-Authenticator, last, as hostapd and eapol_test
// send it (the server accepts it anywhere); badMA corrupts it.
func buildRequest(t testing.TB, code lradius.Code, id byte, secret []byte, attrs lradius.Attributes, withMA, badMA bool) []byte {
	t.Helper()
	p := &lradius.Packet{Code: code, Identifier: id, Attributes: attrs}
	if code != lradius.CodeAccountingRequest {
		if _, err := rand.Read(p.Authenticator[:]); err != nil {
			t.Fatal(err)
		}
	}
	if withMA {
		p.Attributes = append(p.Attributes, &lradius.AVP{Type: attrMessageAuth, Attribute: make([]byte, 16)})
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := packet.NewSecret(secret).SignRequest(b); err != nil {
		t.Fatal(err)
	}
	if withMA && badMA {
		b[len(b)-16] ^= 0xff
	}
	return b
}

// checkResponse verifies the Response Authenticator (with layeh's own
// check as well as the codec's) and, for codes that need it, that
// Message-Authenticator is the FIRST attribute and correct.
func checkResponse(t testing.TB, resp, req, secret []byte) *lradius.Packet {
	t.Helper()
	if !lradius.IsAuthenticResponse(resp, req, secret) {
		t.Fatalf("response authenticator does not verify")
	}
	p, err := lradius.Parse(resp, secret)
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	switch p.Code {
	case lradius.CodeAccessAccept, lradius.CodeAccessReject, lradius.CodeAccessChallenge:
		if len(p.Attributes) == 0 || p.Attributes[0].Type != attrMessageAuth {
			t.Fatalf("%v: Message-Authenticator is not the first attribute", p.Code)
		}
	}
	v, err := packet.Parse(resp)
	if err != nil {
		t.Fatalf("%v: %v", p.Code, err)
	}
	if err := packet.NewSecret(secret).VerifyResponse(&v, req[4:20], packet.Policy{}); err != nil {
		t.Fatalf("%v: %v", p.Code, err)
	}
	return p
}

type udpNAS struct {
	conn   *net.UDPConn
	server netip.AddrPort
	secret []byte
}

func newUDPNAS(t testing.TB, server netip.AddrPort, secret []byte) *udpNAS {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpNAS{conn: c, server: server, secret: secret}
}

var errNoReply = errors.New("no reply")

// exchange sends req and waits up to wait for one reply.
func (u *udpNAS) exchange(req []byte, wait time.Duration) ([]byte, error) {
	if _, err := u.conn.WriteToUDPAddrPort(req, u.server); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	if err := u.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	for {
		n, _, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, errNoReply
			}
			return nil, err
		}
		if n >= 2 && buf[1] == req[1] {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func u32(v uint32) lradius.Attribute {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

// ListSessions is the enforcer's view (dynauth.Sessions): the sessions of
// one device, live ones only if asked, in one page.
func (m *memSessions) ListSessions(_ context.Context, deviceID string, liveOnly bool, _ store.Page) ([]*store.Session, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*store.Session
	for _, s := range m.m {
		if s.DeviceID != deviceID || (liveOnly && !s.Live()) {
			continue
		}
		out = append(out, &s)
	}
	return out, "", nil
}

// newUDPNASAt is newUDPNAS from another loopback address (127.0.0.2...):
// one more NAS under the same client prefix.
func newUDPNASAt(t testing.TB, server netip.AddrPort, secret []byte, local string) *udpNAS {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpNAS{conn: c, server: server, secret: secret}
}
