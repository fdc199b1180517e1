// Package loadgen drives load against hardbound's enrollment side. Run
// enrolls devices through ACME (RFC 8555) with the device-attest-01
// challenge (draft-ietf-acme-device-attest) and through SCEP (RFC 8894),
// and reports issuances per second and latency. MakeDevices creates bound
// test devices through the admin API of a --dev server, in the layout
// radius/loadgen reads for its EAP-TLS load. Both exercise enrollment and
// the binding of devices, so they live under enroll.
//
// The package prints nothing on its own: it defines its flags beside its
// configs (flags.go), and hardbound bench (cmd/hardbound) registers them,
// turns a report into output, and lends its admin API client
// (admin/client's Do) as an API.
package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	radiusload "hardbound/radius/loadgen"

	"github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/scep/sceptest"
	"hardbound/radius/eapclient"

	"hardbound/store/policy"
)

// API makes one request to hardbound's admin API: body, when not nil, is
// sent as JSON and the JSON answer is decoded into out, when not nil; an
// answer that is not a success is an error.
type API func(ctx context.Context, method, path string, body, out any) error

// Config configures an enrollment run.
type Config struct {
	// URL is the enrollment listener's base URL (…/acme/directory and
	// …/scep below it).
	URL string
	// CAFile is the PEM root that verifies the enrollment listener.
	CAFile string
	// ACME and SCEP choose the protocols; with both, both run at once.
	ACME, SCEP bool
	// Profile is the SCEP enrollment profile; empty is the server's
	// default.
	Profile string
	// Format is the ACME attestation format: "tpm", "apple" or
	// "android-key".
	Format string
	// DataDir is the --dev server's data dir: its test attestation
	// authority in dev-attest/ makes the ACME evidence.
	DataDir string
	// Prefix starts every device id and serial; default
	// "enroll-<random>-".
	Prefix string
	// Count enrollments are made per protocol, Concurrency at a time per
	// protocol; both at least 1.
	Count, Concurrency int
	// API mints the SCEP challenges (POST /api/v1/scep/challenges) and
	// puts the ACME devices in the inventory before the clock starts
	// (POST /api/v1/inventory/import: the profiles require inventory).
	// Required.
	API API
}

// ProtocolReport is the outcome of one protocol's enrollments.
type ProtocolReport struct {
	Protocol     string        `json:"protocol"`
	Concurrency  int           `json:"concurrency"`
	Issued       int           `json:"issued"`
	Failed       int           `json:"failed"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	IssuedPerSec float64       `json:"issued_per_second"`
	P50          time.Duration `json:"p50_ns"`
	P95          time.Duration `json:"p95_ns"`
	P99          time.Duration `json:"p99_ns"`
	Max          time.Duration `json:"max_ns"`
	ErrorSamples []string      `json:"error_samples,omitempty"`
	// UntimedSetup is client work done before the clock starts (SCEP RSA
	// keys, ACME account registration).
	UntimedSetup time.Duration `json:"untimed_setup_ns"`
}

// Report holds one ProtocolReport per protocol run, ACME first; its JSON
// form is the --json output of hardbound bench enroll.
type Report []ProtocolReport

// Failed counts the failed enrollments of every protocol.
func (r Report) Failed() int {
	n := 0
	for _, p := range r {
		n += p.Failed
	}
	return n
}

// Validate checks the options, without reading a file or asking a server;
// Run calls it first.
func (cfg Config) Validate() error {
	switch {
	case cfg.Count < 1:
		return errors.New("count must be at least 1")
	case cfg.Concurrency < 1:
		return errors.New("concurrency must be at least 1")
	case !cfg.ACME && !cfg.SCEP:
		return errors.New("no protocol: want acme, scep or both")
	}
	if !policy.IsHardware(cfg.Format) {
		return fmt.Errorf("format %q: want tpm, apple or android-key", cfg.Format)
	}
	return nil
}

// enroller is one protocol's load: setup runs once per worker before the
// clock starts; the func it returns enrolls device i and returns the timed
// latency.
type enroller struct {
	name  string
	setup func(ctx context.Context, worker int) (func(ctx context.Context, i int) (time.Duration, error), error)
	// prepare runs once before the workers' setup (untimed).
	prepare func(ctx context.Context) error
}

// Run makes cfg.Count enrollments per protocol. It returns an error only
// when the run cannot start; a protocol whose setup fails (a server
// outside --dev refuses the test evidence, and so the ACME half) reports
// all its enrollments failed.
//
// acme: each worker registers its own account (an ACME client carries the
// last nonce), then per device: a fresh P-256 key, an order for a
// permanent-identifier, device-attest-01 answered with evidence from the
// test attestation authority, finalize and download. Latency covers the
// whole conversation, evidence generation included.
//
// scep: a one-time challenge is minted through the admin API (not timed),
// then a PKCSReq with a fresh RSA-2048 key (generated before the clock
// starts) is sent to <URL>/scep[/<Profile>]. Latency is the SCEP exchange
// alone.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.API == nil {
		return nil, errors.New("the admin API is required: SCEP mints its challenges and ACME adds its devices to the inventory through it")
	}
	prefix, err := prefixOr(cfg.Prefix, "enroll-")
	if err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("root CA: %s holds no PEM certificate", cfg.CAFile)
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 2 * cfg.Concurrency,
	}}
	defer hc.CloseIdleConnections()
	base := strings.TrimRight(cfg.URL, "/")

	var loads []enroller
	if cfg.ACME {
		l, err := acmeEnroller(cfg, hc, base, prefix)
		if err != nil {
			return nil, err
		}
		loads = append(loads, l)
	}
	if cfg.SCEP {
		loads = append(loads, scepEnroller(cfg, hc, base, prefix))
	}
	// All untimed setup (keys, accounts) first, so that one protocol's
	// setup never runs during the other's timed phase.
	rep := make(Report, len(loads))
	workers := make([][]func(context.Context, int) (time.Duration, error), len(loads))
	for i, l := range loads {
		rep[i], workers[i] = setupLoad(ctx, l, cfg.Count, cfg.Concurrency)
	}
	var wg sync.WaitGroup
	for i := range loads {
		if workers[i] == nil {
			continue
		}
		wg.Go(func() { runLoad(ctx, &rep[i], workers[i], cfg.Count) })
	}
	wg.Wait()
	return rep, nil
}

// prefixOr is prefix, or def followed by 6 random hex digits and a dash so
// that runs against one server do not collide.
func prefixOr(prefix, def string) (string, error) {
	if prefix != "" {
		return prefix, nil
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return def + hex.EncodeToString(b[:]) + "-", nil
}

// setupLoad does l's untimed setup and returns one enroll func per worker,
// or nil workers and the report of the failure.
func setupLoad(ctx context.Context, l enroller, count, conc int) (ProtocolReport, []func(context.Context, int) (time.Duration, error)) {
	rep := ProtocolReport{Protocol: l.name, Concurrency: conc}
	start := time.Now()
	fail := func(err error) (ProtocolReport, []func(context.Context, int) (time.Duration, error)) {
		rep.Failed = count
		rep.ErrorSamples = []string{err.Error()}
		return rep, nil
	}
	if l.prepare != nil {
		if err := l.prepare(ctx); err != nil {
			return fail(err)
		}
	}
	workers := make([]func(context.Context, int) (time.Duration, error), min(conc, count))
	for w := range workers {
		one, err := l.setup(ctx, w)
		if err != nil {
			return fail(err)
		}
		workers[w] = one
	}
	rep.UntimedSetup = time.Since(start)
	return rep, workers
}

// runLoad runs count enrollments on workers and fills rep.
func runLoad(ctx context.Context, rep *ProtocolReport, workers []func(context.Context, int) (time.Duration, error), count int) {
	var (
		mu      sync.Mutex
		lat     []time.Duration
		samples []string
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now()
	for _, one := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				d, err := one(ctx, int(i))
				mu.Lock()
				if err != nil {
					rep.Failed++
					if len(samples) < 5 {
						samples = append(samples, fmt.Sprintf("#%d: %v", i, err))
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	slices.Sort(lat)
	rep.Issued = len(lat)
	rep.IssuedPerSec = float64(len(lat)) / rep.Elapsed.Seconds()
	rep.P50, rep.P95, rep.P99 = eapclient.Percentile(lat, 50), eapclient.Percentile(lat, 95), eapclient.Percentile(lat, 99)
	rep.Max = eapclient.Percentile(lat, 100)
	rep.ErrorSamples = samples
}

func acmeEnroller(cfg Config, hc *http.Client, base, prefix string) (enroller, error) {
	auth, err := attesttest.Load(filepath.Join(cfg.DataDir, "dev-attest"))
	if err != nil {
		return enroller{}, fmt.Errorf("acme: the --dev server's test attestation authority: %w", err)
	}
	evidence := func(key *ecdsa.PrivateKey, serial, keyAuth string) ([]byte, error) {
		switch cfg.Format {
		case policy.FormatApple:
			return auth.Apple(key.Public(), serial, "UDID-"+serial, keyAuth)
		case policy.FormatAndroidKey:
			return auth.Android(key, serial, keyAuth)
		}
		return auth.TPM(key.Public(), serial, keyAuth)
	}
	prepare := func(ctx context.Context) error {
		if err := addInventory(ctx, cfg.API, platformOf(cfg.Format), "", prefix+"A", cfg.Count); err != nil {
			return fmt.Errorf("acme: %w", err)
		}
		return nil
	}
	return enroller{name: "acme", prepare: prepare, setup: func(ctx context.Context, _ int) (func(context.Context, int) (time.Duration, error), error) {
		// One account per worker: an ACME client is not safe for
		// concurrent use.
		ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		cl, err := acmetest.New(ctx, hc, base+"/acme/directory", ak, jose.ES256)
		if err != nil {
			return nil, fmt.Errorf("acme: directory: %w", err)
		}
		if err := cl.Register(ctx); err != nil {
			return nil, fmt.Errorf("acme: account: %w", err)
		}
		return func(ctx context.Context, i int) (time.Duration, error) {
			serial := fmt.Sprintf("%sA%06d", prefix, i)
			t0 := time.Now()
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return 0, err
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				return 0, err
			}
			chain, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
				return evidence(key, serial, keyAuth)
			}, csr)
			d := time.Since(t0)
			if err != nil {
				return 0, fmt.Errorf("acme: %w", err)
			}
			if len(chain) == 0 || !key.PublicKey.Equal(chain[0].PublicKey) {
				return 0, errors.New("acme: certificate is for another key")
			}
			return d, nil
		}, nil
	}}, nil
}

func scepEnroller(cfg Config, hc *http.Client, base, prefix string) enroller {
	url := base + "/scep"
	if cfg.Profile != "" {
		url += "/" + cfg.Profile
	}
	sc := &sceptest.Client{URL: url, HTTP: hc}
	// RSA key generation costs tens of milliseconds of client CPU: done
	// before the clock starts so the rate measures the server.
	keys := make([]*rsa.PrivateKey, cfg.Count)
	return enroller{
		name: "scep",
		prepare: func(ctx context.Context) error {
			// SCEP's keys are not attested: the platform only names the
			// device; the profile is the one the challenges are for.
			if err := addInventory(ctx, cfg.API, policy.PlatformLinux, cfg.Profile, prefix+"S", cfg.Count); err != nil {
				return fmt.Errorf("scep: %w", err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			var once sync.Once
			var kerr error
			for range min(cfg.Concurrency, cfg.Count) {
				wg.Go(func() {
					for ctx.Err() == nil {
						i := next.Add(1) - 1
						if i >= int64(cfg.Count) {
							return
						}
						k, err := sceptest.NewKey()
						if err != nil {
							once.Do(func() { kerr = err })
							return
						}
						keys[i] = k
					}
				})
			}
			wg.Wait()
			if kerr == nil {
				kerr = ctx.Err()
			}
			return kerr
		},
		setup: func(context.Context, int) (func(context.Context, int) (time.Duration, error), error) {
			return func(ctx context.Context, i int) (time.Duration, error) {
				return scepEnrollOne(ctx, cfg.API, sc, cfg.Profile, fmt.Sprintf("%sS%06d", prefix, i), keys[i])
			}, nil
		},
	}
}

// scepEnrollOne mints a challenge (untimed) and times the SCEP exchange.
func scepEnrollOne(ctx context.Context, api API, sc *sceptest.Client, profile, id string, key *rsa.PrivateKey) (time.Duration, error) {
	// The JSON shapes of admin's POST /api/v1/scep/challenges.
	var ch struct {
		Challenge string `json:"challenge"`
	}
	body := map[string]string{"device_id": id}
	if profile != "" {
		body["profile"] = profile
	}
	if err := api(ctx, "POST", "/api/v1/scep/challenges", body, &ch); err != nil {
		return 0, fmt.Errorf("challenge: %w", err)
	}
	t0 := time.Now()
	cert, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: ch.Challenge, Subject: pkix.Name{CommonName: id}})
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("scep: %w", err)
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return 0, errors.New("scep: certificate is for another key")
	}
	return d, nil
}

// WriteText writes the report as hardbound bench enroll prints it.
func (r Report) WriteText(w io.Writer) error {
	var b []byte
	for _, p := range r {
		b = fmt.Appendf(b, "%s enrollments, concurrency %d\n", strings.ToUpper(p.Protocol), p.Concurrency)
		b = fmt.Appendf(b, "  issued     %d in %.2fs: %.1f/s (untimed setup %.1fs)\n", p.Issued, p.Elapsed.Seconds(), p.IssuedPerSec, p.UntimedSetup.Seconds())
		b = fmt.Appendf(b, "  failed     %d\n", p.Failed)
		b = fmt.Appendf(b, "  latency    p50 %v  p95 %v  p99 %v  max %v\n", radiusload.RoundLatency(p.P50), radiusload.RoundLatency(p.P95), radiusload.RoundLatency(p.P99), radiusload.RoundLatency(p.Max))
		for _, s := range p.ErrorSamples {
			b = fmt.Appendf(b, "  error: %s\n", s)
		}
	}
	_, err := w.Write(b)
	return err
}

// inventoryBatch is how many records one import request carries (well
// under the admin API's body limit).
const inventoryBatch = 2000

type inventoryRecord struct {
	Platform string `json:"platform"`
	Serial   string `json:"serial"`
	Profile  string `json:"profile,omitempty"`
}

type inventoryReport struct {
	Added, Updated, Unchanged, Failed int
	Errors                            []struct{ ID, Error string }
}

// platformOf is the platform a bench device attesting with format has.
func platformOf(format string) string {
	switch format {
	case policy.FormatApple:
		return policy.PlatformApple
	case policy.FormatAndroidKey:
		return policy.PlatformAndroid
	}
	return policy.PlatformLinux
}

// addInventory puts the ids <prefix>000000... the workers will enroll in
// the inventory, in batches, before the clock starts.
func addInventory(ctx context.Context, api API, platform, profile, prefix string, count int) error {
	for lo := 0; lo < count; lo += inventoryBatch {
		recs := make([]inventoryRecord, 0, inventoryBatch)
		for i := lo; i < min(lo+inventoryBatch, count); i++ {
			recs = append(recs, inventoryRecord{Platform: platform, Serial: fmt.Sprintf("%s%06d", prefix, i), Profile: profile})
		}
		var rep inventoryReport
		if err := api(ctx, "POST", "/api/v1/inventory/import", map[string]any{"devices": recs}, &rep); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		if rep.Failed > 0 {
			return fmt.Errorf("inventory refused %d device(s), first %s: %s", rep.Failed, rep.Errors[0].ID, rep.Errors[0].Error)
		}
	}
	return nil
}
