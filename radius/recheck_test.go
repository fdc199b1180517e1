package radius

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/store"
)

// revokingDecider allows the first decision for its certificate and
// revokes the device right after it: the standing changes between the
// handshake's decision (VerifyConnection) and the round that builds the
// Access-Accept, as an admin's revoke landing while the supplicant takes
// its time acknowledging the TLS Finished (1.2) or the 0x00 indication
// (1.3).
type revokingDecider struct {
	*tableDecider
	mu      sync.Mutex
	cert    store.Hash
	calls   int
	revoked time.Time
}

func (d *revokingDecider) Decide(ctx context.Context, leaf *x509.Certificate) posture.Verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.tableDecider.Decide(ctx, leaf)
	if store.HashCert(leaf) != d.cert {
		return v
	}
	d.calls++
	if d.calls == 1 {
		v.Generation = 41
		// The revoke commits as this decision returns.
		d.revoked = time.Now()
		return v
	}
	return posture.Verdict{Reason: posture.ReasonDeviceRevoked, DeviceID: v.DeviceID, CertSHA256: v.CertSHA256, Generation: 42}
}

func (d *revokingDecider) revokedAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked
}

func newRevokingDecider(p *testPKI) *revokingDecider {
	return &revokingDecider{tableDecider: p.decider(), cert: store.HashCert(p.clients["ok"].cert)}
}

// checkRevokedAtAccept: the audit event of the reject says why, when the
// handshake decided and on which standing generation.
func checkRevokedAtAccept(t *testing.T, ls *liveServer) {
	t.Helper()
	var ev *store.AuditEvent
	waitFor(t, func() bool {
		for _, e := range ls.audited() {
			if e.Action == "radius.auth" {
				ev = &e
				return true
			}
		}
		return false
	})
	for _, want := range []string{"device_revoked ", " decided=", " gen=41 ", " recheck_gen=42 ", "note=\"standing changed after the handshake decision; refused at accept\"",
		" cert_sha256=" + store.HashCert(ls.pki.clients["ok"].cert).String()} {
		if !strings.Contains(" "+ev.Reason, want) {
			t.Errorf("audit reason %q lacks %q", ev.Reason, want)
		}
	}
	if ev.Result != "reject" || ev.Subject != "dev-ok" {
		t.Errorf("audit event %+v, want a reject of dev-ok", ev)
	}
	if ls.metrics.get("reject/device_revoked") != 1 || ls.metrics.get("request/access_request/accept") != 0 {
		t.Errorf("metrics %v", ls.metrics)
	}
}

func TestIntegrationRevokeBetweenDecisionAndAcceptRejects(t *testing.T) {
	t.Parallel()
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			var dec *revokingDecider
			ls := startLiveWith(t, nil, func(p *testPKI) Decider { dec = newRevokingDecider(p); return dec })
			nas := newUDPNAS(t, ls.auth, []byte(testSecret))
			peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", version), Identity: "anonymous@example.org", MTU: 1400})
			defer peer.Close()
			r := runEAP(t, nas, peer, 1400)
			took := time.Since(dec.revokedAt())
			if r.final.Code != lradius.CodeAccessReject {
				t.Fatalf("answer %v after a revoke between decision and accept, want Access-Reject", r.final.Code)
			}
			if e := eapOf(r.final); len(e) != 4 || e[0] != eaptls.CodeFailure {
				t.Fatalf("EAP %x, want Failure", e)
			}
			if r.final.Get(attrClass) != nil || r.final.Get(26) != nil {
				t.Fatal("Reject carries Class or MPPE keys")
			}
			t.Logf("%s: revoke to Access-Reject %v (the supplicant's last round included)", tls.VersionName(version), took)
			checkRevokedAtAccept(t, ls)
		})
	}
}

// TestInteropEapolTestRevokeBetweenDecisionAndAccept: wpa_supplicant's
// eapol_test completes the TLS handshake (the server's decision allowed
// it), the device is revoked, and the final round gets Access-Reject.
func TestInteropEapolTestRevokeBetweenDecisionAndAccept(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "eapol_test")
	for _, tt := range []struct{ name, phase1 string }{
		{"tls1.2", "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_3=1"},
		{"tls1.3", "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ls := startLiveWith(t, nil, func(p *testPKI) Decider { return newRevokingDecider(p) })
			dir := t.TempDir()
			ca, cert, key := ls.pki.writePEM(t, dir, "ok")
			conf := fmt.Sprintf("network={\n\tkey_mgmt=WPA-EAP\n\teap=TLS\n\tidentity=\"anonymous@example.org\"\n\tca_cert=%q\n\tclient_cert=%q\n\tprivate_key=%q\n\tphase1=%q\n}\n", ca, cert, key, tt.phase1)
			confPath := filepath.Join(dir, "eapol.conf")
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runTool(t, 30*time.Second, "", bin, "-c", confPath, "-a", "127.0.0.1", "-p", strconv.Itoa(int(ls.auth.Port())), "-s", testSecret, "-t", "10", "-r", "0",
				"-M", fmt.Sprintf("02:00:00:00:02:%02x", byte(stationSeq.Add(1))))
			if err == nil || strings.Contains(out, "\nSUCCESS") {
				t.Fatalf("eapol_test succeeded for a device revoked before the Accept:\n%s", tail(out, 40))
			}
			// The handshake itself completed: the refusal is the Accept's.
			if !strings.Contains(out, "Using TLS version") || !strings.Contains(out, "Access-Reject") || !strings.Contains(out, "Received EAP-Failure") {
				t.Fatalf("no completed handshake, then Access-Reject / EAP-Failure:\n%s", tail(out, 40))
			}
			checkRevokedAtAccept(t, ls)
		})
	}
}

// TestIntegrationTLSRefusalNamesTheCertificate: a chain our CA did not
// issue never reaches the Decider, yet its refusal is audited with the
// certificate presented.
func TestIntegrationTLSRefusalNamesTheCertificate(t *testing.T) {
	t.Parallel()
	ls := startLive(t, nil)
	nas := newUDPNAS(t, ls.auth, []byte(testSecret))
	peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("foreign", tls.VersionTLS13), Identity: "anonymous@example.org", MTU: 1400})
	defer peer.Close()
	if r := runEAP(t, nas, peer, 1400); r.final.Code != lradius.CodeAccessReject {
		t.Fatalf("foreign chain: %v", r.final.Code)
	}
	want := " cert_sha256=" + store.HashCert(ls.pki.clients["foreign"].cert).String()
	waitFor(t, func() bool {
		for _, e := range ls.audited() {
			if e.Action == "radius.auth" && strings.HasPrefix(e.Reason, RejectUnknownIssuer+" ") && strings.Contains(e.Reason, want) {
				return true
			}
		}
		return false
	})
}
