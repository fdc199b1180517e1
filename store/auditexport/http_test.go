package auditexport

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
)

// collector is a local HTTPS collector of JSON lines: it checks the bearer
// token (when set), can refuse batches, and keeps what it accepted.
type collector struct {
	mu      sync.Mutex
	token   string
	refuse  int // answer the next refuse batches with 503
	posts   int
	bad     int // requests refused for a wrong token or content type
	count   map[uint64]int
	cps     []store.AuditCheckpoint
	lastErr error
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+c.token)) != 1 {
		c.bad++
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-ndjson" {
		c.bad++
		http.Error(w, "want POST of application/x-ndjson", http.StatusBadRequest)
		return
	}
	c.posts++
	if c.refuse > 0 {
		c.refuse--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	err := ReadRecords(r.Body, func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error {
		if ev != nil {
			c.count[ev.Seq]++
		} else {
			c.cps = append(c.cps, *cp)
		}
		return nil
	})
	if err != nil {
		c.lastErr = err
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *collector) snapshot() (distinct int, posts int, bad int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count), c.posts, c.bad
}

// TestHTTPSink: JSON lines POSTed to an HTTPS collector with a bearer
// token or with mutual TLS; a collector that refuses batches for a while
// gets them again, and a wrong token never advances the cursor.
func TestHTTPSink(t *testing.T) {
	pki := rsyslogtest.NewPKI(t, t.TempDir())
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongFile, []byte("not-it"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		token      string // the collector's
		tokenFile  string // the sink's
		mutual     bool
		refuse     int
		wantCaught bool
	}{
		{name: "bearer_token", token: "s3cret-token", tokenFile: tokenFile, wantCaught: true},
		{name: "collector_refuses_then_accepts", token: "s3cret-token", tokenFile: tokenFile, refuse: 5, wantCaught: true},
		{name: "mutual_tls", mutual: true, wantCaught: true},
		{name: "wrong_token", token: "s3cret-token", tokenFile: wrongFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &collector{token: tt.token, refuse: tt.refuse, count: map[uint64]int{}}
			srv := httptest.NewUnstartedServer(col)
			cert, err := tls.LoadX509KeyPair(pki.CertFile, pki.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			if tt.mutual {
				pool := x509.NewCertPool()
				b, _ := os.ReadFile(pki.CAFile)
				pool.AppendCertsFromPEM(b)
				srv.TLS.ClientCAs, srv.TLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
			}
			srv.StartTLS()
			defer srv.Close()

			st := badgertest.Memory(t)
			sc := SinkConfig{Name: "collector", Type: "http", URL: srv.URL + "/ingest", CAFile: pki.CAFile, TokenFile: tt.tokenFile,
				BatchSize: 40, Timeout: config.Duration(5 * time.Second)}
			if tt.mutual {
				sc.CertFile, sc.KeyFile = pki.CertFile, pki.KeyFile
			}
			m := newLagMetrics()
			exp, err := New(st, FileConfig{Sinks: []SinkConfig{sc}}, Options{Metrics: m, Poll: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			signer := testSigner(t)
			cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
			if err := appendEvents(t.Context(), st, 300); err != nil {
				t.Fatal(err)
			}
			if _, err := cpr.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { exp.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()

			if !tt.wantCaught {
				waitFor(t, 10*time.Second, func() bool { _, _, bad := col.snapshot(); return bad >= 2 },
					func() string { return "the sink did not retry" })
				cancel()
				wg.Wait()
				if _, err := st.GetAuditCursor(t.Context(), "collector"); err == nil {
					t.Fatal("a refused sink saved a cursor")
				}
				if lag, _, errs := m.get("collector"); lag != 300 || errs == 0 {
					t.Fatalf("refused sink: lag %d, %d errors", lag, errs)
				}
				return
			}
			waitFor(t, 30*time.Second, func() bool { lag, _, _ := m.get("collector"); d, _, _ := col.snapshot(); return lag == 0 && d == 300 },
				func() string {
					d, p, b := col.snapshot()
					return "collector got " + itoa(d) + " events in " + itoa(p) + " posts, " + itoa(b) + " refused"
				})
			cancel()
			wg.Wait()
			c, err := st.GetAuditCursor(t.Context(), "collector")
			if err != nil || c.Seq != 300 || c.CheckpointSeq != 300 {
				t.Fatalf("cursor %+v, %v", c, err)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			if col.lastErr != nil || len(col.cps) != 1 || col.cps[0].Seq != 300 {
				t.Fatalf("collector: err %v, checkpoints %+v", col.lastErr, col.cps)
			}
			if err := keysOf(t, signer).Verify(&col.cps[0]); err != nil {
				t.Fatal(err)
			}
			for s, n := range col.count {
				if n != 1 {
					t.Errorf("seq %d arrived %d times over an acknowledged transport", s, n)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
