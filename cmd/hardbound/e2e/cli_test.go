package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/store"
)

// TestCLIExitCodesAndErrorTexts: the CLI as a new user meets it. Every
// failure is one line on stderr and exit 1; the line says what was wrong
// where.
func TestCLIExitCodesAndErrorTexts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	offline := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"unknown subcommand", []string{"frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "hardbound ", ""},
		{"config check ok", []string{"config", "check", write("ok.yaml", "data_dir: "+dir+"\nradius:\n  clients:\n    - {name: sw1, cidr: 10.0.0.0/24, secret: a-long-shared-secret}\n")},
			0, "OK (data_dir " + dir + ", 1 NAS client(s)", ""},
		{"config check unknown key", []string{"config", "check", write("typo.yaml", "radius:\n  clients:\n    - {name: sw1, cidr: 10.0.0.0/24, secert: x}\n")},
			1, "", `config: radius.clients[0]: unknown key "secert"`},
		{"config check bad duration", []string{"config", "check", write("dur.yaml", "radius:\n  coa:\n    timeout: 30\n")},
			1, "", `config: radius.coa.timeout: bad duration "30"`},
		{"config check bad value", []string{"config", "check", write("cidr.yaml", "radius:\n  clients:\n    - {name: sw1, cidr: 10.0.0/33, secret: s}\n")},
			1, "", `radius.clients[0].cidr`},
		{"config check missing file", []string{"config", "check", filepath.Join(dir, "nope.yaml")}, 1, "", "no such file"},
		{"token bad scope", []string{"token", "create", "x", "--scope", "root", "--data-dir", filepath.Join(dir, "d")}, 1, "", `scope "root" is not admin, read or enroll`},
		{"token bad lifetime", []string{"token", "create", "x", "--scope", "read", "--expires", "30", "--data-dir", filepath.Join(dir, "d")}, 1, "", `lifetime "30"`},
		{"no token file", []string{"device", "list", "--token-file", filepath.Join(dir, "none")}, 1, "", "set --token-file or HARDBOUND_TOKEN_FILE"},
	}
	for _, tc := range offline {
		r := runCLI(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q", tc.name, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 && tc.name != "unknown subcommand" {
			t.Errorf("%s: the error is more than one line: %q", tc.name, r.stderr)
		}
	}

	in := startE2E(t, nil)
	for i := range 3 {
		in.bind(t, devbind.Request{DeviceID: "cli-" + string(rune('a'+i)), Posture: store.ComplianceCompliant})
	}
	online := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"404 names the device", []string{"device", "show", "ghost"}, 1, "", `server: not found: device "ghost" (HTTP 404)`},
		{"404 names the certificate", []string{"cert", "revoke", "abcdef"}, 1, "", `not found: certificate "abcdef"`},
		{"revocation reason by name", []string{"device", "revoke", "cli-c", "--reason", "cessationOfOperation"}, 0, "cli-c: revoke done", ""},
		{"unknown revocation reason", []string{"device", "revoke", "cli-b", "--reason", "bored"}, 1, "", `unknown revocation reason "bored"`},
		{"cert list says there is more", []string{"cert", "list", "--limit", "1"}, 0, "(1 shown; more: repeat with --after ", ""},
		{"device list says there is more", []string{"device", "list", "--limit", "2"}, 0, "(2 shown; more: repeat with --after cli-b", ""},
		{"a last page says nothing more", []string{"device", "list", "--limit", "10"}, 0, "cli-c", ""},
	}
	for _, tc := range online {
		r := in.cli(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q", tc.name, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
		if tc.name == "a last page says nothing more" && strings.Contains(r.stdout, "more:") {
			t.Errorf("%s: %s", tc.name, r.stdout)
		}
	}
}
