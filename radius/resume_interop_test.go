package radius

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/eaptls"
)

// holdRelay relays UDP between eapol_test and the server and holds
// eapol_test's first request after the first Access-Accept until release
// is closed: eapol_test -r runs its authentications back to back, and the
// session it resumes from lives only in that process.
type holdRelay struct {
	down    *net.UDPConn
	held    chan struct{}
	release chan struct{}
}

func newHoldRelay(t *testing.T, target netip.AddrPort) *holdRelay {
	t.Helper()
	down, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close(); up.Close() })
	r := &holdRelay{down: down, held: make(chan struct{}), release: make(chan struct{})}
	var (
		mu      sync.Mutex
		client  *net.UDPAddr
		accepts int
		once    sync.Once
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := down.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			hold := accepts == 1
			mu.Unlock()
			if hold {
				once.Do(func() { close(r.held) })
				<-r.release
			}
			if _, err := up.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if n > 0 && buf[0] == 2 { // Access-Accept
				accepts++
			}
			to := client
			mu.Unlock()
			if to != nil {
				_, _ = down.WriteToUDP(buf[:n], to)
			}
		}
	}()
	return r
}

// eapolResumed counts the authentications (from CTRL-EVENT-EAP-STARTED
// on) in which OpenSSL reports "Handshake finished - resumed=1".
func eapolResumed(out string) int {
	n := 0
	for _, auth := range strings.Split(out, "CTRL-EVENT-EAP-STARTED")[1:] {
		if strings.Contains(auth, "Handshake finished - resumed=1") {
			n++
		}
	}
	return n
}

// TestInteropEapolTestResumption: eapol_test (OpenSSL) resumes from
// hardbound's tickets over TLS 1.2 and 1.3 with matching MPPE keys, and
// once the server's ticket keys are dropped (DropTickets) between two
// authentications, the second one is a full handshake that still
// succeeds.
func TestInteropEapolTestResumption(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "eapol_test")
	pki := newPKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca.cert)
	eap, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS:         &tls.Config{Certificates: []tls.Certificate{pki.server.tls}, ClientCAs: pool},
		Resumption:  eaptls.Resumption{MaxLifetime: time.Hour},
		OmitCANames: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Clients: []Client{{
		Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret), RequireMessageAuthenticator: true,
	}}}, eap, pki.decider(), newMemSessions(), &memAudit{}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	auth := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn, nil) }()
	t.Cleanup(func() { stopLive(t, s, cancel, done) })

	phase1 := map[string]string{
		"1.2": "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_3=1 tls_disable_session_ticket=0",
		"1.3": "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0 tls_disable_session_ticket=0",
	}
	for _, version := range []string{"1.2", "1.3"} {
		for _, drop := range []bool{false, true} {
			name := fmt.Sprintf("tls%s/resumes", version)
			if drop {
				name = fmt.Sprintf("tls%s/dropped_keys_full_handshake", version)
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ca, cert, key := pki.writePEM(t, dir, "ok")
				conf := filepath.Join(dir, "eapol.conf")
				body := fmt.Sprintf("network={\n\tkey_mgmt=WPA-EAP\n\teap=TLS\n\tidentity=\"anonymous@example.org\"\n\tca_cert=\"%s\"\n\tclient_cert=\"%s\"\n\tprivate_key=\"%s\"\n\teap_workaround=0\n\tphase1=\"%s\"\n}\n",
					ca, cert, key, phase1[version])
				if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				relay := newHoldRelay(t, auth)
				port := relay.down.LocalAddr().(*net.UDPAddr).Port
				var out string
				var runErr error
				finished := make(chan struct{})
				go func() {
					defer close(finished)
					out, runErr = runTool(t, 60*time.Second, "", bin, "-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-s", testSecret, "-t", "10", "-r", "1")
				}()
				select {
				case <-relay.held:
				case <-finished:
					t.Fatalf("eapol_test ended before its second authentication: %v\n%s", runErr, tail(out, 40))
				}
				if drop {
					if err := s.DropTickets(); err != nil {
						t.Fatal(err)
					}
				}
				close(relay.release)
				<-finished
				if runErr != nil || !strings.Contains(out, "MPPE keys OK: 2  mismatch: 0") || !strings.Contains(out, "Using TLS version TLSv"+version) {
					t.Fatalf("eapol_test: %v\n%s", runErr, tail(out, 40))
				}
				want := 1
				if drop {
					want = 0
				}
				if got := eapolResumed(out); got != want {
					t.Fatalf("eapol_test resumed %d of 2 authentications, want %d", got, want)
				}
			})
		}
	}
}
