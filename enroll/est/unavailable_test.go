package est_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"hardbound/enroll/est"
	"hardbound/enroll/gate"
	"hardbound/enroll/scep"
	"hardbound/store"
	"hardbound/store/policy"
	"hardbound/store/storetest"
)

// A simpleenroll while the store's database is away is answered 503 with
// Retry-After (RFC 7030 §4.2.3), and the same request issues once the
// store answers again: the challenge was not consumed.
func TestSimpleEnrollWhileStoreUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.inventory(t, "dev-away")
	ch := e.challenge(t, scep.MintRequest{DeviceID: "dev-away"})
	faulty := &storetest.Faulty{Store: e.st}
	g, err := gate.New(faulty, []gate.Profile{{Name: policy.DefaultProfile, RequireInventory: true}, {Name: "attested", RequireInventory: true}}, policy.DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := est.New(est.Config{Profiles: profiles, Gate: g}, e.ca, faulty, e.pos)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := e.ca.IssueServerTLS(t.Context(), []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	csr := newCSR(t, key(t))
	enroll := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/.well-known/est/simpleenroll", bytes.NewReader(csr))
		req.Header.Set("Content-Type", "application/pkcs10")
		req.SetBasicAuth("dev-away", ch)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	faulty.Fail = func(m string) error { return fmt.Errorf("test: %s: %w", m, store.ErrUnavailable) }
	if res := enroll(); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("simpleenroll with the database away: HTTP %d Retry-After %q, want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	faulty.Fail = nil
	if res := enroll(); res.StatusCode != http.StatusOK {
		t.Fatalf("the same simpleenroll once the store answers: HTTP %d", res.StatusCode)
	}
}
