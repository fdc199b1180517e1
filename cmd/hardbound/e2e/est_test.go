package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	"hardbound/store"
	"hardbound/store/policy"
)

// TestE2EESTRenewalAndOCSP runs against `hardbound serve`: a renewal over
// EST (mutual TLS with the current certificate, same attested key) is
// followed by an EAP-TLS Accept with the new certificate and a Reject with
// the old one (revoked as superseded on renewal); `openssl ocsp` on the
// plain HTTP listener sees good, revoked (superseded), certificateHold
// after `device quarantine` and good after `device release`; a new key
// on the hardware-only default profile is refused; a one-time challenge
// enrolls over EST once.
func TestE2EESTRenewalAndOCSP(t *testing.T) {
	t.Parallel()
	requireTools(t, "openssl")
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Enroll.OCSP.CRLHolds = true
		cfg.Enroll.AttestedNames.PermanentIdentifier = []string{policy.DefaultProfile}
	})
	ctx := e2eContext(t)
	dev := in.bind(t, devbind.Request{DeviceID: "est-e2e-1", Posture: store.ComplianceCompliant})
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, dev.Certificate)

	dir := t.TempDir()
	issuerPEM, chainPEM := filepath.Join(dir, "issuer.pem"), filepath.Join(dir, "chain.pem")
	writeCerts(t, issuerPEM, in.ca.Issuing())
	writeCerts(t, chainPEM, in.ca.Issuing(), in.ca.Root())
	ocspURL := "http://" + in.Addr("enroll-http") + "/ocsp"
	ocspStatus := func(t *testing.T, leaf *x509.Certificate, want ...string) {
		t.Helper()
		p := filepath.Join(dir, "q.pem")
		writeCerts(t, p, leaf)
		out, err := exec.CommandContext(ctx, "openssl", "ocsp", "-issuer", issuerPEM, "-cert", p, "-url", ocspURL,
			"-CAfile", chainPEM, "-resp_text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		for _, w := range append([]string{"Response verify OK", "OCSP Nonce"}, want...) {
			if !strings.Contains(string(out), w) {
				t.Fatalf("openssl ocsp lacks %q:\n%s", w, out)
			}
		}
	}
	ocspStatus(t, dev.Leaf, ": good")

	estURL := "https://" + in.Addr("enroll-https") + "/.well-known/est/"
	post := func(t *testing.T, cert *tls.Certificate, user, pass, op string, key *ecdsa.PrivateKey) (int, *x509.Certificate, string) {
		t.Helper()
		tc := &tls.Config{RootCAs: in.rootPool(t), MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: tc}
		defer tr.CloseIdleConnections()
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, estURL+op, strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
		req.Header.Set("Content-Type", "application/pkcs10")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if res.StatusCode != http.StatusOK {
			return res.StatusCode, nil, string(b)
		}
		der, err := base64.StdEncoding.DecodeString(string(b))
		if err != nil {
			t.Fatal(err)
		}
		p7, err := pkcs7.Parse(der)
		if err != nil || len(p7.Certificates) != 1 {
			t.Fatalf("certs-only answer: %v", err)
		}
		return 200, p7.Certificates[0], ""
	}

	// A new, unattested key on the hardware-only default profile: refused,
	// as every authentication would refuse it.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if code, _, msg := post(t, &dev.Certificate, "", "", "simplereenroll", other); code != http.StatusForbidden || !strings.Contains(msg, "unattested") {
		t.Fatalf("renewal with an unattested key: %d %s", code, msg)
	}
	// The same attested key: renewed.
	code, leaf, msg := post(t, &dev.Certificate, "", "", "simplereenroll", dev.Key.(*ecdsa.PrivateKey))
	if code != http.StatusOK {
		t.Fatalf("simplereenroll: %d %s", code, msg)
	}
	renewed := tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: dev.Key, Leaf: leaf}
	// enroll.attested_names: the certificate for the attested key names
	// the device as an RFC 4043 permanentIdentifier (enroll/ca).
	leafPEM := filepath.Join(dir, "renewed.pem")
	writeCerts(t, leafPEM, leaf)
	if out, err := exec.CommandContext(ctx, "openssl", "x509", "-in", leafPEM, "-noout", "-text").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "othername: Permanent Identifier::") {
		t.Fatalf("renewed certificate without a permanentIdentifier: %v\n%s", err, out)
	}
	in.waitAuditEvent(t, "enroll.est.renew", dev.ID, "ok", "")
	in.mustAccept(t, nas, renewed)
	in.mustReject(t, nas, dev.Certificate, dev.ID, "cert_revoked")
	ocspStatus(t, dev.Leaf, ": revoked", "Reason: superseded")
	ocspStatus(t, leaf, ": good")

	in.cliOK(t, "device", "quarantine", dev.ID)
	ocspStatus(t, leaf, ": revoked", "Reason: certificateHold")
	// enroll.ocsp.crl_holds: the CRL carries the same hold.
	crlReason := func(t *testing.T) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr("enroll-http")+"/crl", nil)
		status, der := httpDo(t, http.DefaultClient, req)
		if status != http.StatusOK {
			t.Fatalf("GET /crl = %d", status)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(in.ca.Issuing()) != nil {
			t.Fatalf("CRL: %v", err)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return e.ReasonCode
			}
		}
		return -1
	}
	if r := crlReason(t); r != 6 {
		t.Fatalf("CRL reason for the quarantined device's cert = %d, want 6 (certificateHold)", r)
	}
	if code, _, msg := post(t, &renewed, "", "", "simplereenroll", dev.Key.(*ecdsa.PrivateKey)); code != http.StatusForbidden || !strings.Contains(msg, "device_quarantined") {
		t.Fatalf("renewal while quarantined: %d %s", code, msg)
	}
	in.cliOK(t, "device", "release", dev.ID)
	ocspStatus(t, leaf, ": good")
	if r := crlReason(t); r != -1 {
		t.Fatalf("released device's cert still on the CRL (reason %d)", r)
	}

	// First enrollment with a one-time challenge (`challenge issue`), for a
	// device in inventory; the challenge works once.
	var ch admin.ChallengeResponse
	in.cliJSON(t, &ch, "challenge", "issue", "--device", dev.ID)
	code, _, msg = post(t, nil, dev.ID, ch.Challenge, "simpleenroll", dev.Key.(*ecdsa.PrivateKey))
	if code != http.StatusOK {
		t.Fatalf("simpleenroll: %d %s", code, msg)
	}
	if code, _, _ := post(t, nil, dev.ID, ch.Challenge, "simpleenroll", dev.Key.(*ecdsa.PrivateKey)); code != http.StatusUnauthorized {
		t.Fatalf("reused challenge: %d", code)
	}

	// The EST and OCSP outcomes are in /metrics.
	m := in.scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hardbound_est_requests_total", []string{`op="simplereenroll"`, `result="ok"`}, 1},
		{"hardbound_est_requests_total", []string{`op="simplereenroll"`, `result="refused"`}, 2},
		{"hardbound_est_requests_total", []string{`op="simpleenroll"`, `result="ok"`}, 1},
		{"hardbound_est_refusals_total", []string{`reason="unattested"`}, 1},
		{"hardbound_est_refusals_total", []string{`reason="challenge_consumed"`}, 1},
		{"hardbound_ocsp_responses_total", []string{`status="good"`}, 3},
		{"hardbound_ocsp_responses_total", []string{`status="revoked"`}, 1},
		{"hardbound_ocsp_responses_total", []string{`status="hold"`}, 1},
		{"hardbound_ocsp_signer_rotations_total", []string{`result="ok"`}, 1},
	} {
		if got := metricSum(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// One lookup per openssl ocsp query above (each carries a nonce, so
	// each is signed anew, from the decided answer when it is cached).
	if got := metricSum(t, m, "hardbound_ocsp_cache_lookups_total"); got != 5 {
		t.Errorf("OCSP cache lookups = %v, want 5", got)
	}
}

func writeCerts(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
