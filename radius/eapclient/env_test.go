package eapclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"

	"hardbound/eaptls"
	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/store"
	"hardbound/store/badger"
)

const testSecret = "eapclient-test-secret"

// testEnv is the real hardbound RADIUS server on 127.0.0.1 with a real CA,
// an in-memory Badger store and posture.Service deciding.
type testEnv struct {
	ctx        context.Context
	ca         *ca.CA
	st         store.Store
	eap        *eaptls.Server
	auth, acct netip.AddrPort
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	c := catest.New(t, dir, ca.WithLogger(quietLog()))
	st, err := badger.Open(ctx, "", badger.WithInMemory(), badger.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := posture.New(st, nil, posture.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.IssueServerTLS(ctx, []string{"radius.test"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	eap, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS:         &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: c.Pool(), MinVersion: tls.VersionTLS12},
		Resumption:  eaptls.Resumption{MaxLifetime: time.Hour},
		OmitCANames: true, // the production default (radius.send_ca_names off)
		Logger:      quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := radius.New(radius.Config{Clients: []radius.Client{{
		Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret),
		RequireMessageAuthenticator: true, LimitProxyState: true, SendRejectReason: true,
	}}}, eap, svc, st, st, radius.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	a, b := listenLo(t), listenLo(t)
	e := &testEnv{ctx: ctx, ca: c, st: st, eap: eap,
		auth: a.LocalAddr().(*net.UDPAddr).AddrPort(), acct: b.LocalAddr().(*net.UDPAddr).AddrPort()}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, a, b) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop")
		}
		st.Close()
	})
	return e
}

func listenLo(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// device makes a device with the given posture; unbound issues a cert from
// our CA without any binding.
func (e *testEnv) device(t testing.TB, id string, compliance store.Compliance, unbound bool) *devbind.Device {
	t.Helper()
	d, err := devbind.Bind(e.ctx, e.ca, e.st, time.Now(), devbind.Request{DeviceID: id, Posture: compliance, NoBinding: unbound})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// peer builds a supplicant for d at the given TLS version.
func (e *testEnv) peer(d *devbind.Device, version uint16, mtu int) *eaptls.Peer {
	return e.resumingPeer(d, version, mtu, nil)
}

// resumingPeer is peer with a session cache that outlives it (nil: none).
func (e *testEnv) resumingPeer(d *devbind.Device, version uint16, mtu int, cache tls.ClientSessionCache) *eaptls.Peer {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Root())
	cert := d.Certificate
	return eaptls.NewPeer(e.ctx, eaptls.PeerConfig{
		TLS: &tls.Config{
			RootCAs: roots, ServerName: "radius.test", MinVersion: version, MaxVersion: version,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
			ClientSessionCache:   cache,
		},
		Identity: "anonymous@example.org",
		MTU:      mtu,
	})
}

func (e *testEnv) client(t testing.TB, server netip.AddrPort, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Server: server.String(), AcctServer: e.acct.String(), Secret: []byte(testSecret), Timeout: 2 * time.Second, Retries: 2}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// proxy is a UDP relay between one client and the server that can drop or
// rewrite replies, to exercise retransmission and reply verification.
type proxy struct {
	front, back *net.UDPConn
	server      netip.AddrPort

	mu      sync.Mutex
	client  netip.AddrPort
	lastReq []byte
	replies int
	// onReply returns the bytes to forward (nil drops) for reply number n
	// (counting from 1); req is the last request forwarded.
	onReply func(n int, reply, req []byte) []byte
}

func newProxy(t testing.TB, server netip.AddrPort, onReply func(n int, reply, req []byte) []byte) *proxy {
	t.Helper()
	p := &proxy{front: listenLo(t), back: listenLo(t), server: server, onReply: onReply}
	t.Cleanup(func() { p.front.Close(); p.back.Close() })
	go p.forward()
	go p.backward()
	return p
}

func (p *proxy) addr() netip.AddrPort { return p.front.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *proxy) forward() {
	buf := make([]byte, 4096)
	for {
		n, from, err := p.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.client = from
		p.lastReq = append(p.lastReq[:0], buf[:n]...)
		p.mu.Unlock()
		if _, err := p.back.WriteToUDPAddrPort(buf[:n], p.server); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *proxy) backward() {
	buf := make([]byte, 4096)
	for {
		n, _, err := p.back.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.replies++
		out := p.onReply(p.replies, append([]byte(nil), buf[:n]...), p.lastReq)
		client := p.client
		p.mu.Unlock()
		if out != nil {
			_, _ = p.front.WriteToUDPAddrPort(out, client)
		}
	}
}
