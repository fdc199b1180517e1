package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"hardbound/internal/atomicfile"
	"hardbound/policy"
)

// devDeviceRequest and devDeviceResponse are the contract of
// POST /api/v1/dev/devices (served only by `serve --dev`).
type devDeviceRequest struct {
	DeviceID string `json:"device_id"`
	CSR      string `json:"csr"` // base64 (std) DER PKCS#10
	Format   string `json:"format"`
	Profile  string `json:"profile,omitempty"`
	Posture  string `json:"posture,omitempty"`
}

type devDeviceResponse struct {
	DeviceID    string `json:"device_id"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"` // PEM leaf + issuing
}

type makeDevicesFlags struct {
	n, concurrency                int
	out, format, profile, posture string
	prefix                        string
}

var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func newBenchMakeDevicesCmd(e *env, cf *clientFlags) *cobra.Command {
	f := &makeDevicesFlags{}
	cmd := &cobra.Command{
		Use:   "make-devices",
		Short: "Create N bound test devices through the admin API of a --dev server",
		Long: `make-devices generates a P-256 key per device locally, sends its CSR to
POST /api/v1/dev/devices (the server binds it with test attestation evidence;
it refuses outside --dev) and writes <out>/<id>.crt (leaf + issuing CA),
<out>/<id>.key (mode 0600) and <out>/ca.crt (the root, from --ca-file), the
layout "bench eaptls --cert-dir" reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMakeDevices(cmd.Context(), e, cf, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.n, "n", 1000, "number of devices")
	fl.StringVar(&f.out, "out", "", "output directory (created 0700)")
	fl.StringVar(&f.format, "format", policy.FormatTPM, "attestation format recorded: tpm, apple, android-key or none")
	fl.StringVar(&f.profile, "profile", policy.DefaultProfile, "enrollment profile")
	fl.StringVar(&f.posture, "posture", "compliant", "initial posture: compliant, noncompliant or unknown")
	fl.StringVar(&f.prefix, "prefix", "", "device id prefix (default bench-<random>-)")
	fl.IntVar(&f.concurrency, "concurrency", 8, "requests in flight")
	return cmd
}

func runMakeDevices(ctx context.Context, e *env, cf *clientFlags, f *makeDevicesFlags) error {
	switch {
	case f.out == "":
		return errors.New("--out DIR is required")
	case f.n < 1:
		return errors.New("--n must be at least 1")
	case f.concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	}
	if !policy.Known(f.format) {
		return fmt.Errorf("--format %q: want tpm, apple, android-key or none", f.format)
	}
	switch f.posture {
	case "compliant", "noncompliant", "unknown":
	default:
		return fmt.Errorf("--posture %q: want compliant, noncompliant or unknown", f.posture)
	}
	prefix := f.prefix
	if prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		prefix = "bench-" + hex.EncodeToString(b[:]) + "-"
	}
	if !deviceIDPattern.MatchString(prefix + "000000") {
		return fmt.Errorf("--prefix %q makes invalid device ids", prefix)
	}
	c, err := cf.client(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o700); err != nil {
		return err
	}
	// The root that signs the RADIUS server's chain is the admin API's
	// trust anchor too: copy it for the supplicants.
	caFile := cf.pick(cf.caFile, "HARDBOUND_CA_FILE", "./data/ca/root.crt", e)
	root, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("root CA: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(f.out, "ca.crt"), root, 0o644); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		done     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	for range min(f.concurrency, f.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(f.n) {
					return
				}
				id := fmt.Sprintf("%s%06d", prefix, i)
				if err := makeDevice(ctx, c, f, id); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("device %s: %w", id, err); cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "created %d device(s) in %s (%.1f/s) in %s\n", done.Load(), el.Round(time.Millisecond),
		float64(done.Load())/el.Seconds(), f.out)
	return firstErr
}

func makeDevice(ctx context.Context, c *apiClient, f *makeDevicesFlags, id string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	var resp devDeviceResponse
	req := devDeviceRequest{DeviceID: id, CSR: base64.StdEncoding.EncodeToString(csr), Format: f.format, Profile: f.profile, Posture: f.posture}
	if err := c.do(ctx, "POST", "/api/v1/dev/devices", req, &resp); err != nil {
		return err
	}
	blk, _ := pem.Decode([]byte(resp.Certificate))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("server answered without a PEM certificate")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return errors.New("server certificate is for another key")
	}
	name := resp.DeviceID
	if name == "" {
		name = id
	}
	if !deviceIDPattern.MatchString(name) {
		return fmt.Errorf("server device id %q is not a safe file name", name)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(f.out, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(f.out, name+".crt"), []byte(resp.Certificate), 0o644)
}
