package scep_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
)

// TestCertRepInteropOpenSSL checks a SUCCESS CertRep with an independent
// CMS implementation: OpenSSL verifies the RA signature, decrypts the
// envelope with the device key (AES-128-CBC, which OpenSSL 3 accepts
// without its legacy provider) and finds the issued certificate.
func TestCertRepInteropOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	e := newEnv(t, nil)
	ctx := t.Context()
	dir := t.TempDir()
	key := fixtureKey(t, "device.key")
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	certs, _, err := e.client("").GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := sceptest.SelfSigned(key, pkix.Name{CommonName: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sceptest.BuildMessageWithSigner(certs, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}, signer)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.client("").Send(ctx, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"rep.der":    rep,
		"signer.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Raw}),
		"key.pem":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("cms", "-verify", "-noverify", "-binary", "-inform", "DER", "-in", "rep.der", "-out", "env.der")
	if dump := run("cms", "-cmsout", "-print", "-inform", "DER", "-in", "env.der"); !strings.Contains(dump, "aes-128-cbc") {
		t.Errorf("CertRep envelope is not AES-128-CBC:\n%s", dump)
	}
	run("cms", "-decrypt", "-binary", "-inform", "DER", "-in", "env.der", "-recip", "signer.pem", "-inkey", "key.pem", "-out", "deg.der")
	deg, err := os.ReadFile(filepath.Join(dir, "deg.der"))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := smscep.CACerts(deg)
	if err != nil || len(issued) != 1 {
		t.Fatalf("degenerate certs: %v (%d)", err, len(issued))
	}
	if _, err := e.store.GetCert(ctx, store.HashCert(issued[0])); err != nil {
		t.Errorf("OpenSSL-decrypted cert is not the recorded one: %v", err)
	}
}
