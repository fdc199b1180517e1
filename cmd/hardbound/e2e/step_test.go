package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/enroll/attest/swtpmtest"
	"hardbound/radius"
)

// The step CLI the TPM interop test drives; .ci/run installs the same one
// into the same cache directory.
const (
	stepCLI        = "github.com/smallstep/cli/cmd/step"
	stepCLIVersion = "v0.30.6"
)

// needPeer skips when a real peer is missing, except under CI=true, where
// a missing peer fails the test.
func needPeer(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required when CI=true: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// goTool returns the binary of pkg@version, built once with go install
// into <user cache>/hardbound-test-tools/<name>@<version>.
func goTool(t *testing.T, pkg, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	needPeer(t, err, "a user cache directory")
	name := path.Base(pkg)
	dir := filepath.Join(cache, "hardbound-test-tools", name+"@"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		needPeer(t, err, "go install "+pkg+"@"+version+": "+string(out))
	}
	return bin
}

// swtpmPeer is a running software TPM whose EK certificate comes from a
// private swtpm-localca (root and issuer in the test's directory).
type swtpmPeer struct {
	*swtpmtest.TPM
	ekSHA256 string // hex SHA-256 of the RSA EK's SPKI: the device id
}

func startSWTPMPeer(t *testing.T) *swtpmPeer {
	t.Helper()
	p := &swtpmPeer{TPM: swtpmtest.Start(t)}
	tpm := p.Open(t)
	defer tpm.Close()
	eks, err := tpm.EKs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ek := range eks {
		if ek.Certificate != nil {
			sum := sha256.Sum256(ek.Certificate.RawSubjectPublicKeyInfo)
			p.ekSHA256 = hex.EncodeToString(sum[:])
			break
		}
	}
	if p.ekSHA256 == "" {
		t.Fatal("swtpm has no EK certificate")
	}
	return p
}

// stepKeySigner loads the key the step CLI created in the TPM (kept, as
// step keeps it, in its TPM storage directory as go-attestation's key
// blob) and returns a signer over it, so the test authenticates with the
// very key that was attested.
func (p *swtpmPeer) stepKeySigner(t *testing.T, storage, name string) (crypto.Signer, func()) {
	t.Helper()
	var blob []byte
	err := filepath.WalkDir(storage, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || blob != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var obj struct {
			Name string `json:"name"`
			Type string `json:"type"`
			Data []byte `json:"data"`
		}
		if json.Unmarshal(b, &obj) == nil && obj.Type == "KEY" && obj.Name == name {
			blob = obj.Data
		}
		return nil
	})
	if err != nil || blob == nil {
		t.Fatalf("no TPM key %q in step's storage %s: %v", name, storage, err)
	}
	tpm := p.Open(t)
	k, err := tpm.LoadKey(blob)
	if err != nil {
		tpm.Close()
		t.Fatalf("LoadKey: %v", err)
	}
	priv, err := k.Private(k.Public())
	if err != nil {
		tpm.Close()
		t.Fatalf("TPM key signer: %v", err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		tpm.Close()
		t.Fatalf("TPM key %T is not a signer", priv)
	}
	return s, func() { k.Close(); tpm.Close() }
}

// TestE2EStepCLITPMDeviceAttest: smallstep's step CLI enrolls a software
// TPM through ACME device-attest-01 against a server that is not in --dev.
// The only trust configured is the TPM vendor's EK root (swtpm's localca):
// hardbound certifies the AK itself after credential activation
// (/tpm-ak/attest and /tpm-ak/secret), step certifies a new TPM key with
// that AK for the challenge, and the certificate it gets authenticates
// over EAP-TLS with that TPM key.
func TestE2EStepCLITPMDeviceAttest(t *testing.T) {
	t.Parallel()
	step := goTool(t, stepCLI, stepCLIVersion)
	tpm := startSWTPMPeer(t)

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if r := runCLI(t, "ca", "init", "--data-dir", dataDir, "--org", "Step E2E", "--root-key-out", filepath.Join(dir, "offline-root.key")); r.code != 0 {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	const token = "step-e2e-admin-token-0123456789"
	h := admin.HashToken(token)
	if err := os.WriteFile(filepath.Join(dataDir, "admin.tokens"), []byte("ops "+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const nasSecret = "step-e2e-nas-secret"
	cfg := testConfig(t)
	cfg.Dev = false
	cfg.DataDir = dataDir
	cfg.RADIUS.Clients = []radius.FileClient{{Name: "sw1", CIDR: "127.0.0.1/32", Secret: nasSecret}}
	cfg.Enroll.TPMRoots = tpm.RootPEM
	cfg.Enroll.TPMIntermediates = tpm.IssuerPEM
	in := startTest(t, cfg)
	// Outside --dev the test reads records through the admin API with the
	// token it made.
	in.adminTokenPath = writeSecret(t, "ops.token", token)
	in.st = apiStore{in: in}
	// The device is in inventory under its EK hash, as an operator adds a
	// TPM device before it enrolls. (A server without an inventory wired
	// answers 501, and then enrollment does not ask for one.)
	var ae *apiError
	if err := in.api(http.MethodPost, "/api/v1/devices", admin.InventoryRecord{ID: tpm.ekSHA256, Platform: "linux", EKSHA256: tpm.ekSHA256}, nil); err != nil &&
		!(errors.As(err, &ae) && ae.Status == http.StatusNotImplemented) {
		t.Fatalf("device add: %v", err)
	}

	rootPath := filepath.Join(dir, "root.crt")
	if err := os.WriteFile(rootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: in.ca.Root().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	enroll := "https://" + in.Addr("enroll-https")
	storage := filepath.Join(dir, "tpm-storage")
	leafPath := filepath.Join(dir, "device.crt")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, step, "ca", "certificate", tpm.ekSHA256, leafPath, filepath.Join(dir, "device.key"),
		"--acme", enroll+"/acme/directory", "--root", rootPath,
		"--attestation-uri", "tpmkms:name=hbdevice;device="+tpm.Sock,
		"--attestation-ca-url", enroll+"/tpm-ak", "--attestation-ca-root", rootPath,
		"--tpm-storage-directory", storage, "--force")
	cmd.Env = append(os.Environ(), "STEPPATH="+filepath.Join(dir, "step"), "HOME="+dir)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("step ca certificate: %v\n%s\naudit:\n%s", err, out, in.auditDump(t, 20))
	}

	t.Logf("step ca certificate:\n%s", out)
	pemBytes, err := os.ReadFile(leafPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatalf("%s holds no certificate:\n%s", leafPath, pemBytes)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(in.ca.Issuing()); err != nil {
		t.Fatalf("device certificate not from the issuing CA: %v", err)
	}
	rec, err := in.st.GetCert(ctx, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Attested || rec.DeviceID != tpm.ekSHA256 || rec.Protocol != "acme" {
		t.Fatalf("binding = attested %v device %q protocol %q, want attested acme for %s", rec.Attested, rec.DeviceID, rec.Protocol, tpm.ekSHA256)
	}
	a, err := in.st.GetAttestation(ctx, rec.AttestationID)
	if err != nil || a.Format != "tpm" {
		t.Fatalf("attestation %+v, %v; want format tpm", a, err)
	}
	in.waitAuditEvent(t, "enroll.tpm.ak_certify", tpm.ekSHA256, "ok", "")

	signer, closeKey := tpm.stepKeySigner(t, storage, "hbdevice")
	defer closeKey()
	if !keysMatch(signer.Public(), leaf.PublicKey) {
		t.Fatal("the TPM key step stored is not the certified key")
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: signer, Leaf: leaf}
	in.mustAccept(t, in.nasClient(t, nasSecret, nil), cert)
	in.waitAuditEvent(t, "radius.auth", tpm.ekSHA256, "ok", "")
}

func keysMatch(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
