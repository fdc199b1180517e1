package e2e

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	smscep "github.com/smallstep/scep"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
)

// TestE2EACMEEnrollmentAuthenticates enrolls through the running server's
// HTTPS listener with device-attest-01 evidence from the --dev test
// authority, checks what was issued and recorded, and then authenticates
// over RADIUS with that very key and certificate.
func TestE2EACMEEnrollmentAuthenticates(t *testing.T) {
	t.Parallel()
	in := startE2E(t, nil)
	ctx := e2eContext(t)
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatalf("the --dev server did not persist its test attestation authority: %v", err)
	}
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	nas := in.nasClient(t, "", nil)

	tests := []struct {
		format, serial, platform string
		evidence                 func(key *ecdsa.PrivateKey, serial, keyAuth string) ([]byte, error)
	}{
		{"apple", "C02E2EAPPLE1", "macos", func(k *ecdsa.PrivateKey, s, ka string) ([]byte, error) {
			return auth.Apple(k.Public(), s, "UDID-"+s, ka)
		}},
		{"tpm", "tpm-e2e-device-1", "linux", func(k *ecdsa.PrivateKey, s, ka string) ([]byte, error) { return auth.TPM(k.Public(), s, ka) }},
		{"android-key", "ANDROIDE2E1", "android", func(k *ecdsa.PrivateKey, s, ka string) ([]byte, error) { return auth.Android(k, s, ka) }},
	}
	// One ACME account is not safe for concurrent use: subtests run in turn.
	for _, tt := range tests {
		t.Run(tt.format+"/accepted", func(t *testing.T) {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				t.Fatal(err)
			}
			enroll := func() ([]*x509.Certificate, error) {
				return cl.Enroll(ctx, acme.TypePermanentIdentifier, tt.serial, func(keyAuth string) ([]byte, error) {
					return tt.evidence(key, tt.serial, keyAuth)
				}, csr)
			}
			// Genuine evidence, but not in the inventory: refused, audited
			// with the identifier it claimed (docs/inventory.md).
			var p *acmetest.Problem
			if _, err := enroll(); !errors.As(err, &p) || p.Type != acme.ProblemRejectedIdentifier {
				t.Fatalf("ACME for a device not in inventory: %v, want rejectedIdentifier", err)
			}
			in.waitAuditEvent(t, "enroll.acme", tt.serial, "reject", "")
			if last := in.lastAudit(t, "enroll.acme"); !strings.Contains(last, "reject not_in_inventory: ") || !strings.Contains(last, `"`+tt.serial+`"`) {
				t.Fatalf("refusal audited as %q", last)
			}
			in.cliOK(t, "device", "add", tt.serial, "--platform", tt.platform, "--serial", tt.serial)
			chain, err := enroll()
			if err != nil {
				t.Fatalf("ACME enrollment after device add: %v", err)
			}
			if len(chain) < 2 {
				t.Fatalf("chain has %d certificates, want leaf and issuing CA", len(chain))
			}
			leaf := chain[0]
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: in.rootPool(t), Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("issued chain does not verify to the data dir's CA root: %v", err)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
				t.Fatal("certificate is not for the attested key")
			}

			rec, err := in.st.GetCert(ctx, leaf)
			if err != nil {
				t.Fatalf("no binding for the issued certificate: %v", err)
			}
			if !rec.Attested || rec.AttestationID == "" || rec.DeviceID != tt.serial || rec.Protocol != "acme" {
				t.Fatalf("binding = attested %v, attestation %q, device %q, protocol %q", rec.Attested, rec.AttestationID, rec.DeviceID, rec.Protocol)
			}
			att, err := in.st.GetAttestation(ctx, rec.AttestationID)
			if err != nil {
				t.Fatalf("attestation %s: %v", rec.AttestationID, err)
			}
			if att.Format != tt.format || att.DeviceID != tt.serial || att.KeySHA256 != rec.KeySHA256 {
				t.Fatalf("attestation = format %q device %q key %s, want %s %s %s", att.Format, att.DeviceID, att.KeySHA256, tt.format, tt.serial, rec.KeySHA256)
			}
			if d := in.device(t, tt.serial); d.Status != store.DeviceActive {
				t.Fatalf("device status %s", d.Status)
			}
			in.waitAuditEvent(t, "enroll.acme", tt.serial, "ok", "")

			cert := tls.Certificate{PrivateKey: key, Leaf: leaf}
			for _, c := range chain {
				cert.Certificate = append(cert.Certificate, c.Raw)
			}
			in.mustAccept(t, nas, cert)
			in.waitAuditEvent(t, "radius.auth", tt.serial, "ok", "ok")
		})
	}
}

// TestE2ESCEPEnrollment mints one-time challenges with the CLI, enrolls
// with SCEP over the plain HTTP listener and authenticates: an unattested
// certificate is refused by the default profile and admitted by a profile
// that lists format "none".
func TestE2ESCEPEnrollment(t *testing.T) {
	t.Parallel()
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{
			{Name: "default"},
			{Name: "migration", Formats: []string{"apple", "tpm", "android-key", "none"}},
		}
	})
	scepHTTP := &http.Client{Timeout: 20 * time.Second}

	// Issuance mirrors authentication: the strict default profile refuses
	// to issue the unattested certificate every authentication would
	// reject, and says why in the CertRep's failInfoText.
	tests := []struct {
		name, device, profile, path string
		wantRefusal                 string // empty: issued and accepted
	}{
		{name: "default_profile/refused_unattested", device: "scep-e2e-default", path: "/scep", wantRefusal: "unattested"},
		{name: "none_profile/accepted", device: "scep-e2e-migration", profile: "migration", path: "/scep/migration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := e2eContext(t)
			add := []string{"device", "add", tt.device, "--platform", "macos"}
			args := []string{"challenge", "issue", "--device", tt.device}
			if tt.profile != "" {
				args = append(args, "--profile", tt.profile)
				add = append(add, "--profile", tt.profile)
			}
			in.cliOK(t, add...)
			var ch admin.ChallengeResponse
			in.cliJSON(t, &ch, args...)
			if ch.Challenge == "" || ch.DeviceID != tt.device {
				t.Fatalf("challenge response %+v", ch)
			}
			key, err := sceptest.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			sc := &sceptest.Client{URL: "http://" + in.Addr("enroll-http") + tt.path, HTTP: scepHTTP}
			leaf, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: tt.device}})
			if tt.wantRefusal != "" {
				var f *sceptest.Failure
				if !errors.As(err, &f) || f.FailInfo != smscep.BadRequest || !strings.HasPrefix(f.Text, tt.wantRefusal+": ") {
					t.Fatalf("SCEP PKCSReq = %v, want badRequest %q", err, tt.wantRefusal)
				}
				in.waitAuditEvent(t, "enroll.scep.issue", tt.device, "reject", "")
				return
			}
			if err != nil {
				t.Fatalf("SCEP PKCSReq: %v", err)
			}
			if err := leaf.CheckSignatureFrom(in.ca.Issuing()); err != nil {
				t.Fatalf("SCEP certificate not from the issuing CA: %v", err)
			}
			rec, err := in.st.GetCert(ctx, leaf)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Attested || rec.Protocol != "scep" || rec.DeviceID != tt.device {
				t.Fatalf("binding = attested %v protocol %q device %q, want unattested scep %s", rec.Attested, rec.Protocol, rec.DeviceID, tt.device)
			}
			// The challenge was one-time.
			if _, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: tt.device}}); err == nil {
				t.Fatal("a used challenge enrolled again")
			}

			cert := tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}
			nas := in.nasClient(t, "", nil)
			in.mustAccept(t, nas, cert)
			in.waitAuditEvent(t, "radius.auth", tt.device, "ok", "")
		})
	}
}

// adminPost calls the admin API with the dev token and decodes the answer.
func (in *instance) adminPost(t *testing.T, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(in.tokenPath())
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "https://"+in.Addr("admin")+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	status, rb := httpDo(t, in.httpsClient(t), req)
	if status/100 != 2 {
		t.Fatalf("POST %s: HTTP %d %s", path, status, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		t.Fatalf("POST %s: %v in %s", path, err, rb)
	}
}

// TestE2ESCEPTPMAttested: the attestation-bound SCEP flow of a Windows or
// Linux device. The TPM proves its EK and AK through credential
// activation, certifies the device key, and the admin API answers with a
// challenge bound to exactly that key; the SCEP certificate is attested
// (format tpm) and admitted by the strict default profile. A CSR for another
// key is refused with the same kind of challenge.
func TestE2ESCEPTPMAttested(t *testing.T) {
	t.Parallel()
	in := startE2E(t, nil)
	ctx := e2eContext(t)
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	sc := &sceptest.Client{URL: "http://" + in.Addr("enroll-http") + "/scep", HTTP: &http.Client{Timeout: 20 * time.Second}}

	// mint runs activation and certification for key and returns the
	// key-bound challenge.
	mint := func(tpm *attesttest.TPMDevice, key crypto.Signer) admin.ChallengeResponse {
		var act attest.TPMActivation
		in.adminPost(t, "/api/v1/attestations/activate", tpm.ActivationRequest(), &act)
		nonce, err := tpm.ActivateCredential(&act)
		if err != nil {
			t.Fatalf("ActivateCredential: %v", err)
		}
		ev, err := tpm.Evidence(key.Public(), nonce)
		if err != nil {
			t.Fatal(err)
		}
		var ch admin.ChallengeResponse
		in.adminPost(t, "/api/v1/attestations", admin.AttestRequest{Evidence: ev, Nonce: nonce}, &ch)
		if ch.Challenge == "" || ch.KeySHA256 == "" || ch.DeviceID == "" {
			t.Fatalf("attestation answered %+v", ch)
		}
		return ch
	}

	tpm, err := auth.NewTPMDevice()
	if err != nil {
		t.Fatal(err)
	}
	// The operator puts the TPM device in the inventory under its EK hash.
	in.cliOK(t, "device", "add", tpm.EKID(), "--platform", "linux", "--ek-sha256", tpm.EKID())
	key, err := sceptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ch := mint(tpm, key)
	if ch.DeviceID != tpm.EKID() {
		t.Fatalf("challenge for device %q, want the EK id %q", ch.DeviceID, tpm.EKID())
	}

	// The challenge is bound to the certified key: another key is refused.
	other, err := sceptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Enroll(ctx, sceptest.Request{Key: other, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: ch.DeviceID}}); err == nil {
		t.Fatal("a key-bound challenge enrolled another key")
	}
	in.waitAudit(t, "enroll.scep.issue reject key_mismatch", func() bool {
		evs, _ := in.st.TailAudit(ctx, 100)
		for _, ev := range evs {
			if ev.Action == "enroll.scep.issue" && ev.Subject == ch.DeviceID && ev.Result == "reject" && strings.HasPrefix(ev.Reason, "key_mismatch") {
				return true
			}
		}
		return false
	})
	ch = mint(tpm, key)
	leaf, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: ch.DeviceID}})
	if err != nil {
		t.Fatalf("SCEP with the attestation-bound challenge: %v", err)
	}
	rec, err := in.st.GetCert(ctx, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Attested || rec.AttestationID == "" || rec.DeviceID != tpm.EKID() {
		t.Fatalf("binding = attested %v attestation %q device %q", rec.Attested, rec.AttestationID, rec.DeviceID)
	}
	if a, err := in.st.GetAttestation(ctx, rec.AttestationID); err != nil || a.Format != "tpm" || a.KeySHA256 != rec.KeySHA256 {
		t.Fatalf("attestation = %+v, %v", a, err)
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}
	in.mustAccept(t, in.nasClient(t, "", nil), cert)
}

// TestE2ERevokedDeviceCannotReenroll: after `device revoke`, neither ACME
// nor SCEP issues the device a new certificate.
func TestE2ERevokedDeviceCannotReenroll(t *testing.T) {
	t.Parallel()
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "migration", Formats: []string{"apple", "none"}}}
	})
	ctx := e2eContext(t)
	const serial = "C02REVOKEDE2E"
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	accountKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	enroll := func() error {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return auth.Apple(key.Public(), serial, "", keyAuth)
		}, csr)
		return err
	}
	in.cliOK(t, "device", "add", "--platform", "macos", "--serial", serial)
	if err := enroll(); err != nil {
		t.Fatalf("first enrollment: %v", err)
	}
	in.cliOK(t, "device", "revoke", serial, "--reason", "keyCompromise")

	var p *acmetest.Problem
	if err := enroll(); !errors.As(err, &p) || p.Type != acme.ProblemUnauthorized {
		t.Fatalf("ACME for a revoked device: %v, want an unauthorized problem", err)
	}

	// SCEP: either no challenge is minted for a revoked device, or the
	// request is refused; no certificate either way.
	r := in.cli(t, "challenge", "issue", "--device", serial, "--profile", "migration", "--json")
	if r.code == 0 {
		var ch admin.ChallengeResponse
		if err := json.Unmarshal([]byte(r.stdout), &ch); err != nil {
			t.Fatal(err)
		}
		key, err := sceptest.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		sc := &sceptest.Client{URL: "http://" + in.Addr("enroll-http") + "/scep/migration", HTTP: &http.Client{Timeout: 20 * time.Second}}
		if _, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: serial}}); err == nil {
			t.Fatal("SCEP issued a certificate to a revoked device")
		}
	}
	var certs admin.List[admin.Cert]
	in.cliJSON(t, &certs, "cert", "list", "--device", serial)
	if len(certs.Items) != 1 || certs.Items[0].Revoked == nil {
		t.Fatalf("certificates of the revoked device: %+v", certs.Items)
	}
}
