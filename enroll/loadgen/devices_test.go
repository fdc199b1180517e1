package loadgen

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testIssuer stands in for the --dev server's POST /api/v1/dev/devices:
// it signs the CSR's key with a throwaway CA, and answer may spoil the
// response to exercise MakeDevices' checks.
type testIssuer struct {
	t       *testing.T
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	rootPEM []byte

	mu   sync.Mutex
	reqs []devDeviceRequest
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadgen test root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{t: t, ca: c, caKey: key, rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// api answers one request with the signed certificate, passed through
// answer first.
func (ti *testIssuer) api(answer func(*devDeviceResponse)) API {
	return func(_ context.Context, method, path string, body, out any) error {
		req, ok := body.(devDeviceRequest)
		if method != "POST" || path != "/api/v1/dev/devices" || !ok {
			return errors.New("unexpected request " + method + " " + path)
		}
		ti.mu.Lock()
		ti.reqs = append(ti.reqs, req)
		ti.mu.Unlock()
		der, err := base64.StdEncoding.DecodeString(req.CSR)
		if err != nil {
			return err
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return err
		}
		leaf, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: req.DeviceID},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			ti.ca, csr.PublicKey, ti.caKey)
		if err != nil {
			return err
		}
		resp := out.(*devDeviceResponse)
		*resp = devDeviceResponse{DeviceID: req.DeviceID, Serial: "02",
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf})) + string(ti.rootPEM)}
		if answer != nil {
			answer(resp)
		}
		return nil
	}
}

func TestMakeDevices(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t)
	root := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(root, ti.rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "devs")
	rep, err := MakeDevices(context.Background(), DevicesConfig{N: 5, Concurrency: 2, Out: out, Format: "apple", Profile: "default",
		Posture: "noncompliant", Prefix: "t-", RootCAFile: root, API: ti.api(nil)})
	if err != nil || rep.Err != nil || rep.Created != 5 || rep.Out != out {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 11 { // 5 x (crt, key) + ca.crt
		t.Fatalf("%d files in %s: %v", len(ents), out, err)
	}
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(de.Name(), ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", de.Name(), fi.Mode().Perm())
		}
	}
	if b, err := os.ReadFile(filepath.Join(out, "ca.crt")); err != nil || !bytes.Equal(b, ti.rootPEM) {
		t.Errorf("ca.crt is not the root: %v", err)
	}
	for i := range 5 {
		id := fmt.Sprintf("t-%06d", i)
		if _, err := tls.LoadX509KeyPair(filepath.Join(out, id+".crt"), filepath.Join(out, id+".key")); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for _, r := range ti.reqs {
		if r.Format != "apple" || r.Profile != "default" || r.Posture != "noncompliant" || !strings.HasPrefix(r.DeviceID, "t-") {
			t.Errorf("request %+v", r)
		}
	}
}

// The first device that fails stops the run; it is the report's error,
// and no file is written for it.
func TestMakeDevicesStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t)
	root := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(root, ti.rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	errServer := errors.New("server: test enrollment is only available in --dev mode (HTTP 403)")
	for name, api := range map[string]API{
		"api-error": func(context.Context, string, string, any, any) error { return errServer },
		"no-pem":    ti.api(func(r *devDeviceResponse) { r.Certificate = "not PEM" }),
		"not-a-certificate": ti.api(func(r *devDeviceResponse) {
			r.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
		}),
		"another-key": ti.api(func(r *devDeviceResponse) { r.Certificate = string(ti.rootPEM) }),
		"unsafe-id":   ti.api(func(r *devDeviceResponse) { r.DeviceID = "../escape" }),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			rep, err := MakeDevices(context.Background(), DevicesConfig{N: 3, Concurrency: 1, Out: out, Format: "tpm", Posture: "compliant",
				RootCAFile: root, API: api})
			if err != nil || rep.Err == nil || rep.Created != 0 {
				t.Fatalf("report %+v, err %v", rep, err)
			}
			if name == "api-error" && !errors.Is(rep.Err, errServer) {
				t.Errorf("err %v does not wrap the API's", rep.Err)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 1 {
				t.Errorf("%d files, want ca.crt alone", len(ents))
			}
		})
	}
}

func TestMakeDevicesRefusesConfig(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t)
	root := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(root, ti.rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	good := DevicesConfig{N: 1, Concurrency: 1, Format: "tpm", Posture: "compliant", RootCAFile: root, API: ti.api(nil)}
	for name, mod := range map[string]func(*DevicesConfig){
		"no-out":         func(c *DevicesConfig) { c.Out = "" },
		"no-devices":     func(c *DevicesConfig) { c.N = 0 },
		"no-concurrency": func(c *DevicesConfig) { c.Concurrency = 0 },
		"no-api":         func(c *DevicesConfig) { c.API = nil },
		"bad-format":     func(c *DevicesConfig) { c.Format = "sgx" },
		"bad-posture":    func(c *DevicesConfig) { c.Posture = "fine" },
		"bad-prefix":     func(c *DevicesConfig) { c.Prefix = "a/b" },
		"long-prefix":    func(c *DevicesConfig) { c.Prefix = strings.Repeat("p", 60) },
		"no-root":        func(c *DevicesConfig) { c.RootCAFile = filepath.Join(t.TempDir(), "absent") },
	} {
		cfg := good
		cfg.Out = filepath.Join(t.TempDir(), "devs")
		mod(&cfg)
		if rep, err := MakeDevices(context.Background(), cfg); err == nil || rep != (DevicesReport{}) {
			t.Errorf("%s: report %+v, err %v", name, rep, err)
		}
	}
	good.Out = filepath.Join(t.TempDir(), "devs")
	rep, err := MakeDevices(context.Background(), good)
	if err != nil || rep.Created != 1 || !strings.HasPrefix(ti.reqs[len(ti.reqs)-1].DeviceID, "bench-") {
		t.Errorf("good config: report %+v, err %v", rep, err)
	}
}

func TestDevicesReportWriteText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := (DevicesReport{Created: 5, Elapsed: 1234567 * time.Microsecond, Out: "devs"}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if want := "created 5 device(s) in 1.235s (4.1/s) in devs\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}
