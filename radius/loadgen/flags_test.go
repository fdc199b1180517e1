package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"hardbound/radius/eapclient"
)

// TestFlagsResolve: the flags' defaults, and the one secret a run gets
// from --secret, --secret-file or --radsec.
func TestFlagsResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "radius.secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		secret  string
		radsec  bool
		wantErr string
	}{
		{"secret", []string{"--secret", "s3"}, "s3", false, ""},
		{"secret file, trimmed", []string{"--secret-file", file}, "from-file", false, ""},
		{"radsec's fixed secret", []string{"--radsec", "--nas-cert", "c", "--nas-key", "k", "--nas-ca", "ca"}, "radsec", true, ""},
		{"none", nil, "", false, "a RADIUS secret is required"},
		{"both", []string{"--secret", "a", "--secret-file", file}, "", false, "not both"},
		{"missing file", []string{"--secret-file", filepath.Join(dir, "absent")}, "", false, "secret: open"},
	} {
		var f Flags
		fs := pflag.NewFlagSet("eaptls", pflag.ContinueOnError)
		f.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		c, err := f.Resolve()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(c.Secret) != tc.secret || (c.RadSec != nil) != tc.radsec {
			t.Errorf("%s: secret %q radsec %v: %v", tc.name, c.Secret, c.RadSec, err)
		}
		if tc.radsec && (c.RadSec.Cert != "c" || c.RadSec.Key != "k" || c.RadSec.CA != "ca") {
			t.Errorf("%s: %+v", tc.name, c.RadSec)
		}
		if c.Server != "127.0.0.1:1812" || c.TLSVersion != "1.3" || c.Concurrency != 8 || c.Timeout != 2*time.Second || c.Retries != 2 || c.FramedMTU != 1400 {
			t.Errorf("%s: defaults %+v", tc.name, c)
		}
	}
}

func TestBaselineFlagsSetBothRoles(t *testing.T) {
	t.Parallel()
	var f BaselineFlags
	srv, c := &f.Server, &f.Client
	fs := pflag.NewFlagSet("tls-baseline", pflag.ContinueOnError)
	f.RegisterFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0", "--client-ca", "ca.crt", "--connect", "127.0.0.1:1", "--tls", "1.2"}); err != nil {
		t.Fatal(err)
	}
	if srv.Listen != "127.0.0.1:0" || srv.ClientCA != "ca.crt" || c.Connect != "127.0.0.1:1" || c.TLSVersion != "1.2" || c.Count != 1000 || c.Concurrency != 8 {
		t.Errorf("server %+v client %+v", srv, c)
	}
}

// TestBaselineFlagsRun: a run takes exactly one role; the server names its
// address and pid and serves until its context ends, the client reports,
// and a failed handshake is the run's error.
func TestBaselineFlagsRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clientCA, foreign := baselineCerts(t, e)
	parse := func(args ...string) *BaselineFlags {
		t.Helper()
		var f BaselineFlags
		fs := pflag.NewFlagSet("tls-baseline", pflag.ContinueOnError)
		f.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	for _, args := range [][]string{nil, {"--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1"}} {
		if err := parse(args...).Run(context.Background(), io.Discard); err == nil || err.Error() != "use --listen ADDR (server) or --connect ADDR (client)" {
			t.Errorf("%q: %v", args, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- parse("--listen", "127.0.0.1:0", "--cert", e.serverCert, "--key", e.serverKey, "--client-ca", clientCA).Run(ctx, pw)
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr, pid, ok := strings.Cut(strings.TrimPrefix(line, "tls-baseline listening on "), ", pid ")
	if !ok || pid != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Fatalf("server line %q", line)
	}

	var out strings.Builder
	devices := e.certDir(t, false, "d1")
	if err := parse("--connect", addr, "--cert-dir", devices, "--count", "3", "--concurrency", "2").Run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "3 handshakes (TLS 1.3) in ") || !strings.HasSuffix(out.String(), ", 0 failed\n") {
		t.Errorf("report %q", out.String())
	}
	out.Reset()
	err = parse("--connect", addr, "--cert-dir", foreign, "--count", "2").Run(context.Background(), &out)
	if err == nil || !strings.HasPrefix(err.Error(), "first failure: ") || !strings.HasSuffix(out.String(), ", 2 failed\n") {
		t.Errorf("a foreign client: %v, report %q", err, out.String())
	}

	stopServing(t, cancel, served)
}

// TestReportErr: timeouts, errors and mismatched keys fail a run; rejects
// are results.
func TestReportErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rep  eapclient.Summary
		want string
	}{
		{"accepts and rejects", eapclient.Summary{Auths: 10, Accepts: 6, Rejects: 4}, ""},
		{"a timeout and a key mismatch", eapclient.Summary{Auths: 10, Accepts: 8, Timeouts: 1, KeyMismatches: 1}, "2 of 10 authentications failed"},
		{"errors", eapclient.Summary{Auths: 3, Errors: 3}, "3 of 3 authentications failed"},
	} {
		err := Report{Summary: tc.rep}.Err()
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
