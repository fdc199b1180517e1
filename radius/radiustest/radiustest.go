// Package radiustest runs the real hardbound RADIUS server on 127.0.0.1 for
// the tests of the packages that talk to it (radius/eapclient,
// radius/loadgen): a real CA, an in-memory Badger store and posture.Service
// deciding, one NAS client for 127.0.0.0/8 that requires
// Message-Authenticator.
package radiustest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/store"
	"hardbound/store/badger"
)

// ServerName is the name in the server certificate.
const ServerName = "radius.test"

// Server is a running server. Ctx ends when the test does.
type Server struct {
	Ctx   context.Context
	CA    *ca.CA
	Store store.Store
	EAP   *eaptls.Server
	// Secret is the NAS client's shared secret.
	Secret []byte
	// Auth and Acct are the bound authentication and accounting sockets.
	Auth, Acct netip.AddrPort
	// ServerCert is the RADIUS server's certificate and key.
	ServerCert tls.Certificate
}

// Quiet is a logger that drops everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Start starts a server whose NAS client uses secret; it stops at test end.
func Start(t testing.TB, secret string) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := catest.New(t, "", ca.WithLogger(Quiet()))
	st, err := badger.Open(ctx, "", badger.WithInMemory(), badger.WithLogger(Quiet()))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := posture.New(st, nil, posture.WithLogger(Quiet()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.IssueServerTLS(ctx, []string{ServerName}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	eap, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS: &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: c.Pool(), MinVersion: tls.VersionTLS12},
		// The production defaults: resumption on, no CA names in the
		// CertificateRequest (radius.send_ca_names off).
		Resumption:  eaptls.Resumption{MaxLifetime: time.Hour},
		OmitCANames: true,
		Logger:      Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := radius.New(radius.Config{Clients: []radius.Client{{
		Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(secret),
		RequireMessageAuthenticator: true, LimitProxyState: true, SendRejectReason: true,
	}}}, eap, svc, st, st, radius.WithLogger(Quiet()))
	if err != nil {
		t.Fatal(err)
	}
	a, b := ListenUDP(t), ListenUDP(t)
	s := &Server{Ctx: ctx, CA: c, Store: st, EAP: eap, Secret: []byte(secret), ServerCert: kp,
		Auth: a.LocalAddr().(*net.UDPAddr).AddrPort(), Acct: b.LocalAddr().(*net.UDPAddr).AddrPort()}
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
		svc.Close()
		st.Close()
	})
	return s
}

// ListenUDP opens a UDP socket on 127.0.0.1 at a free port.
func ListenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Device binds a device with the given posture; with unbound the cert is
// only issued by the CA, with no binding.
func (s *Server) Device(t testing.TB, id string, compliance store.Compliance, unbound bool) *devbind.Device {
	t.Helper()
	d, err := devbind.Bind(s.Ctx, s.CA, s.Store, time.Now(), devbind.Request{DeviceID: id, Posture: compliance, NoBinding: unbound})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
