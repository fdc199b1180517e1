package loadgen

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/radius/radiustest"
	"hardbound/store"
)

const testSecret = "loadgen-test-secret"

// testEnv is the real hardbound RADIUS server (radius/radiustest).
type testEnv struct {
	ctx  context.Context
	ca   *ca.CA
	st   store.Store
	auth string
	// serverCert and serverKey are the RADIUS server's chain and key
	// files, for the TLS baseline server.
	serverCert, serverKey string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	s := radiustest.Start(t, testSecret)
	dir := t.TempDir()
	e := &testEnv{ctx: s.Ctx, ca: s.CA, st: s.Store, auth: s.Auth.String(),
		serverCert: filepath.Join(dir, "radius.crt"), serverKey: filepath.Join(dir, "radius.key")}
	writePEM(t, e.serverCert, "CERTIFICATE", s.ServerCert.Certificate...)
	writeKey(t, e.serverKey, s.ServerCert.PrivateKey)
	return e
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
