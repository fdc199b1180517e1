package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
)

// TestE2EInventoryImportProfileAndOSMinimum: `device import` (dry run,
// then for real, a bad line reported) puts an iPhone in the inventory in
// profile "phones"; it enrolls through the default ACME URL into its
// record's profile, an order under another profile's URL is refused and
// the record's profile stays; it authenticates. The server restarts with
// phones' min_os raised above the attested OS: the same certificate is
// rejected with attested_below_minimum, device show says why, an
// enrollment on the old OS is refused, and one on a newer OS admits again.
func TestE2EInventoryImportProfileAndOSMinimum(t *testing.T) {
	t.Parallel()
	phones := func(minIOS string) []node.ProfileConfig {
		p := node.ProfileConfig{Name: "phones"}
		p.MinOS = map[string]string{"ios": minIOS}
		return []node.ProfileConfig{{Name: "default"}, p}
	}
	cfg := testConfig(t)
	cfg.Profiles = phones("17.0")
	in := startTest(t, cfg)
	ctx := e2eContext(t)
	const serial = "F2LE2EIPHONE"

	csv := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(csv, []byte("platform,serial,profile,owner\niOS,"+serial+",phones,carol@example.com\nbeos,BADROW,,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := in.cli(t, "device", "import", csv, "--dry-run")
	if r.code != 1 || !strings.Contains(r.stdout, "dry run, nothing written): 1 added, 0 updated, 0 unchanged, 1 refused") ||
		!regexp.MustCompile(`(?m)^3\s+BADROW\s+inventory: invalid record: platform`).MatchString(r.stdout) {
		t.Fatalf("import --dry-run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if err := in.api("GET", "/api/v1/devices/"+serial, nil, nil); !notFound(err) {
		t.Fatalf("the dry run wrote the device: %v", err)
	}
	if r = in.cli(t, "device", "import", csv); r.code != 1 || !strings.Contains(r.stdout, "(applied): 1 added") || !strings.Contains(r.stderr, "1 record(s) refused") {
		t.Fatalf("import: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(in *instance, dir, osVersion string) (*ecdsa.PrivateKey, []*x509.Certificate, error) {
		t.Helper()
		ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+dir, ak, jose.ES256)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return auth.AppleWith(key.Public(), serial, "UDID-"+serial, keyAuth, attesttest.AppleOptions{OSVersion: osVersion})
		}, csr)
		return key, chain, err
	}
	tlsCert := func(key *ecdsa.PrivateKey, chain []*x509.Certificate) tls.Certificate {
		c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		return c
	}

	key, chain, err := enroll(in, "/acme/directory", "17.2")
	if err != nil {
		t.Fatalf("enrollment of the imported iPhone: %v", err)
	}
	rec, err := in.st.GetCert(ctx, chain[0])
	if err != nil || rec.Profile != "phones" {
		t.Fatalf("binding %+v, %v: want profile phones (the record's)", rec, err)
	}
	var p *acmetest.Problem
	if _, _, err := enroll(in, "/acme/profile/default/directory", "17.2"); !errors.As(err, &p) || p.Type != acme.ProblemUnauthorized || !strings.Contains(p.Detail, `belongs to profile "phones"`) {
		t.Fatalf("order under another profile's URL: %v", err)
	}
	if d := in.device(t, serial); d.Profile != "phones" || d.Owner != "carol@example.com" || d.Source != "admin" {
		t.Fatalf("record after the refused order: %+v", d)
	}
	old := tlsCert(key, chain)
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, old)

	// The minimum is raised; the device enrolled on 17.2.
	in.Shutdown()
	cfg2 := *cfg
	cfg2.Profiles = phones("17.4")
	in2 := startTest(t, &cfg2)
	nas2 := in2.nasClient(t, "", nil)
	in2.mustReject(t, nas2, old, serial, "attested_below_minimum")
	var show admin.DeviceDetail
	out := in2.cliOK(t, "device", "show", serial, "--json")
	if err := json.Unmarshal([]byte(out), &show); err != nil || len(show.Attestations) != 1 || show.Attestations[0].MeetsMinimums ||
		!strings.Contains(show.Attestations[0].BelowMinimum, "ios 17.2.0 is below min_os 17.4.0") || show.Attestations[0].Facts["os_version"] != "17.2" {
		t.Fatalf("device show: %v\n%s", err, out)
	}
	if _, _, err := enroll(in2, "/acme/directory", "17.3"); !errors.As(err, &p) || !strings.Contains(p.Detail, "below min_os") {
		t.Fatalf("enrollment on 17.3: %v, want refused below the minimum", err)
	}
	key, chain, err = enroll(in2, "/acme/directory", "17.5")
	if err != nil {
		t.Fatalf("enrollment on 17.5: %v", err)
	}
	in2.mustAccept(t, nas2, tlsCert(key, chain))
}
