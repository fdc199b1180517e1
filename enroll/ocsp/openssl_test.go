package ocsp_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/ocsp"
	"hardbound/store/policy"
)

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenSSLOCSP is the real peer: `openssl ocsp` queries the responder
// over HTTP (POST, with a nonce) and verifies the answer's signature, the
// delegated signer's chain and the nonce, through good, certificateHold
// after a quarantine, good after the release, and revoked after a
// revocation. A GET request made with curl is verified by openssl too.
func TestOpenSSLOCSP(t *testing.T) {
	t.Parallel()
	bin := catest.OpenSSL(t)
	f := newFixture(t, ocsp.Config{Posture: true})
	d := f.bind(t, "dev-openssl", policy.DefaultProfile)
	srv := httptest.NewServer(f.resp.Handler("/ocsp"))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	issuer, leaf, chain := filepath.Join(dir, "issuer.pem"), filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "chain.pem")
	writePEM(t, issuer, f.ca.Issuing())
	writePEM(t, leaf, d.Leaf)
	writePEM(t, chain, f.ca.Issuing(), f.ca.Root())

	query := func(t *testing.T, want ...string) {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), bin, "ocsp", "-issuer", issuer, "-cert", leaf,
			"-url", srv.URL+"/ocsp", "-CAfile", chain, "-resp_text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		s := string(out)
		for _, w := range append([]string{"Response verify OK"}, want...) {
			if !strings.Contains(s, w) {
				t.Fatalf("openssl output lacks %q:\n%s", w, s)
			}
		}
		if strings.Contains(s, "WARNING") {
			t.Fatalf("openssl warns:\n%s", s)
		}
	}
	query(t, leaf+": good", "OCSP Nonce")
	if _, err := f.pos.Quarantine(f.ctx, d.ID, "test"); err != nil {
		t.Fatal(err)
	}
	query(t, leaf+": revoked", "Reason: certificateHold")
	if _, err := f.pos.Release(f.ctx, d.ID, "test"); err != nil {
		t.Fatal(err)
	}
	query(t, leaf+": good")
	if _, err := f.pos.RevokeCert(f.ctx, d.Binding.Serial, xocsp.KeyCompromise, "test"); err != nil {
		t.Fatal(err)
	}
	query(t, leaf+": revoked", "Reason: keyCompromise")

	// GET (RFC 6960 A.1) with curl: the request written by openssl.
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required in CI")
		}
		t.Skip("curl not installed")
	}
	reqFile, respFile := filepath.Join(dir, "req.der"), filepath.Join(dir, "resp.der")
	if out, err := exec.CommandContext(t.Context(), bin, "ocsp", "-issuer", issuer, "-cert", leaf, "-no_nonce", "-reqout", reqFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl ocsp -reqout: %v\n%s", err, out)
	}
	der, err := os.ReadFile(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), curl, "-sS", "-f", "-o", respFile, srv.URL+"/ocsp/"+ocspGETPath(der)).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "ocsp", "-respin", respFile, "-issuer", issuer, "-cert", leaf, "-CAfile", chain, "-no_nonce").CombinedOutput()
	if err != nil || !strings.Contains(string(out), leaf+": revoked") || !strings.Contains(string(out), "Response verify OK") {
		t.Fatalf("openssl -respin of the GET answer: %v\n%s", err, out)
	}
}
