package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"hardbound/radius/eapclient"
)

// Every authentication must end accepted (MS-MPPE keys matching the
// supplicant's MSK) or rejected, and the report must be consistent; a
// failure is counted as such, never as a reject.
func TestRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := e.certDir(t, false, "ok-1", "ok-2")
	unbound := e.certDir(t, true, "unbound")
	base := Config{Server: e.auth, Secret: []byte(testSecret), Identity: "anonymous", NASIdentifier: "loadgen-test",
		Concurrency: 3, Count: 6, FramedMTU: 1400, Timeout: 2 * time.Second, Retries: 2}
	for _, tt := range []struct {
		name                       string
		mod                        func(*Config)
		accepts, rejects, failures int
	}{
		{"accept/tls1.3", func(c *Config) { c.Certs = Certs{Dir: ok, TLSVersion: "1.3"} }, 6, 0, 0},
		{"accept/tls1.2", func(c *Config) { c.Certs = Certs{Dir: ok, TLSVersion: "1.2"} }, 6, 0, 0},
		{"accept/server-name", func(c *Config) { c.Certs = Certs{Dir: ok, TLSVersion: "1.3", ServerName: "radius.test"} }, 6, 0, 0},
		{"accept/one-cert-wireless", func(c *Config) {
			c.Certs = Certs{CA: filepath.Join(ok, "ca.crt"), Cert: filepath.Join(ok, "ok-1.crt"), Key: filepath.Join(ok, "ok-1.key"), TLSVersion: "1.3"}
			c.PortType = "wireless"
		}, 6, 0, 0},
		{"reject/unbound-cert-is-a-reject-not-an-error", func(c *Config) { c.Certs = Certs{Dir: unbound, TLSVersion: "1.3"} }, 0, 6, 0},
		// The supplicant answers the certificate it refuses with an alert,
		// which the server rejects.
		{"reject/wrong-server-name", func(c *Config) { c.Certs = Certs{Dir: ok, TLSVersion: "1.3", ServerName: "other.test"} }, 0, 6, 0},
		{"fail/wrong-secret-times-out", func(c *Config) {
			c.Certs = Certs{Dir: ok, TLSVersion: "1.3"}
			c.Secret, c.Count, c.Concurrency, c.Timeout, c.Retries = []byte("wrong"), 2, 2, 100*time.Millisecond, 1
		}, 0, 0, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			tt.mod(&cfg)
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Auths != cfg.Count || rep.Accepts != tt.accepts || rep.Rejects != tt.rejects || rep.Failures() != tt.failures {
				t.Fatalf("report %+v", rep)
			}
			if rep.Server != e.auth || rep.TLS != cfg.TLSVersion || rep.Concurrency != cfg.Concurrency {
				t.Errorf("report header %+v", rep)
			}
			if (tt.failures > 0) != (len(rep.ErrorSamples) > 0) {
				t.Errorf("%d failures, error samples %q", tt.failures, rep.ErrorSamples)
			}
			if tt.failures == 0 && (rep.RoundTripsPer < 3 || rep.P99 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99) {
				t.Errorf("round trips %v, p50 %v p99 %v max %v", rep.RoundTripsPer, rep.P50, rep.P99, rep.Max)
			}
		})
	}
}

// With Resume each certificate's first authentication is full and every
// later one resumes, in fewer round trips at Framed-MTU 1400 for TLS 1.2;
// without it none resumes.
func TestRunResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := e.certDir(t, false, "r-1", "r-2")
	for _, tt := range []struct {
		version             string
		resume              bool
		resumed             int
		fullRTs, resumedRTs float64
	}{
		{"1.2", true, 4, 4, 3},
		{"1.3", true, 4, 4, 4},
		{"1.3", false, 0, 4, 0},
	} {
		t.Run(fmt.Sprintf("tls%s/resume=%v", tt.version, tt.resume), func(t *testing.T) {
			t.Parallel()
			rep, err := Run(context.Background(), Config{Server: e.auth, Secret: []byte(testSecret), Identity: "anonymous",
				Certs: Certs{Dir: ok, TLSVersion: tt.version}, Concurrency: 1, Count: 6, FramedMTU: 1400,
				Timeout: 2 * time.Second, Retries: 2, Resume: tt.resume})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Accepts != 6 || rep.Failures() != 0 || rep.Resumed != tt.resumed {
				t.Fatalf("accepts %d failures %d resumed %d, want 6, 0, %d: %v", rep.Accepts, rep.Failures(), rep.Resumed, tt.resumed, rep.ErrorSamples)
			}
			if rep.RoundTripsFull != tt.fullRTs || rep.RoundTripsResumed != tt.resumedRTs {
				t.Errorf("round trips full %v resumed %v, want %v and %v", rep.RoundTripsFull, rep.RoundTripsResumed, tt.fullRTs, tt.resumedRTs)
			}
			var out bytes.Buffer
			if err := rep.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			if tt.resume != strings.Contains(out.String(), "resumed          4 (66.7%)") {
				t.Errorf("report text:\n%s", out.String())
			}
		})
	}
}

// A run by duration starts conversations until the time is up and keeps a
// progress line that it clears at the end.
func TestRunForDuration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{Server: e.auth, Secret: []byte(testSecret), Certs: Certs{Dir: e.certDir(t, false, "d1"), TLSVersion: "1.3"},
		Concurrency: 2, Duration: 1200 * time.Millisecond, Timeout: 2 * time.Second, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Auths == 0 || rep.Accepts != rep.Auths || rep.Elapsed < 1200*time.Millisecond {
		t.Fatalf("report %+v", rep)
	}
	p := progress.String()
	if !strings.Contains(p, "s/1s) auths, ") || !strings.HasSuffix(p, "\r\033[K") {
		t.Fatalf("progress %q", p)
	}
}

func TestRunRefusesConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir, empty := e.certDir(t, false, "d1"), t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	good := Config{Server: e.auth, Secret: []byte(testSecret), Certs: Certs{Dir: dir, TLSVersion: "1.3"}, Concurrency: 1, Count: 1}
	for name, mod := range map[string]func(*Config){
		"no-secret":         func(c *Config) { c.Secret = nil },
		"bad-tls":           func(c *Config) { c.TLSVersion = "1.1" },
		"no-ca":             func(c *Config) { c.Certs = Certs{Cert: "c", Key: "k", TLSVersion: "1.3"} },
		"ca-not-pem":        func(c *Config) { c.CA = filepath.Join(dir, "d1.key") },
		"no-certs":          func(c *Config) { c.Certs = Certs{CA: ca, TLSVersion: "1.3"} },
		"empty-cert-dir":    func(c *Config) { c.Certs = Certs{CA: ca, Dir: empty, TLSVersion: "1.3"} },
		"cert-and-cert-dir": func(c *Config) { c.Cert, c.Key = "c", "k" },
		"unreadable-cert":   func(c *Config) { c.Certs = Certs{CA: ca, Cert: "c", Key: "k", TLSVersion: "1.3"} },
		"no-concurrency":    func(c *Config) { c.Concurrency = 0 },
		"negative-count":    func(c *Config) { c.Count = -1 },
		"count-and-time":    func(c *Config) { c.Duration = time.Second },
		"bad-port-type":     func(c *Config) { c.PortType = "dsl" },
		"bad-server":        func(c *Config) { c.Server = "127.0.0.1:notaport" },
	} {
		cfg := good
		mod(&cfg)
		if rep, err := Run(context.Background(), cfg); err == nil || !reflect.ValueOf(rep).IsZero() {
			t.Errorf("%s: report %+v, err %v", name, rep, err)
		}
	}
	if rep, err := Run(context.Background(), good); err != nil || rep.Accepts != 1 {
		t.Errorf("good config: report %+v, err %v", rep, err)
	}
}

// The text and JSON reports are hardbound bench eaptls's output, which
// BENCHMARKS.md quotes: they must not change by accident.
func TestReportWriteText(t *testing.T) {
	t.Parallel()
	rep := Report{Server: "127.0.0.1:1812", TLS: "1.3", Concurrency: 8, Certs: 2, ErrorSamples: []string{"d1: timeout"},
		Summary: eapclient.Summary{Auths: 10, Accepts: 6, Rejects: 3, Timeouts: 1, RoundTrips: 40, Retransmits: 2, Discarded: 1,
			RejectReasons: map[string]int{"unbound": 2, "noncompliant": 1},
			Elapsed:       2500 * time.Millisecond, AuthsPerSecond: 4, RoundTripsPer: 4,
			P50: 1234567 * time.Nanosecond, P95: 2345678 * time.Nanosecond, P99: 456789 * time.Nanosecond, Max: 1500400 * time.Microsecond}}
	want := `EAP-TLS against 127.0.0.1:1812, TLS 1.3, concurrency 8, 2 certificate(s)
  authentications  10 in 2.50s: 4.0/s
  accepts          6
  rejects          3
         1  noncompliant
         2  unbound
  timeouts         1
  errors           0
  key mismatches   0
  latency          p50 1.23ms  p95 2.35ms  p99 457µs  max 1.5s
  round trips      4.00 per authentication
  retransmits      2 (discarded replies 1)
  error: d1: timeout
`
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if rep.Failures() != 1 {
		t.Errorf("failures %d", rep.Failures())
	}
	rep.RejectReasons = map[string]int{"unbound": 2}
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"server":"127.0.0.1:1812","tls":"1.3","concurrency":8,"certificates":2,"resume":false,"auths":10,"accepts":6,"rejects":3,` +
		`"timeouts":1,"errors":0,"key_mismatches":0,"round_trips":40,"retransmits":2,"discarded_replies":1,"reject_reasons":{"unbound":2},` +
		`"resumed":0,"resumed_round_trips":0,` +
		`"elapsed_ns":2500000000,"auths_per_second":4,"round_trips_per_auth":4,` +
		`"resumed_share":0,"round_trips_per_resumed":0,"round_trips_per_full":0,"p50_ns":1234567,"p95_ns":2345678,"p99_ns":456789,` +
		`"max_ns":1500400000,"error_samples":["d1: timeout"]}`
	if string(j) != wantJSON {
		t.Fatalf("got %s\nwant %s", j, wantJSON)
	}
}
