package loadgen

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagsResolveTheProtocols(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args       []string
		acme, scep bool
		wantErr    string
	}{
		{nil, true, true, ""},
		{[]string{"--protocol", "acme"}, true, false, ""},
		{[]string{"--protocol", "scep"}, false, true, ""},
		{[]string{"--protocol", "est"}, false, false, `--protocol "est": want acme, scep or both`},
		{[]string{"--count", "0"}, false, false, "count must be at least 1"},
		{[]string{"--format", "none"}, false, false, `format "none"`},
	} {
		var f Flags
		fs := pflag.NewFlagSet("enroll", pflag.ContinueOnError)
		f.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		c, err := f.Resolve("root.crt")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.ACME != tc.acme || c.SCEP != tc.scep || c.CAFile != "root.crt" || c.URL != "https://127.0.0.1:8443" || c.Count != 100 {
			t.Errorf("%v: %+v: %v", tc.args, c, err)
		}
	}
}

func TestDevicesFlagsDefaultsPassValidate(t *testing.T) {
	t.Parallel()
	var c DevicesConfig
	fs := pflag.NewFlagSet("make-devices", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--out", t.TempDir(), "--n", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.N != 3 || c.Format != "tpm" || c.Profile != "default" || c.Posture != "compliant" {
		t.Errorf("%+v: %v", c, err)
	}
}
