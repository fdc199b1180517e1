package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
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

const testSecret = "loadgen-test-secret"

// testEnv is the real hardbound RADIUS server on 127.0.0.1 with a real CA,
// an in-memory Badger store and posture.Service deciding.
type testEnv struct {
	ctx  context.Context
	ca   *ca.CA
	st   store.Store
	auth string
	// serverCert and serverKey are the RADIUS server's chain and key
	// files, for the TLS baseline server.
	serverCert, serverKey string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := catest.New(t, "", ca.WithLogger(quietLog()))
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
	a, b := listenUDP(t), listenUDP(t)
	dir := t.TempDir()
	e := &testEnv{ctx: ctx, ca: c, st: st, auth: a.LocalAddr().String(),
		serverCert: filepath.Join(dir, "radius.crt"), serverKey: filepath.Join(dir, "radius.key")}
	writePEM(t, e.serverCert, "CERTIFICATE", kp.Certificate...)
	writeKey(t, e.serverKey, kp.PrivateKey)
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

func listenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// certDir writes devices bound (or, with unbound, only issued) by e's CA
// in the layout MakeDevices writes: <id>.crt, <id>.key and ca.crt.
func (e *testEnv) certDir(t testing.TB, unbound bool, ids ...string) string {
	t.Helper()
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", e.ca.Root().Raw)
	for _, id := range ids {
		d, err := devbind.Bind(e.ctx, e.ca, e.st, time.Now(), devbind.Request{DeviceID: id, Posture: store.ComplianceCompliant, NoBinding: unbound})
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, id+".crt"), "CERTIFICATE", d.Certificate.Certificate...)
		writeKey(t, filepath.Join(dir, id+".key"), d.Key)
	}
	return dir
}

func writePEM(t testing.TB, path, typ string, ders ...[]byte) {
	t.Helper()
	var b []byte
	for _, der := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t testing.TB, path string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "PRIVATE KEY", der)
}
