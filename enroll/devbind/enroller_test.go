package devbind_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
)

func newCSR(t *testing.T, key any) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestEnroll(t *testing.T) {
	t.Parallel()
	c := catest.New(t, "")
	st := badgertest.Memory(t)
	e := devbind.NewEnroller(c, st)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := newCSR(t, key)
	forged := newCSR(t, key)
	forged.Signature = append([]byte(nil), forged.Signature...)
	forged.Signature[len(forged.Signature)-1] ^= 1
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		csr  *x509.CertificateRequest
		req  devbind.Request
	}{
		{"fail/no_csr", nil, devbind.Request{DeviceID: "d-none"}},
		{"fail/csr_signature", forged, devbind.Request{DeviceID: "d-forged"}},
		{"fail/weak_key", newCSR(t, weak), devbind.Request{DeviceID: "d-weak"}},
		{"fail/format", good, devbind.Request{DeviceID: "d-format", Format: "floppy"}},
		{"fail/posture", good, devbind.Request{DeviceID: "d-posture", Posture: "fine"}},
		{"fail/no_device_id", good, devbind.Request{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Enroll(t.Context(), tc.csr, tc.req); !errors.Is(err, devbind.ErrInvalid) {
				t.Fatalf("Enroll: %v, want ErrInvalid", err)
			}
			if tc.req.DeviceID == "" {
				return
			}
			if _, err := st.GetDevice(t.Context(), tc.req.DeviceID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("refused request stored device %s: %v", tc.req.DeviceID, err)
			}
		})
	}

	t.Run("ok/bound_to_the_csr_key", func(t *testing.T) {
		d, err := e.Enroll(t.Context(), good, devbind.Request{DeviceID: "d-ok", Format: "apple", Posture: store.ComplianceCompliant})
		if err != nil {
			t.Fatal(err)
		}
		if d.Key != nil || !key.PublicKey.Equal(d.Leaf.PublicKey) {
			t.Fatalf("leaf is not for the CSR's key (or a key was made: %v)", d.Key != nil)
		}
		if len(d.Certificate.Certificate) != 2 {
			t.Fatalf("chain has %d certificates, want leaf and issuing CA", len(d.Certificate.Certificate))
		}
		b, err := st.GetCertBySerial(t.Context(), d.Binding.Serial)
		if err != nil || b.DeviceID != "d-ok" || !b.Attested {
			t.Fatalf("binding %+v, %v", b, err)
		}
		dev, err := st.GetDevice(t.Context(), "d-ok")
		if err != nil || dev.Platform != "apple" || dev.Posture.State != store.ComplianceCompliant {
			t.Fatalf("device %+v, %v", dev, err)
		}
	})
}
