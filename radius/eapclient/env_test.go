package eapclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/radius/radiustest"
	"hardbound/store"
)

const testSecret = "eapclient-test-secret"

// testEnv is the real hardbound RADIUS server (radius/radiustest).
type testEnv struct {
	*radiustest.Server
	ctx        context.Context
	ca         *ca.CA
	st         store.Store
	eap        *eaptls.Server
	auth, acct netip.AddrPort
}

func quietLog() *slog.Logger { return radiustest.Quiet() }

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	s := radiustest.Start(t, testSecret)
	return &testEnv{Server: s, ctx: s.Ctx, ca: s.CA, st: s.Store, eap: s.EAP, auth: s.Auth, acct: s.Acct}
}

// device makes a device with the given posture; unbound issues a cert from
// our CA without any binding.
func (e *testEnv) device(t testing.TB, id string, compliance store.Compliance, unbound bool) *devbind.Device {
	t.Helper()
	return e.Device(t, id, compliance, unbound)
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
			RootCAs: roots, ServerName: radiustest.ServerName, MinVersion: version, MaxVersion: version,
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
	p := &proxy{front: radiustest.ListenUDP(t), back: radiustest.ListenUDP(t), server: server, onReply: onReply}
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
