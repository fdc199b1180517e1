package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
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
	var srv BaselineServerConfig
	var c BaselineConfig
	fs := pflag.NewFlagSet("tls-baseline", pflag.ContinueOnError)
	srv.RegisterFlags(fs)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0", "--client-ca", "ca.crt", "--connect", "127.0.0.1:1", "--tls", "1.2"}); err != nil {
		t.Fatal(err)
	}
	if srv.Listen != "127.0.0.1:0" || srv.ClientCA != "ca.crt" || c.Connect != "127.0.0.1:1" || c.TLSVersion != "1.2" || c.Count != 1000 || c.Concurrency != 8 {
		t.Errorf("server %+v client %+v", srv, c)
	}
}
