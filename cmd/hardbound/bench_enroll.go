package main

import (
	"context"
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"hardbound/enroll/scep/sceptest"
	"hardbound/radius/eapclient"
)

type benchEnrollFlags struct {
	enrollURL, protocol, profile, prefix string
	count, concurrency                   int
}

func newBenchEnrollCmd(e *env, cf *clientFlags) *cobra.Command {
	f := &benchEnrollFlags{}
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Drive SCEP (and ACME device-attest-01) enrollments against a --dev server",
		Long: `enroll runs --count enrollments, --concurrency at a time, and reports
issuances per second and latency.

scep: a one-time challenge is minted through the admin API
(POST /api/v1/scep/challenges, not timed), then a PKCSReq with a fresh
RSA-2048 key (generated before the clock starts) is sent to
<enroll-url>/scep[/<profile>]. Latency is the SCEP exchange alone.

acme: device-attest-01 needs evidence from the --dev server's test
attestation authority; not available yet (see BENCHMARKS.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEnroll(cmd.Context(), e, cf, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.enrollURL, "enroll-url", "https://127.0.0.1:8443", "enrollment listener base URL")
	fl.StringVar(&f.protocol, "protocol", "scep", "scep or acme")
	fl.StringVar(&f.profile, "profile", "", "enrollment profile (default: the server's default)")
	fl.StringVar(&f.prefix, "prefix", "", "device id prefix (default enroll-<random>-)")
	fl.IntVar(&f.count, "count", 100, "number of enrollments")
	fl.IntVar(&f.concurrency, "concurrency", 8, "enrollments in flight")
	return cmd
}

type enrollReport struct {
	Protocol       string        `json:"protocol"`
	Concurrency    int           `json:"concurrency"`
	Issued         int           `json:"issued"`
	Failed         int           `json:"failed"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	IssuedPerSec   float64       `json:"issued_per_second"`
	P50            time.Duration `json:"p50_ns"`
	P95            time.Duration `json:"p95_ns"`
	P99            time.Duration `json:"p99_ns"`
	Max            time.Duration `json:"max_ns"`
	ErrorSamples   []string      `json:"error_samples,omitempty"`
	KeygenUntimedS float64       `json:"keygen_untimed_seconds"`
}

func runBenchEnroll(ctx context.Context, e *env, cf *clientFlags, f *benchEnrollFlags) error {
	switch {
	case f.count < 1:
		return errors.New("--count must be at least 1")
	case f.concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	}
	switch f.protocol {
	case "scep":
	case "acme":
		return errors.New("bench enroll --protocol acme: the --dev server does not publish its test attestation authority yet (data/dev-attest)")
	default:
		return fmt.Errorf("--protocol %q: want scep or acme", f.protocol)
	}
	prefix := f.prefix
	if prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		prefix = "enroll-" + hex.EncodeToString(b[:]) + "-"
	}
	api, err := cf.client(e)
	if err != nil {
		return err
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
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: f.concurrency,
	}}
	url := strings.TrimRight(f.enrollURL, "/") + "/scep"
	if f.profile != "" {
		url += "/" + f.profile
	}
	sc := &sceptest.Client{URL: url, HTTP: hc}

	// RSA key generation costs tens of milliseconds of client CPU: do it
	// before the clock starts so the rate measures the server.
	kt := time.Now()
	keys := make([]*rsa.PrivateKey, f.count)
	{
		var wg sync.WaitGroup
		var next atomic.Int64
		var kerr error
		var once sync.Once
		for range min(f.concurrency, f.count) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
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
			}()
		}
		wg.Wait()
		if kerr != nil {
			return kerr
		}
	}
	keygen := time.Since(kt)

	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		lat     []time.Duration
		failed  int
		samples []string
	)
	start := time.Now()
	for range min(f.concurrency, f.count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(f.count) {
					return
				}
				id := fmt.Sprintf("%s%06d", prefix, i)
				d, err := scepEnrollOne(ctx, api, sc, f.profile, id, keys[i])
				mu.Lock()
				if err != nil {
					failed++
					if s := fmt.Sprintf("%s: %v", id, err); len(samples) < 5 {
						samples = append(samples, s)
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	rep := enrollReport{
		Protocol: f.protocol, Concurrency: f.concurrency, Issued: len(lat), Failed: failed, Elapsed: el,
		IssuedPerSec: float64(len(lat)) / el.Seconds(),
		P50:          eapclient.Percentile(lat, 50), P95: eapclient.Percentile(lat, 95), P99: eapclient.Percentile(lat, 99),
		Max: eapclient.Percentile(lat, 100), ErrorSamples: samples, KeygenUntimedS: keygen.Seconds(),
	}
	if cf.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printEnrollReport(e.stdout, rep)
	}
	if failed > 0 {
		return errSilent
	}
	return nil
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
	fmt.Fprintf(w, "  issued     %d in %.2fs: %.1f/s (key generation, untimed: %.1fs)\n", r.Issued, r.Elapsed.Seconds(), r.IssuedPerSec, r.KeygenUntimedS)
	fmt.Fprintf(w, "  failed     %d\n", r.Failed)
	fmt.Fprintf(w, "  latency    p50 %v  p95 %v  p99 %v  max %v\n", round(r.P50), round(r.P95), round(r.P99), round(r.Max))
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", s)
	}
}
