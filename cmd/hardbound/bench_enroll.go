package main

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
	"encoding/json"
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

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/scep/sceptest"
	"hardbound/policy"
	"hardbound/radius/eapclient"
)

type benchEnrollFlags struct {
	enrollURL, protocol, profile, prefix string
	format, dataDir                      string
	count, concurrency                   int
}

func newBenchEnrollCmd(e *env, cf *clientFlags) *cobra.Command {
	f := &benchEnrollFlags{}
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Drive ACME device-attest-01 and SCEP enrollments against a --dev server",
		Long: `enroll runs --count enrollments per protocol, --concurrency at a time per
protocol (both protocols at once with --protocol both), and reports issuances
per second and latency.

acme: each worker registers its own account (an ACME client carries the last
nonce), then per device: a fresh P-256 key, an order for a
permanent-identifier, device-attest-01 answered with evidence from the --dev
server's test attestation authority (<data-dir>/dev-attest, --format tpm,
apple or android-key), finalize and download. Latency covers the whole
conversation, evidence generation included.

scep: a one-time challenge is minted through the admin API
(POST /api/v1/scep/challenges, not timed), then a PKCSReq with a fresh
RSA-2048 key (generated before the clock starts) is sent to
<enroll-url>/scep[/<profile>]. Latency is the SCEP exchange alone.

A server outside --dev refuses the test evidence, and so the ACME half.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEnroll(cmd.Context(), e, cf, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.enrollURL, "enroll-url", "https://127.0.0.1:8443", "enrollment listener base URL")
	fl.StringVar(&f.protocol, "protocol", "both", "acme, scep or both")
	fl.StringVar(&f.profile, "profile", "", "SCEP enrollment profile (default: the server's default)")
	fl.StringVar(&f.format, "format", policy.FormatTPM, "ACME attestation format: tpm, apple or android-key")
	fl.StringVar(&f.dataDir, "data-dir", "./data", "the --dev server's data dir (for dev-attest/)")
	fl.StringVar(&f.prefix, "prefix", "", "device id / serial prefix (default enroll-<random>-)")
	fl.IntVar(&f.count, "count", 100, "enrollments per protocol")
	fl.IntVar(&f.concurrency, "concurrency", 8, "enrollments in flight per protocol")
	return cmd
}

type enrollReport struct {
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

// enroller is one protocol's load: setup runs once per worker before the
// clock starts; one enrolls device i and returns the timed latency.
type enroller struct {
	name  string
	setup func(ctx context.Context, worker int) (func(ctx context.Context, i int) (time.Duration, error), error)
	// prepare runs once before the workers' setup (untimed).
	prepare func(ctx context.Context) error
}

func runBenchEnroll(ctx context.Context, e *env, cf *clientFlags, f *benchEnrollFlags) error {
	switch {
	case f.count < 1:
		return errors.New("--count must be at least 1")
	case f.concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	}
	var protos []string
	switch f.protocol {
	case "acme", "scep":
		protos = []string{f.protocol}
	case "both":
		protos = []string{"acme", "scep"}
	default:
		return fmt.Errorf("--protocol %q: want acme, scep or both", f.protocol)
	}
	if !policy.IsHardware(f.format) {
		return fmt.Errorf("--format %q: want tpm, apple or android-key", f.format)
	}
	prefix := f.prefix
	if prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		prefix = "enroll-" + hex.EncodeToString(b[:]) + "-"
	}
	caFile := cf.pick(cf.caFile, "HARDBOUND_CA_FILE", "./data/ca/root.crt", e)
	rootPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("root CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return fmt.Errorf("root CA: %s holds no PEM certificate", caFile)
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 2 * f.concurrency,
	}}
	base := strings.TrimRight(f.enrollURL, "/")

	var loads []enroller
	for _, p := range protos {
		switch p {
		case "acme":
			l, err := acmeEnroller(f, hc, base, prefix)
			if err != nil {
				return err
			}
			loads = append(loads, l)
		case "scep":
			api, err := cf.client(e)
			if err != nil {
				return err
			}
			loads = append(loads, scepEnroller(f, api, hc, base, prefix))
		}
	}
	// All untimed setup (keys, accounts) first, so that one protocol's
	// setup never runs during the other's timed phase.
	reports := make([]enrollReport, len(loads))
	workers := make([][]func(context.Context, int) (time.Duration, error), len(loads))
	for i, l := range loads {
		reports[i], workers[i] = setupEnrollLoad(ctx, l, f.count, f.concurrency)
	}
	var wg sync.WaitGroup
	for i := range loads {
		if workers[i] == nil {
			continue
		}
		wg.Go(func() { runEnrollLoad(ctx, &reports[i], workers[i], f.count) })
	}
	wg.Wait()
	failed := 0
	for _, r := range reports {
		failed += r.Failed
	}
	if cf.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	} else {
		for _, r := range reports {
			printEnrollReport(e.stdout, r)
		}
	}
	if failed > 0 {
		return errSilent
	}
	return nil
}

// setupEnrollLoad does l's untimed setup and returns one enroll func per
// worker, or nil workers (and the report of the failure).
func setupEnrollLoad(ctx context.Context, l enroller, count, conc int) (enrollReport, []func(context.Context, int) (time.Duration, error)) {
	rep := enrollReport{Protocol: l.name, Concurrency: conc}
	start := time.Now()
	fail := func(err error) (enrollReport, []func(context.Context, int) (time.Duration, error)) {
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

// runEnrollLoad runs count enrollments on workers and fills rep.
func runEnrollLoad(ctx context.Context, rep *enrollReport, workers []func(context.Context, int) (time.Duration, error), count int) {
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

func acmeEnroller(f *benchEnrollFlags, hc *http.Client, base, prefix string) (enroller, error) {
	auth, err := attesttest.Load(filepath.Join(f.dataDir, "dev-attest"))
	if err != nil {
		return enroller{}, fmt.Errorf("acme: the --dev server's test attestation authority: %w (set --data-dir)", err)
	}
	evidence := func(key *ecdsa.PrivateKey, serial, keyAuth string) ([]byte, error) {
		switch f.format {
		case policy.FormatApple:
			return auth.Apple(key.Public(), serial, "UDID-"+serial, keyAuth)
		case policy.FormatAndroidKey:
			return auth.Android(key, serial, keyAuth)
		}
		return auth.TPM(key.Public(), serial, keyAuth)
	}
	return enroller{name: "acme", setup: func(ctx context.Context, _ int) (func(context.Context, int) (time.Duration, error), error) {
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

func scepEnroller(f *benchEnrollFlags, api *apiClient, hc *http.Client, base, prefix string) enroller {
	url := base + "/scep"
	if f.profile != "" {
		url += "/" + f.profile
	}
	sc := &sceptest.Client{URL: url, HTTP: hc}
	// RSA key generation costs tens of milliseconds of client CPU: done
	// before the clock starts so the rate measures the server.
	keys := make([]*rsa.PrivateKey, f.count)
	return enroller{
		name: "scep",
		prepare: func(ctx context.Context) error {
			var next atomic.Int64
			var wg sync.WaitGroup
			var once sync.Once
			var kerr error
			for range min(f.concurrency, f.count) {
				wg.Go(func() {
					for ctx.Err() == nil {
						i := next.Add(1) - 1
						if i >= int64(f.count) {
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
				return scepEnrollOne(ctx, api, sc, f.profile, fmt.Sprintf("%sS%06d", prefix, i), keys[i])
			}, nil
		},
	}
}

// scepEnrollOne mints a challenge (untimed) and times the SCEP exchange.
func scepEnrollOne(ctx context.Context, api *apiClient, sc *sceptest.Client, profile, id string, key *rsa.PrivateKey) (time.Duration, error) {
	var ch struct {
		Challenge string `json:"challenge"`
	}
	body := map[string]string{"device_id": id}
	if profile != "" {
		body["profile"] = profile
	}
	if err := api.do(ctx, "POST", "/api/v1/scep/challenges", body, &ch); err != nil {
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

func printEnrollReport(w io.Writer, r enrollReport) {
	fmt.Fprintf(w, "%s enrollments, concurrency %d\n", strings.ToUpper(r.Protocol), r.Concurrency)
	fmt.Fprintf(w, "  issued     %d in %.2fs: %.1f/s (untimed setup %.1fs)\n", r.Issued, r.Elapsed.Seconds(), r.IssuedPerSec, r.UntimedSetup.Seconds())
	fmt.Fprintf(w, "  failed     %d\n", r.Failed)
	fmt.Fprintf(w, "  latency    p50 %v  p95 %v  p99 %v  max %v\n", round(r.P50), round(r.P95), round(r.P99), round(r.Max))
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", s)
	}
}
