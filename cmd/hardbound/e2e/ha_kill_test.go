package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/postgres/pgtest"
)

// authOnce is one EAP-TLS conversation that reports failure instead of
// ending the test, for a load generator that fails over.
func (in *instance) authOnce(c *eapclient.Client, cert tls.Certificate, d time.Duration) (eapclient.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	roots := x509.NewCertPool()
	roots.AddCert(in.ca.Root())
	peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{
		TLS: &tls.Config{
			RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		},
		Identity: "anonymous@e2e.test",
	})
	defer peer.Close()
	return c.Authenticate(ctx, peer)
}

// testKillOneOfTwo: two nodes on one database under authentication load
// from a generator that asks node A first and fails over to node B, as a
// NAS with two servers does. Node A is killed with SIGKILL in the middle:
// every authentication still ends in an Access-Accept (from B), A comes
// back on the same data dir and answers again, and `audit verify` passes
// on both over the chain both wrote, including what A wrote just before
// it died.
func testKillOneOfTwo(t *testing.T, cl *pgtest.Cluster) {
	nodes := startNodes(t, cl, 2)
	a, b := nodes[0], nodes[1]
	var devs []*devbind.Device
	for i := range 4 {
		devs = append(devs, a.bind(t, devbind.Request{DeviceID: fmt.Sprintf("kill-%d", i), Posture: store.ComplianceCompliant}))
	}
	fast := func(c *eapclient.Config) { c.Timeout, c.Retries = 500*time.Millisecond, 1 }
	var (
		mu                sync.Mutex
		nasA              = [2]*eapclient.Client{a.nasClient(t, "", fast), a.nasClient(t, "", fast)} // one per worker
		nodeA             = a
		byA, byB, refused int
		failed            []string
	)
	nasB := [2]*eapclient.Client{b.nasClient(t, "", nil), b.nasClient(t, "", nil)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cert := devs[(w+2*i)%len(devs)].Certificate
				mu.Lock()
				in, c := nodeA, nasA[w]
				mu.Unlock()
				if in != nil {
					if res, err := in.authOnce(c, cert, 2*time.Second); err == nil {
						mu.Lock()
						if res.Accepted {
							byA++
						} else {
							refused++
						}
						mu.Unlock()
						continue
					}
				}
				res, err := b.authOnce(nasB[w], cert, 20*time.Second)
				mu.Lock()
				switch {
				case err != nil:
					failed = append(failed, err.Error())
				case res.Accepted:
					byB++
				default:
					refused++
				}
				mu.Unlock()
			}
		})
	}
	counts := func() (int, int) { mu.Lock(); defer mu.Unlock(); return byA, byB }
	eventually(t, 30*time.Second, "node A to answer under load", func() bool { n, _ := counts(); return n >= 10 })

	mu.Lock()
	nodeA = nil // the generator keeps trying A through the dead client first
	mu.Unlock()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	mu.Lock()
	nodeA = a // its address stays in the NAS's list: requests to it time out
	mu.Unlock()
	_, bBefore := counts()
	eventually(t, 60*time.Second, "node B to answer for the killed node", func() bool { _, n := counts(); return n >= bBefore+10 })

	restarted := startTest(t, a.cfg)
	nasA2 := [2]*eapclient.Client{restarted.nasClient(t, "", fast), restarted.nasClient(t, "", fast)}
	aBefore, _ := counts()
	mu.Lock()
	nodeA, nasA = restarted, nasA2
	mu.Unlock()
	eventually(t, 60*time.Second, "the restarted node A to answer again", func() bool { n, _ := counts(); return n >= aBefore+10 })
	close(stop)
	wg.Wait()

	mu.Lock()
	t.Logf("kill -9 of node A under load: %d accepts by A (before and after its restart), %d by B, %d rejects, %d conversations failed on both", byA, byB, refused, len(failed))
	if refused != 0 || len(failed) != 0 {
		t.Errorf("%d rejects and %d conversations unanswered by both nodes (first: %v)", refused, len(failed), failed[:min(1, len(failed))])
	}
	mu.Unlock()
	for _, in := range []*instance{b, restarted} {
		if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
			t.Fatalf("audit verify after kill -9 and restart: %s", out)
		}
	}
}
