package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/eaptls"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/postgres"
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

// answer is one Access-Accept or Access-Reject the load generator got.
type answer struct {
	station    string // this conversation's Calling-Station-Id
	node       string // "A", "B" or "A2" (A after its restart)
	accepted   bool
	beforeKill bool
}

// authStation is one EAP-TLS conversation with in from a NAS whose
// Calling-Station-Id is station: the radius.auth audit event names it
// (radius/claim.go), so the answer can be matched to its event.
func (in *instance) authStation(station string, cert tls.Certificate, timeout time.Duration, retries int, d time.Duration) (eapclient.Result, error) {
	c, err := eapclient.New(eapclient.Config{
		Server: in.Addr("radius-auth"), AcctServer: in.Addr("radius-acct"), Secret: []byte(in.radiusSecret),
		NASIdentifier: "e2e-nas", Timeout: timeout, Retries: retries, CallingStationID: station,
	})
	if err != nil {
		return eapclient.Result{}, err
	}
	defer c.Close()
	return in.authOnce(c, cert, d)
}

// issued is a certificate a node's dev enrollment endpoint answered with.
type issued struct {
	device, serial string
	leaf           *x509.Certificate
}

// devEnroll is bind without ending the test: one issuance through in's
// --dev endpoint, an error when the node does not answer.
func (in *instance) devEnroll(id string) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return issued{}, err
	}
	var resp admin.DevEnrollResponse
	if err := in.api(http.MethodPost, "/api/v1/dev/devices", admin.DevEnrollRequest{DeviceID: id, CSR: base64.StdEncoding.EncodeToString(csr),
		Posture: string(store.ComplianceCompliant)}, &resp); err != nil {
		return issued{}, err
	}
	blk, _ := pem.Decode([]byte(resp.Certificate))
	if blk == nil {
		return issued{}, fmt.Errorf("dev enroll %s: no certificate", id)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return issued{}, err
	}
	return issued{device: resp.DeviceID, serial: resp.Serial, leaf: leaf}, nil
}

// testKillOneOfTwo: two nodes on one database under authentication load
// from a generator that asks node A first and fails over to node B, as a
// NAS with two servers does, while certificates are issued through node
// A. Node A is killed with SIGKILL in the middle: every authentication
// still ends in an Access-Accept (from B), A comes back on the same data
// dir and answers again, and then nothing the clients were told is
// missing: every certificate A returned is bound in the store with its
// issuance event, every answer any node gave has its radius.auth event
// (matched by the conversation's own Calling-Station-Id), and `audit
// verify` passes on both over the chain both wrote.
//
// The nodes run with radius.audit_sync. By default an answer leaves
// before its audit group is written (radius/config.go, AuditSync), and a
// kill -9 loses the open group and the one being written
// (store/auditgroup). Without audit_sync this test found 1 to 4 of node
// A's 51-78 answers before the kill without their event. With
// audit_sync it found none.
func testKillOneOfTwo(t *testing.T, cl *pgtest.Cluster) {
	nodes := startNodesWith(t, cl, 2, func(cfg *node.Config) { cfg.RADIUS.AuditSync = true })
	a, b := nodes[0], nodes[1]
	var devs []*devbind.Device
	for i := range 4 {
		devs = append(devs, a.bind(t, devbind.Request{DeviceID: fmt.Sprintf("kill-%d", i), Posture: store.ComplianceCompliant}))
	}
	var (
		mu      sync.Mutex
		nodeA   = a
		nameA   = "A"
		killed  bool
		answers []answer
		failed  []string
		certs   []issued // issued through A and returned to the client
	)
	record := func(ans answer) {
		mu.Lock()
		defer mu.Unlock()
		ans.beforeKill = !killed
		answers = append(answers, ans)
	}
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
				station := func(try int) string {
					return fmt.Sprintf("02-%02X-%02X-%02X-%02X-%02X", w, i>>16&0xff, i>>8&0xff, i&0xff, try)
				}
				cert := devs[(w+2*i)%len(devs)].Certificate
				mu.Lock()
				in, name := nodeA, nameA
				mu.Unlock()
				if in != nil {
					if res, err := in.authStation(station(0), cert, 500*time.Millisecond, 1, 2*time.Second); err == nil {
						record(answer{station: station(0), node: name, accepted: res.Accepted})
						continue
					}
				}
				res, err := b.authStation(station(1), cert, 3*time.Second, 2, 20*time.Second)
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
					continue
				}
				record(answer{station: station(1), node: "B", accepted: res.Accepted})
			}
		})
	}
	// Issuances through A until it dies: each one A answered must survive.
	enrollDone := make(chan struct{})
	go func() {
		defer close(enrollDone)
		for i := 0; ; i++ {
			c, err := a.devEnroll(fmt.Sprintf("kill-enroll-%d", i))
			if err != nil {
				return // A is gone (or refused: checked below by count)
			}
			mu.Lock()
			certs = append(certs, c)
			mu.Unlock()
		}
	}()
	counts := func(node string) int {
		mu.Lock()
		defer mu.Unlock()
		return countNode(answers, node)
	}
	eventually(t, 30*time.Second, "node A to answer under load", func() bool { return counts("A") >= 50 })

	mu.Lock()
	nodeA = nil // the generator keeps trying A through the dead client first
	mu.Unlock()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	mu.Lock()
	killed = true
	nodeA = a // its address stays in the NAS's list: requests to it time out
	mu.Unlock()
	<-enrollDone
	bBefore := counts("B")
	eventually(t, 60*time.Second, "node B to answer for the killed node", func() bool { return counts("B") >= bBefore+10 })

	restarted := startTest(t, a.cfg)
	mu.Lock()
	nodeA, nameA = restarted, "A2"
	mu.Unlock()
	eventually(t, 60*time.Second, "the restarted node A to answer again", func() bool { return counts("A2") >= 10 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var rejects, beforeKill int
	for _, ans := range answers {
		if !ans.accepted {
			rejects++
		}
		if ans.beforeKill {
			beforeKill++
		}
	}
	t.Logf("kill -9 of node A under load: %d answers (%d before the kill; accepts: A %d, B %d, restarted A %d), %d rejects, %d conversations failed on both, %d certificates issued through A before the kill",
		len(answers), beforeKill, countNode(answers, "A"), countNode(answers, "B"), countNode(answers, "A2"), rejects, len(failed), len(certs))
	if rejects != 0 || len(failed) != 0 {
		t.Errorf("%d rejects and %d conversations unanswered by both nodes (first: %v)", rejects, len(failed), failed[:min(1, len(failed))])
	}
	if len(certs) == 0 {
		t.Error("no certificate was issued through node A before the kill")
	}

	// Nothing the clients were told is missing.
	ctx := e2eContext(t)
	for _, c := range certs {
		rec, err := b.st.GetCert(ctx, c.leaf)
		if err != nil || rec.DeviceID != c.device || rec.Serial != c.serial {
			t.Errorf("certificate %s of %s issued by node A before the kill: binding %+v, %v", c.serial, c.device, rec, err)
		}
	}
	dsn, err := os.ReadFile(a.cfg.Store.Postgres.DSNFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, strings.TrimSpace(string(dsn)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events := map[string]string{} // calling station -> result of its radius.auth event
	enrolled := map[string]bool{} // device ids with an enroll.dev event
	if err := st.ScanAudit(ctx, 1, func(ev *store.AuditEvent) error {
		switch ev.Action {
		case "radius.auth":
			for f := range strings.FieldsSeq(ev.Reason) {
				if v, ok := strings.CutPrefix(f, "calling_station="); ok {
					events[v] = ev.Result
				}
			}
		case "enroll.dev":
			enrolled[ev.Subject] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	missing, missingBy := 0, map[string]int{}
	for _, ans := range answers {
		want := "reject"
		if ans.accepted {
			want = "ok"
		}
		if got, ok := events[ans.station]; !ok || got != want {
			missing++
			missingBy[ans.node]++
			if missing <= 5 {
				t.Errorf("answer from node %s to station %s (before the kill: %v): audit event %q, want %q", ans.node, ans.station, ans.beforeKill, got, want)
			}
		}
	}
	for _, c := range certs {
		if !enrolled[c.device] {
			t.Errorf("no enroll.dev audit event for %s, issued by node A before the kill", c.device)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d answers have no audit event (by node: %v)", missing, len(answers), missingBy)
	}
	for _, in := range []*instance{b, restarted} {
		if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
			t.Fatalf("audit verify after kill -9 and restart: %s", out)
		}
	}
}

// countNode counts node's accepts.
func countNode(answers []answer, node string) int {
	n := 0
	for _, ans := range answers {
		if ans.node == node && ans.accepted {
			n++
		}
	}
	return n
}
