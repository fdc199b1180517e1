package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	enrollload "hardbound/enroll/loadgen"
	radiusload "hardbound/radius/loadgen"
	"hardbound/store"
)

func TestBenchEAPTLSAgainstDevServer(t *testing.T) {
	t.Parallel()
	in := startTest(t, testConfig(t))
	okDir, unboundDir := t.TempDir(), t.TempDir()
	for _, id := range []string{"bench-ok-1", "bench-ok-2"} {
		writeDevice(t, okDir, id, in, in.bind(t, devbind.Request{DeviceID: id, Posture: store.ComplianceCompliant}))
	}
	writeDevice(t, unboundDir, "bench-unbound", in, in.bind(t, devbind.Request{DeviceID: "bench-unbound", NoBinding: true}))
	secretFile := filepath.Join(in.cfg.DataDir, "radius.secret")

	runBenchCases(t, in.Addr("radius-auth"), []string{"--secret-file", secretFile}, []benchCase{
		{"accept/tls1.3", okDir, "1.3", 12, 0},
		{"accept/tls1.2", okDir, "1.2", 12, 0},
		{"reject/unbound-cert-is-a-reject-not-an-error", unboundDir, "1.3", 0, 12},
	})
}

// benchCase is one `bench eaptls` run and the outcome it must report.
type benchCase struct {
	name             string
	dir, tls         string
	accepts, rejects int
}

// runBenchCases runs each case against server in parallel subtests: every
// authentication must end accepted (MPPE keys matching the supplicant's
// MSK) or rejected, never as an error, timeout or key mismatch, and the
// report must be consistent.
func runBenchCases(t *testing.T, server string, secret []string, cases []benchCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := tt.accepts + tt.rejects
			var out, errb bytes.Buffer
			args := append([]string{"bench", "eaptls", "--json", "--server", server, "--cert-dir", tt.dir,
				"--tls", tt.tls, "--count", fmt.Sprint(n), "--concurrency", "3"}, secret...)
			if code := run(context.Background(), args, func(string) string { return "" }, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
			}
			var rep radiusload.Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if rep.Auths != n || rep.Accepts != tt.accepts || rep.Rejects != tt.rejects || rep.Errors+rep.Timeouts+rep.KeyMismatches != 0 {
				t.Fatalf("report %+v", rep)
			}
			if rep.RoundTripsPer < 3 || rep.P99 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 {
				t.Fatalf("round trips %v, p50 %v p99 %v max %v", rep.RoundTripsPer, rep.P50, rep.P99, rep.Max)
			}
		})
	}
}

func TestBenchEAPTLSFailsOnWrongSecret(t *testing.T) {
	t.Parallel()
	in := startTest(t, testConfig(t))
	dir := t.TempDir()
	writeDevice(t, dir, "d1", in, in.bind(t, devbind.Request{DeviceID: "d1", Posture: store.ComplianceCompliant}))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"bench", "eaptls", "--server", in.Addr("radius-auth"), "--secret", "wrong",
		"--cert-dir", dir, "--count", "2", "--concurrency", "2", "--timeout", "100ms", "--retries", "1"},
		func(string) string { return "" }, nil, &out, &errb)
	if code == 0 || !strings.Contains(out.String(), "timeouts         2") || !strings.Contains(errb.String(), "2 of 2 authentications failed") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

// Bad flags end with exit status 1 and a message on stderr; what each
// flag means is radius/loadgen's (Flags, Config; tested there).
func TestBenchEAPTLSRejectsBadFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"no-secret":           {"--ca", "x", "--cert-dir", dir},
		"both-secrets":        {"--secret", "a", "--secret-file", "b"},
		"missing-secret-file": {"--secret-file", filepath.Join(dir, "absent")},
		"bad-tls":             {"--secret", "a", "--tls", "1.1"},
		"count-and-time":      {"--secret", "a", "--count", "1", "--duration", "1s"},
		"empty-cert-dir":      {"--secret", "a", "--cert-dir", dir},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"bench", "eaptls"}, args...), func(string) string { return "" }, nil, &out, &errb); code != 1 || errb.Len() == 0 {
			t.Errorf("%s: exit %d, stderr %q", name, code, errb.String())
		}
	}
}

func TestBenchMakeDevicesThenEAPTLSAndEnroll(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// SCEP's keys are unattested: its half enrolls under a profile that
	// admits them, as SCEP issues only what authentication would admit.
	cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "migration", Formats: []string{"apple", "tpm", "android-key", "none"}}}
	in := startTest(t, cfg)
	admin := []string{"--server", "https://" + in.Addr("admin"), "--token-file", in.adminTokenPath,
		"--ca-file", filepath.Join(in.cfg.DataDir, "ca", "root.crt")}
	noenv := func(string) string { return "" }
	dir := filepath.Join(t.TempDir(), "devs")
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"bench", "make-devices", "--n", "5", "--out", dir, "--concurrency", "2"}, admin...),
		noenv, nil, &out, &errb); code != 0 {
		t.Fatalf("make-devices: exit %d: %s %s", code, out.String(), errb.String())
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 11 { // 5 x (crt, key) + ca.crt
		t.Fatalf("%d files in %s: %v", len(ents), dir, err)
	}
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(de.Name(), ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", de.Name(), fi.Mode().Perm())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"bench", "eaptls", "--json", "--server", in.Addr("radius-auth"),
		"--secret-file", filepath.Join(in.cfg.DataDir, "radius.secret"), "--cert-dir", dir, "--count", "10", "--concurrency", "2"},
		noenv, nil, &out, &errb); code != 0 {
		t.Fatalf("bench eaptls: exit %d: %s %s", code, out.String(), errb.String())
	}
	var rep radiusload.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Accepts != 10 || rep.Certs != 5 {
		t.Fatalf("%v: %+v", err, rep)
	}

	out.Reset()
	errb.Reset()
	if code := run(context.Background(), append([]string{"bench", "enroll", "--json", "--protocol", "both", "--count", "3", "--concurrency", "2",
		"--enroll-url", "https://" + in.Addr("enroll-https"), "--data-dir", in.cfg.DataDir, "--profile", "migration"}, admin...), noenv, nil, &out, &errb); code != 0 {
		t.Fatalf("bench enroll: exit %d: %s %s", code, out.String(), errb.String())
	}
	var reps enrollload.Report
	if err := json.Unmarshal(out.Bytes(), &reps); err != nil || len(reps) != 2 {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, r := range reps {
		if r.Issued != 3 || r.Failed != 0 || r.P50 <= 0 || r.Max < r.P50 {
			t.Errorf("%s: %+v", r.Protocol, r)
		}
	}
}

// tls-baseline is a server with --listen and a client with --connect,
// never both nor neither; what each does is tested in radius/loadgen.
func TestBenchTLSBaselineNeedsOneRole(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"neither": {},
		"both":    {"--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"bench", "tls-baseline"}, args...), func(string) string { return "" }, nil, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "use --listen ADDR (server) or --connect ADDR (client)") {
			t.Errorf("%s: exit %d, stderr %q", name, code, errb.String())
		}
	}
}
