package attest_test

import (
	"os"
	"testing"
	"time"

	"hardbound/enroll/attest"
)

// TestEmbeddedRootsPinned pins the shipped vendor roots by SPKI SHA-256
// (docs/attestation.md §5) so a wrong or swapped PEM fails loudly.
func TestEmbeddedRootsPinned(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		file, subject, spki string
		notAfter            time.Time
	}{
		"ok/apple": {"roots/apple-enterprise-attestation-root.pem", "CN=Apple Enterprise Attestation Root CA,O=Apple Inc.,C=US",
			"4179683e87e3f483849848b3eb80e08ecdf52e3f1a99dd1340f29b88ecbc2041", time.Date(2047, 2, 20, 0, 0, 0, 0, time.UTC)},
		"ok/google-rsa": {"roots/google-hardware-attestation-root-rsa.pem", "SERIALNUMBER=f92009e853b6b045",
			"feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae", time.Date(2034, 11, 18, 20, 37, 58, 0, time.UTC)},
		"ok/google-ec": {"roots/google-key-attestation-ca1.pem", "CN=Key Attestation CA1,OU=Android,O=Google LLC,C=US",
			"3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec", time.Date(2035, 7, 15, 22, 32, 18, 0, time.UTC)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := attest.ParsePEMCerts(b)
			if err != nil || len(certs) != 1 {
				t.Fatalf("ParsePEMCerts: %d certs, %v", len(certs), err)
			}
			c := certs[0]
			if got := attest.SPKISHA256(c); got != tt.spki {
				t.Errorf("SPKI SHA-256 = %s, want %s", got, tt.spki)
			}
			if c.Subject.String() != tt.subject || !c.NotAfter.Equal(tt.notAfter) || !c.IsCA {
				t.Errorf("subject %q notAfter %s CA %v", c.Subject, c.NotAfter, c.IsCA)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
		})
	}
	if attest.DefaultAppleRoots() == nil || attest.DefaultAndroidRoots() == nil {
		t.Fatal("default pools missing")
	}
}

func TestPoolFromPEM(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("roots/google-key-attestation-ca1.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		in      string
		wantErr bool
	}{
		"ok/bundle":         {in: string(b) + string(b)},
		"fail/empty":        {in: "", wantErr: true},
		"fail/private-key":  {in: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", wantErr: true},
		"fail/garbage-cert": {in: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := attest.PoolFromPEM([]byte(tt.in))
			if (err != nil) != tt.wantErr || (err == nil && p == nil) {
				t.Fatalf("PoolFromPEM err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
