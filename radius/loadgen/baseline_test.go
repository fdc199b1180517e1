package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBaseline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clientCA, foreign := baselineCerts(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ListenBaseline(ctx, BaselineServerConfig{Listen: "127.0.0.1:0", Cert: e.serverCert, Key: e.serverKey, ClientCA: clientCA})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	ok := e.certDir(t, false, "d1", "d2")
	for _, tt := range []struct {
		name   string
		certs  Certs
		failed int
	}{
		{"ok/tls1.2", Certs{Dir: ok, TLSVersion: "1.2"}, 0},
		{"ok/tls1.3", Certs{Dir: ok, TLSVersion: "1.3", ServerName: "radius.test"}, 0},
		{"fail/foreign-client-cert", Certs{Dir: foreign, TLSVersion: "1.3"}, 6},
		{"fail/wrong-server-name", Certs{Dir: ok, TLSVersion: "1.2", ServerName: "other.test"}, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := RunBaseline(context.Background(), BaselineConfig{Connect: srv.Addr().String(), Certs: tt.certs, Count: 6, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Handshakes != 6 || rep.Failed != tt.failed || (rep.FirstErr != nil) != (tt.failed > 0) || rep.Elapsed <= 0 {
				t.Fatalf("report %+v", rep)
			}
			var b bytes.Buffer
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if want := "6 handshakes (TLS " + tt.certs.TLSVersion + ") in "; !strings.HasPrefix(b.String(), want) ||
				!strings.HasSuffix(b.String(), fmt.Sprintf("/s, %d failed\n", tt.failed)) {
				t.Fatalf("text %q", b.String())
			}
		})
	}
	stopServing(t, cancel, served)
}

// baselineCerts writes e's issuing CA, the baseline server's client CA,
// and the cert dir of a foreign device: it trusts e's server, but another
// CA issued it.
func baselineCerts(t *testing.T, e *testEnv) (clientCA, foreign string) {
	t.Helper()
	clientCA = filepath.Join(t.TempDir(), "issuing.crt")
	writePEM(t, clientCA, "CERTIFICATE", e.ca.Issuing().Raw)
	foreign = newEnv(t).certDir(t, false, "foreign")
	writePEM(t, filepath.Join(foreign, "ca.crt"), "CERTIFICATE", e.ca.Root().Raw)
	return clientCA, foreign
}

// stopServing ends a baseline server's context and waits for its Serve,
// which must return nil.
func stopServing(t *testing.T, cancel context.CancelFunc, served <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestBaselineRefusesConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := e.certDir(t, false, "d1")
	for name, cfg := range map[string]BaselineConfig{
		"no-count":       {Certs: Certs{Dir: dir, TLSVersion: "1.3"}, Count: 0, Concurrency: 1},
		"no-concurrency": {Certs: Certs{Dir: dir, TLSVersion: "1.3"}, Count: 1, Concurrency: 0},
		"bad-tls":        {Certs: Certs{Dir: dir, TLSVersion: "1.0"}, Count: 1, Concurrency: 1},
	} {
		if rep, err := RunBaseline(context.Background(), cfg); err == nil || rep != (BaselineReport{}) {
			t.Errorf("%s: report %+v, err %v", name, rep, err)
		}
	}
	for name, cfg := range map[string]BaselineServerConfig{
		"no-cert":       {Listen: "127.0.0.1:0", Cert: "nope", Key: e.serverKey, ClientCA: e.serverCert},
		"no-client-ca":  {Listen: "127.0.0.1:0", Cert: e.serverCert, Key: e.serverKey, ClientCA: "nope"},
		"client-ca-key": {Listen: "127.0.0.1:0", Cert: e.serverCert, Key: e.serverKey, ClientCA: e.serverKey},
		"bad-listen":    {Listen: "127.0.0.1:notaport", Cert: e.serverCert, Key: e.serverKey, ClientCA: e.serverCert},
	} {
		if s, err := ListenBaseline(context.Background(), cfg); err == nil {
			s.ln.Close()
			t.Errorf("%s: listened", name)
		}
	}
}
