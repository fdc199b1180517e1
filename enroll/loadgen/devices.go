package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/store/atomicfile"
	"hardbound/store/policy"
)

// devDeviceRequest and devDeviceResponse are the JSON shapes of admin's
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

// deviceIDPattern is what a device id may be here: it becomes a file name.
var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// DevicesConfig configures MakeDevices.
type DevicesConfig struct {
	// N devices are made, Concurrency requests at a time; both at least 1.
	N, Concurrency int
	// Out is the output directory, created 0700. Required.
	Out string
	// Format is the attestation format recorded: "tpm", "apple",
	// "android-key" or "none".
	Format string
	// Profile is the enrollment profile.
	Profile string
	// Posture is the initial posture: "compliant", "noncompliant" or
	// "unknown".
	Posture string
	// Prefix starts every device id; default "bench-<random>-".
	Prefix string
	// RootCAFile is the root that signs the RADIUS server's chain (the
	// admin API's trust anchor too), copied to <Out>/ca.crt for the
	// supplicants.
	RootCAFile string
	// API makes the admin API requests. Required.
	API API
	// Progress, if set, hears each device made (done of N); it is called
	// from the request goroutines, concurrently.
	Progress func(done, n int)
}

// DevicesReport is the outcome of MakeDevices.
type DevicesReport struct {
	Created int
	Elapsed time.Duration
	Out     string
	// Err is the failure that stopped the run, if one did.
	Err error
}

// MakeDevices generates a P-256 key per device locally, sends its CSR to
// POST /api/v1/dev/devices (the server binds it with test attestation
// evidence; it refuses outside --dev) and writes <Out>/<id>.crt (leaf +
// issuing CA), <Out>/<id>.key (mode 0600) and <Out>/ca.crt: the layout
// radius/loadgen's Certs.Dir reads. It returns an error only when it
// cannot start; the first device that fails stops the run and is the
// report's Err.
func MakeDevices(ctx context.Context, cfg DevicesConfig) (DevicesReport, error) {
	if err := cfg.Validate(); err != nil {
		return DevicesReport{}, err
	}
	if cfg.API == nil {
		return DevicesReport{}, errors.New("the admin API is required")
	}
	// The default prefix makes valid ids by construction.
	prefix, err := prefixOr(cfg.Prefix, "bench-")
	if err != nil {
		return DevicesReport{}, err
	}
	if err := os.MkdirAll(cfg.Out, 0o700); err != nil {
		return DevicesReport{}, err
	}
	root, err := os.ReadFile(cfg.RootCAFile)
	if err != nil {
		return DevicesReport{}, fmt.Errorf("root CA: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(cfg.Out, "ca.crt"), root, 0o644); err != nil {
		return DevicesReport{}, err
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
	for range min(cfg.Concurrency, cfg.N) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.N) {
					return
				}
				id := fmt.Sprintf("%s%06d", prefix, i)
				if err := makeDevice(ctx, cfg, id); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("device %s: %w", id, err); cancel() })
					return
				}
				d := done.Add(1)
				if cfg.Progress != nil {
					cfg.Progress(int(d), cfg.N)
				}
			}
		})
	}
	wg.Wait()
	return DevicesReport{Created: int(done.Load()), Elapsed: time.Since(start), Out: cfg.Out, Err: firstErr}, nil
}

// Validate checks the options, without reading a file or asking a server;
// MakeDevices calls it first.
func (cfg DevicesConfig) Validate() error {
	switch {
	case cfg.Out == "":
		return errors.New("an output directory is required")
	case cfg.N < 1:
		return errors.New("n must be at least 1")
	case cfg.Concurrency < 1:
		return errors.New("concurrency must be at least 1")
	}
	if !policy.Known(cfg.Format) {
		return fmt.Errorf("format %q: want tpm, apple, android-key or none", cfg.Format)
	}
	switch cfg.Posture {
	case "compliant", "noncompliant", "unknown":
	default:
		return fmt.Errorf("posture %q: want compliant, noncompliant or unknown", cfg.Posture)
	}
	if cfg.Prefix != "" && !deviceIDPattern.MatchString(cfg.Prefix+"000000") {
		return fmt.Errorf("prefix %q makes invalid device ids", cfg.Prefix)
	}
	return nil
}

func makeDevice(ctx context.Context, cfg DevicesConfig, id string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	var resp devDeviceResponse
	req := devDeviceRequest{DeviceID: id, CSR: base64.StdEncoding.EncodeToString(csr), Format: cfg.Format, Profile: cfg.Profile, Posture: cfg.Posture}
	if err := cfg.API(ctx, "POST", "/api/v1/dev/devices", req, &resp); err != nil {
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
	if err := atomicfile.Write(filepath.Join(cfg.Out, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(cfg.Out, name+".crt"), []byte(resp.Certificate), 0o644)
}

// WriteText writes the report as hardbound bench make-devices prints it.
func (r DevicesReport) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "created %d device(s) in %s (%.1f/s) in %s\n", r.Created, r.Elapsed.Round(time.Millisecond),
		float64(r.Created)/r.Elapsed.Seconds(), r.Out)
	return err
}
