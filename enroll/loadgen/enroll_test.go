package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/attest/attesttest"
)

// The worker loop counts every enrollment once, keeps at most 5 error
// samples and computes latencies over the successes only.
func TestRunLoad(t *testing.T) {
	t.Parallel()
	errEnroll := errors.New("refused")
	for _, tt := range []struct {
		name            string
		count, workers  int
		fail            func(i int) bool
		issued, samples int
	}{
		{"ok/all-issued", 20, 3, func(int) bool { return false }, 20, 0},
		{"ok/more-workers-than-devices", 2, 1, func(int) bool { return false }, 2, 0},
		{"fail/every-third", 30, 4, func(i int) bool { return i%3 == 0 }, 20, 5},
		{"fail/all", 4, 2, func(int) bool { return true }, 0, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := enroller{name: "test", setup: func(context.Context, int) (func(context.Context, int) (time.Duration, error), error) {
				return func(_ context.Context, i int) (time.Duration, error) {
					if tt.fail(i) {
						return 0, errEnroll
					}
					return time.Duration(i+1) * time.Millisecond, nil
				}, nil
			}}
			rep, workers := setupLoad(context.Background(), l, tt.count, tt.workers)
			if len(workers) != min(tt.count, tt.workers) {
				t.Fatalf("%d workers", len(workers))
			}
			runLoad(context.Background(), &rep, workers, tt.count)
			if rep.Protocol != "test" || rep.Issued != tt.issued || rep.Failed != tt.count-tt.issued || len(rep.ErrorSamples) != tt.samples {
				t.Fatalf("report %+v", rep)
			}
			if tt.issued > 0 && (rep.P50 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 || rep.IssuedPerSec <= 0) {
				t.Errorf("latency %+v", rep)
			}
		})
	}
}

// A protocol whose setup fails reports all its enrollments failed, with
// the reason, and runs no worker.
func TestSetupLoadFailure(t *testing.T) {
	t.Parallel()
	errSetup := errors.New("no account")
	for name, l := range map[string]enroller{
		"prepare": {name: "p", prepare: func(context.Context) error { return errSetup }},
		"setup": {name: "s", setup: func(context.Context, int) (func(context.Context, int) (time.Duration, error), error) {
			return nil, errSetup
		}},
	} {
		rep, workers := setupLoad(context.Background(), l, 7, 2)
		if workers != nil || rep.Failed != 7 || !reflect.DeepEqual(rep.ErrorSamples, []string{errSetup.Error()}) {
			t.Errorf("%s: report %+v, %d workers", name, rep, len(workers))
		}
	}
}

// Against a server that speaks neither ACME nor SCEP, both protocols run
// and every enrollment is a failure in the report, not an error of Run.
func TestRunAgainstNoEnrollmentServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "root.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := attesttest.LoadOrCreate(filepath.Join(dir, "dev-attest")); err != nil {
		t.Fatal(err)
	}
	var minted, inventoried []string
	api := func(_ context.Context, method, path string, body, out any) error {
		switch {
		case method == "POST" && path == "/api/v1/inventory/import":
			for _, r := range body.(map[string]any)["devices"].([]inventoryRecord) {
				if r.Platform != "linux" {
					return fmt.Errorf("platform %q for tpm and scep", r.Platform)
				}
				inventoried = append(inventoried, r.Serial)
			}
			return json.Unmarshal([]byte(`{"added":2}`), out)
		case method != "POST" || path != "/api/v1/scep/challenges":
			return fmt.Errorf("unexpected %s %s", method, path)
		}
		minted = append(minted, body.(map[string]string)["device_id"])
		return json.Unmarshal([]byte(`{"challenge":"c"}`), out)
	}
	rep, err := Run(context.Background(), Config{URL: srv.URL + "/", CAFile: caFile, ACME: true, SCEP: true, Format: "tpm",
		DataDir: dir, Prefix: "p-", Count: 2, Concurrency: 1, API: api})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 2 || rep[0].Protocol != "acme" || rep[1].Protocol != "scep" || rep.Failed() != 4 {
		t.Fatalf("report %+v", rep)
	}
	if !strings.HasPrefix(rep[0].ErrorSamples[0], "acme: directory: ") || !strings.Contains(rep[1].ErrorSamples[0], ": scep: ") {
		t.Errorf("samples %q %q", rep[0].ErrorSamples, rep[1].ErrorSamples)
	}
	if !reflect.DeepEqual(minted, []string{"p-S000000", "p-S000001"}) {
		t.Errorf("challenges minted for %q", minted)
	}
	slices.Sort(inventoried)
	if !reflect.DeepEqual(inventoried, []string{"p-A000000", "p-A000001", "p-S000000", "p-S000001"}) {
		t.Errorf("inventory added %q, want the ACME and SCEP ids", inventoried)
	}
}

func TestRunRefusesConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	api := API(func(context.Context, string, string, any, any) error { return nil })
	good := Config{URL: "https://127.0.0.1:1", CAFile: filepath.Join(dir, "absent"), SCEP: true, Format: "tpm", Count: 1, Concurrency: 1, API: api}
	for name, mod := range map[string]func(*Config){
		"no-count":       func(c *Config) { c.Count = 0 },
		"no-concurrency": func(c *Config) { c.Concurrency = 0 },
		"no-protocol":    func(c *Config) { c.SCEP = false },
		"no-api":         func(c *Config) { c.API = nil },
		"bad-format":     func(c *Config) { c.Format = "none" },
		"no-root-ca":     func(*Config) {},
		"root-ca-no-pem": func(c *Config) {
			c.CAFile = filepath.Join(dir, "junk")
			if err := os.WriteFile(c.CAFile, []byte("junk"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"acme-no-attestation-authority": func(c *Config) {
			c.ACME, c.DataDir, c.CAFile = true, dir, writeTestRoot(t, dir)
		},
	} {
		cfg := good
		mod(&cfg)
		if rep, err := Run(context.Background(), cfg); err == nil || rep != nil {
			t.Errorf("%s: report %+v, err %v", name, rep, err)
		}
	}
}

func writeTestRoot(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "root.crt")
	if err := os.WriteFile(p, newTestIssuer(t).rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The text and JSON reports are hardbound bench enroll's output, which
// BENCHMARKS.md quotes: they must not change by accident.
func TestReportOutput(t *testing.T) {
	t.Parallel()
	rep := Report{
		{Protocol: "acme", Concurrency: 8, Issued: 99, Failed: 1, Elapsed: 2 * time.Second, IssuedPerSec: 49.5, P50: 12345 * time.Microsecond,
			P95: 23456 * time.Microsecond, P99: 34567 * time.Microsecond, Max: 1234567 * time.Microsecond, ErrorSamples: []string{"#7: acme: boom"},
			UntimedSetup: 250 * time.Millisecond},
		{Protocol: "scep", Concurrency: 8, Issued: 100, Elapsed: time.Second, IssuedPerSec: 100, P50: 800 * time.Microsecond,
			P95: 900 * time.Microsecond, P99: 950 * time.Microsecond, Max: 990 * time.Microsecond, UntimedSetup: 3 * time.Second},
	}
	wantText := `ACME enrollments, concurrency 8
  issued     99 in 2.00s: 49.5/s (untimed setup 0.2s)
  failed     1
  latency    p50 12.35ms  p95 23.46ms  p99 34.57ms  max 1.235s
  error: #7: acme: boom
SCEP enrollments, concurrency 8
  issued     100 in 1.00s: 100.0/s (untimed setup 3.0s)
  failed     0
  latency    p50 800µs  p95 900µs  p99 950µs  max 990µs
`
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != wantText {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), wantText)
	}
	j, err := json.Marshal(rep[:1])
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `[{"protocol":"acme","concurrency":8,"issued":99,"failed":1,"elapsed_ns":2000000000,"issued_per_second":49.5,` +
		`"p50_ns":12345000,"p95_ns":23456000,"p99_ns":34567000,"max_ns":1234567000,"error_samples":["#7: acme: boom"],"untimed_setup_ns":250000000}]`
	if string(j) != wantJSON {
		t.Fatalf("got %s\nwant %s", j, wantJSON)
	}
	if rep.Failed() != 1 {
		t.Errorf("failed %d", rep.Failed())
	}
}
