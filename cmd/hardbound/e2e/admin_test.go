package e2e

import (
	"context"
	"crypto/x509"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	"hardbound/store"
)

// TestE2EAdminCLIRevokeCert drives the CLI against the running server:
// a revoked certificate shows in cert list, in the CRL served on the plain
// HTTP listener, in the audit chain (which still verifies), and in the next
// authentication's reject reason.
func TestE2EAdminCLIRevokeCert(t *testing.T) {
	t.Parallel()
	in := startE2E(t, nil)
	ctx := e2eContext(t)
	dev := in.bind(t, devbind.Request{DeviceID: "adm-cert-1", Posture: store.ComplianceCompliant})
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, dev.Certificate)
	serial := dev.Binding.Serial

	var revoked admin.Cert
	in.cliJSON(t, &revoked, "cert", "revoke", serial, "--reason", "keyCompromise")
	if revoked.Serial != serial || revoked.Revoked == nil || revoked.Revoked.Reason != 1 {
		t.Fatalf("cert revoke answered %+v", revoked)
	}

	// cert list --json (and --revoked) shows it revoked, reason 1.
	for _, args := range [][]string{{"cert", "list"}, {"cert", "list", "--revoked"}, {"cert", "list", "--device", dev.ID}} {
		var list admin.List[admin.Cert]
		in.cliJSON(t, &list, args...)
		found := false
		for _, c := range list.Items {
			if c.Serial == serial {
				found = true
				if c.Revoked == nil || c.Revoked.Reason != 1 || c.Revoked.Actor != "admin:dev" {
					t.Errorf("%s: cert %s revocation = %+v", strings.Join(args, " "), serial, c.Revoked)
				}
			}
		}
		if !found {
			t.Errorf("%s: serial %s not listed", strings.Join(args, " "), serial)
		}
	}

	// The CRL on the plain HTTP listener, signed by the issuing CA.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr("enroll-http")+"/crl", nil)
	status, der := httpDo(t, http.DefaultClient, req)
	if status != http.StatusOK {
		t.Fatalf("GET /crl = %d", status)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL does not parse: %v", err)
	}
	if err := crl.CheckSignatureFrom(in.ca.Issuing()); err != nil {
		t.Fatalf("CRL signature does not verify with the issuing CA: %v", err)
	}
	want, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		t.Fatalf("serial %q is not hex", serial)
	}
	inCRL := false
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(want) == 0 {
			inCRL = true
			if e.ReasonCode != 1 {
				t.Errorf("CRL reason = %d, want 1 (keyCompromise)", e.ReasonCode)
			}
		}
	}
	if !inCRL {
		t.Fatalf("serial %s not in the CRL (%d entries)", serial, len(crl.RevokedCertificateEntries))
	}

	// The audit chain: the revocation with its actor, and still intact.
	var tail admin.List[admin.AuditEvent]
	in.cliJSON(t, &tail, "audit", "tail", "-n", "50")
	hasRevoke := false
	for _, ev := range tail.Items {
		if ev.Action == "cert.revoke" && ev.Actor == "admin:dev" && ev.Subject == serial && ev.Result == "ok" {
			hasRevoke = true
		}
	}
	if !hasRevoke {
		t.Errorf("audit tail has no cert.revoke by admin:dev for %s", serial)
	}
	if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify printed %q", out)
	}
	var vr admin.VerifyResult
	in.cliJSON(t, &vr, "audit", "verify")
	if !vr.OK || vr.Events == 0 {
		t.Errorf("audit verify --json = %+v", vr)
	}

	in.mustReject(t, nas, dev.Certificate, dev.ID, "cert_revoked")
}

// TestE2EAdminCLIStanding: each standing change made with the CLI decides
// the next authentication.
func TestE2EAdminCLIStanding(t *testing.T) {
	t.Parallel()
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "quarantining", QuarantineVLAN: "999"}}
	})
	tests := []struct {
		name, device, profile string
		args                  []string // %ID% is replaced by the device id
		wantReason            string   // reject reason; empty: accept
		wantVLAN              string
		undo                  []string // then: back in good standing, or refused if undoRefused
		undoRefused           bool
	}{
		{name: "device_revoke/rejected_device_revoked", device: "adm-revoke-1", args: []string{"device", "revoke", "%ID%", "--reason", "cessationOfOperation"},
			wantReason: "device_revoked", undo: []string{"device", "release", "%ID%"}, undoRefused: true},
		{name: "quarantine/rejected_device_quarantined", device: "adm-quar-1", args: []string{"device", "quarantine", "%ID%"},
			wantReason: "device_quarantined", undo: []string{"device", "release", "%ID%"}},
		{name: "quarantine_vlan_profile/admitted_to_vlan", device: "adm-quar-2", profile: "quarantining", args: []string{"device", "quarantine", "%ID%"},
			wantVLAN: "999", undo: []string{"device", "release", "%ID%"}},
		{name: "posture_noncompliant/rejected_noncompliant", device: "adm-posture-1", args: []string{"posture", "set", "%ID%", "noncompliant"},
			wantReason: "noncompliant", undo: []string{"posture", "set", "%ID%", "compliant"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dev := in.bind(t, devbind.Request{DeviceID: tt.device, Profile: tt.profile, Posture: store.ComplianceCompliant})
			nas := in.nasClient(t, "", nil)
			if res := in.mustAccept(t, nas, dev.Certificate); res.VLAN != "" {
				t.Fatalf("device in good standing got VLAN %q", res.VLAN)
			}
			subst := func(in []string) []string {
				out := make([]string, len(in))
				for i, a := range in {
					out[i] = strings.ReplaceAll(a, "%ID%", dev.ID)
				}
				return out
			}
			args := subst(tt.args)
			if out := in.cliOK(t, args...); strings.TrimSpace(out) == "" {
				t.Fatalf("hardbound %s printed nothing", strings.Join(args, " "))
			}
			if tt.wantReason != "" {
				in.mustReject(t, nas, dev.Certificate, dev.ID, tt.wantReason)
			} else if res := in.mustAccept(t, nas, dev.Certificate); res.VLAN != tt.wantVLAN {
				t.Fatalf("VLAN = %q, want %q", res.VLAN, tt.wantVLAN)
			}

			undo := subst(tt.undo)
			if tt.undoRefused {
				r := in.cli(t, undo...)
				if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || r.stderr == "" {
					t.Fatalf("hardbound %s: exit %d stderr %q, want exit 1 and one line", strings.Join(undo, " "), r.code, r.stderr)
				}
				in.mustReject(t, nas, dev.Certificate, dev.ID, tt.wantReason)
				return
			}
			in.cliOK(t, undo...)
			if res := in.mustAccept(t, nas, dev.Certificate); res.VLAN != "" {
				t.Fatalf("after %s: VLAN %q, want none", strings.Join(undo, " "), res.VLAN)
			}
		})
	}
}

// TestE2EAdminCLIOutputAndAuth: --json parses, tables have a header, and a
// missing or wrong token is one line on stderr, exit 1, and audited.
func TestE2EAdminCLIOutputAndAuth(t *testing.T) {
	t.Parallel()
	in := startE2E(t, nil)
	dev := in.bind(t, devbind.Request{DeviceID: "adm-out-1", Posture: store.ComplianceCompliant})

	t.Run("json_parses", func(t *testing.T) {
		var devs admin.List[admin.Device]
		in.cliJSON(t, &devs, "device", "list")
		if len(devs.Items) != 1 || devs.Items[0].ID != dev.ID {
			t.Fatalf("device list --json = %+v", devs.Items)
		}
		var detail admin.DeviceDetail
		in.cliJSON(t, &detail, "device", "show", dev.ID)
		if detail.Device == nil || detail.Device.ID != dev.ID || len(detail.Certs) != 1 || detail.Certs[0].Serial != dev.Binding.Serial {
			t.Fatalf("device show --json = %+v", detail)
		}
		var d admin.Device
		in.cliJSON(t, &d, "posture", "set", dev.ID, "compliant")
		if d.Posture.State != store.ComplianceCompliant || d.Posture.Source != "admin" {
			t.Fatalf("posture set --json = %+v", d.Posture)
		}
		var sessions admin.List[admin.Session]
		in.cliJSON(t, &sessions, "session", "list")
		var tail admin.List[admin.AuditEvent]
		in.cliJSON(t, &tail, "audit", "tail")
		if len(tail.Items) == 0 {
			t.Fatal("audit tail --json is empty")
		}
	})

	t.Run("device_list_pages", func(t *testing.T) {
		for _, id := range []string{"adm-page-1", "adm-page-2", "adm-page-3"} {
			in.bind(t, devbind.Request{DeviceID: id, Posture: store.ComplianceNoncompliant})
		}
		seen := map[string]bool{}
		after := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			args := []string{"device", "list", "--compliance", "noncompliant", "--limit", "2"}
			if after != "" {
				args = append(args, "--after", after)
			}
			var page admin.List[admin.Device]
			in.cliJSON(t, &page, args...)
			if len(page.Items) > 2 {
				t.Fatalf("--limit 2 returned %d devices", len(page.Items))
			}
			for _, d := range page.Items {
				if seen[d.ID] || d.Posture.State != store.ComplianceNoncompliant {
					t.Fatalf("page has %s (%s) again or unfiltered", d.ID, d.Posture.State)
				}
				seen[d.ID] = true
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if len(seen) != 3 {
			t.Fatalf("paging saw %v, want the 3 noncompliant devices", seen)
		}
		if out := in.cliOK(t, "device", "list", "--compliance", "noncompliant", "--limit", "2"); !strings.Contains(out, "more: repeat with --after ") {
			t.Errorf("a partial table does not say how to get more:\n%s", out)
		}
	})

	t.Run("tables_have_header", func(t *testing.T) {
		for _, tc := range []struct {
			args   []string
			header []string
		}{
			{[]string{"device", "list"}, []string{"ID", "STATUS", "POSTURE"}},
			{[]string{"cert", "list"}, []string{"SERIAL", "DEVICE", "ATTESTED"}},
			{[]string{"session", "list", "--all"}, []string{"NAS", "ACCT-SESSION-ID", "DEVICE"}},
			{[]string{"audit", "tail"}, []string{"SEQ", "ACTOR", "ACTION"}},
		} {
			out := in.cliOK(t, tc.args...)
			first, _, _ := strings.Cut(out, "\n")
			for _, h := range tc.header {
				if !strings.Contains(first, h) {
					t.Errorf("hardbound %s: header %q lacks %s", strings.Join(tc.args, " "), first, h)
				}
			}
		}
		if out := in.cliOK(t, "device", "list"); !strings.Contains(out, dev.ID) {
			t.Errorf("device list table lacks %s:\n%s", dev.ID, out)
		}
	})

	t.Run("bad_requests/exit_1_one_line", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string // in the one stderr line
		}{
			{[]string{"device", "show", "no-such-device"}, "404"},
			{[]string{"device", "quarantine", "no-such-device"}, "404"},
			{[]string{"cert", "revoke", "abcdef0123", "--reason", "keyCompromise"}, "404"},
			{[]string{"cert", "revoke", dev.Binding.Serial, "--reason", "notAReason"}, "400"},
			// 409 today (admin maps every posture.ErrInvalid to Conflict); a
			// bad value is arguably 400: any 4xx is accepted here.
			{[]string{"posture", "set", dev.ID, "fine"}, "(HTTP 4"},
			{[]string{"challenge", "issue", "--device", dev.ID, "--profile", "no-such-profile"}, "400"},
			{[]string{"challenge", "issue", "--device", dev.ID, "--ttl", "-5m"}, "400"},
		} {
			r := in.cli(t, tc.args...)
			name := strings.Join(tc.args, " ")
			if r.code != 1 || r.stdout != "" {
				t.Errorf("%s: exit %d stdout %q, want exit 1 and nothing on stdout", name, r.code, r.stdout)
			}
			if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: stderr %q, want one line with %s", name, r.stderr, tc.want)
			}
		}
		if d := in.device(t, dev.ID); d.Status != store.DeviceActive || d.Posture.State != store.ComplianceCompliant {
			t.Errorf("device changed by refused requests: %s %s", d.Status, d.Posture.State)
		}
	})

	t.Run("bad_token/exit_1_one_line_audited", func(t *testing.T) {
		dir := t.TempDir()
		tests := []struct {
			name, token, wantStderr string
			wantAudit               string // admin.auth reason; empty: nothing reaches the server
		}{
			{name: "wrong_token", token: "not-the-admin-token", wantStderr: "401", wantAudit: "wrong_token"},
			// The same refusal from the same source within a minute is
			// counted, not audited again (the audit budget, docs/radius.md).
			{name: "empty_token_file", token: "", wantStderr: "401"},
			{name: "no_token_file", wantStderr: "admin token"},
		}
		for _, tt := range tests {
			tokenFile := filepath.Join(dir, tt.name)
			if tt.name != "no_token_file" {
				tokenFile = writeSecret(t, tt.name, tt.token)
			}
			before := in.countAudit(t, "admin.auth", "", "denied", tt.wantAudit)
			r := in.cliToken(t, tokenFile, "device", "list")
			if r.code != 1 {
				t.Errorf("%s: exit %d, want 1", tt.name, r.code)
			}
			if r.stdout != "" {
				t.Errorf("%s: stdout %q, want nothing", tt.name, r.stdout)
			}
			if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("%s: stderr %q, want one line mentioning %q", tt.name, r.stderr, tt.wantStderr)
			}
			if tt.wantAudit != "" {
				in.waitAudit(t, "admin.auth denied "+tt.wantAudit, func() bool {
					return in.countAudit(t, "admin.auth", "GET /api/v1/devices", "denied", tt.wantAudit) > before
				})
			}
		}
		// Without an Authorization header at all (not something the CLI
		// sends): 401, audited as missing_token.
		before := in.countAudit(t, "admin.auth", "", "denied", "missing_token")
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+in.Addr("admin")+"/api/v1/devices", nil)
		if status, _ := httpDo(t, in.httpsClient(t), req); status != http.StatusUnauthorized {
			t.Errorf("no Authorization header: HTTP %d, want 401", status)
		}
		in.waitAudit(t, "admin.auth denied missing_token", func() bool {
			return in.countAudit(t, "admin.auth", "GET /api/v1/devices", "denied", "missing_token") > before
		})
		// Nothing changed: the device is as it was.
		if d := in.device(t, dev.ID); d.Status != store.DeviceActive {
			t.Errorf("device status %s after refused calls", d.Status)
		}
	})
}
