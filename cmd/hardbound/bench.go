package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"hardbound/eaptls"
	"hardbound/radius/eapclient"
)

func newBenchCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generators: EAP-TLS authentications, test devices, enrollments",
	}
	cmd.AddCommand(newBenchEAPTLSCmd(e, cf), newBenchMakeDevicesCmd(e, cf), newBenchEnrollCmd(e, cf), newBenchTLSBaselineCmd(e))
	return cmd
}

type benchEAPFlags struct {
	server, secret, secretFile, ca      string
	cert, key, certDir, tlsVersion      string
	serverName, identity, portType, nas string
	concurrency, count, framedMTU       int
	retries                             int
	duration, timeout                   time.Duration
}

func newBenchEAPTLSCmd(e *env, cf *clientFlags) *cobra.Command {
	f := &benchEAPFlags{}
	cmd := &cobra.Command{
		Use:   "eaptls",
		Short: "Drive EAP-TLS authentications against a RADIUS server and report rate and latency",
		Long: `eaptls acts as a NAS: it keeps --concurrency EAP-TLS conversations in flight
against --server (any RFC 2865/3579 RADIUS server, FreeRADIUS included), each
worker with its own UDP socket. Every reply's Response Authenticator and
Message-Authenticator are verified, lost replies are retransmitted, and the
MS-MPPE keys of every Access-Accept are compared with the supplicant's MSK.

Certificates come from --cert/--key or from --cert-dir (the layout written by
"bench make-devices": <id>.crt, <id>.key, ca.crt), used one conversation per
certificate in turn. The server certificate is verified against --ca; with
--server-name its name is checked too (like wpa_supplicant's domain_match).

Exit status 1 if any authentication timed out, failed or had mismatched
keys; rejects are results, not failures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEAPTLS(cmd.Context(), e, f, cf.json)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "127.0.0.1:1812", "RADIUS authentication server host:port")
	fl.StringVar(&f.secret, "secret", "", "RADIUS shared secret (prefer --secret-file)")
	fl.StringVar(&f.secretFile, "secret-file", "", "file holding the RADIUS shared secret (serve --dev writes data/radius.secret)")
	fl.StringVar(&f.ca, "ca", "", "PEM CA bundle that verifies the RADIUS server certificate (default <cert-dir>/ca.crt)")
	fl.StringVar(&f.cert, "cert", "", "client certificate chain (PEM)")
	fl.StringVar(&f.key, "key", "", "client private key (PEM)")
	fl.StringVar(&f.certDir, "cert-dir", "", "directory of <id>.crt/<id>.key pairs (bench make-devices --out)")
	fl.StringVar(&f.tlsVersion, "tls", "1.3", "TLS version: 1.2 or 1.3")
	fl.StringVar(&f.serverName, "server-name", "", "expected name in the RADIUS server certificate (default: chain check only)")
	fl.StringVar(&f.identity, "identity", "anonymous", "EAP-Response/Identity and User-Name")
	fl.StringVar(&f.portType, "port-type", "ethernet", "NAS-Port-Type: ethernet or wireless")
	fl.StringVar(&f.nas, "nas-identifier", "hardbound-bench", "NAS-Identifier")
	fl.IntVar(&f.concurrency, "concurrency", 8, "conversations in flight (one worker and UDP socket each)")
	fl.IntVar(&f.count, "count", 0, "number of authentications (default 1000 unless --duration)")
	fl.DurationVar(&f.duration, "duration", 0, "run for this long instead of --count")
	fl.IntVar(&f.framedMTU, "framed-mtu", 1400, "Framed-MTU sent and used by the supplicant for its fragments")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Second, "wait for one reply before retransmitting")
	fl.IntVar(&f.retries, "retries", 2, "retransmissions of one request before giving up")
	return cmd
}

// benchPeer is one client certificate, ready for the supplicant.
type benchPeer struct {
	name string
	tls  *tls.Config
}

func (f *benchEAPFlags) load() (secret []byte, peers []benchPeer, err error) {
	switch {
	case f.secret != "" && f.secretFile != "":
		return nil, nil, errors.New("use --secret or --secret-file, not both")
	case f.secretFile != "":
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, nil, fmt.Errorf("secret: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	default:
		secret = []byte(f.secret)
	}
	if len(secret) == 0 {
		return nil, nil, errors.New("a RADIUS secret is required (--secret-file or --secret)")
	}
	var version uint16
	switch f.tlsVersion {
	case "1.2":
		version = tls.VersionTLS12
	case "1.3":
		version = tls.VersionTLS13
	default:
		return nil, nil, fmt.Errorf("--tls %q: want 1.2 or 1.3", f.tlsVersion)
	}
	caPath := f.ca
	if caPath == "" && f.certDir != "" {
		caPath = filepath.Join(f.certDir, "ca.crt")
	}
	if caPath == "" {
		return nil, nil, errors.New("--ca is required to verify the RADIUS server certificate")
	}
	pemCA, err := os.ReadFile(caPath)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		return nil, nil, fmt.Errorf("ca: %s holds no PEM certificate", caPath)
	}
	type pair struct{ name, cert, key string }
	var pairs []pair
	switch {
	case f.certDir != "" && (f.cert != "" || f.key != ""):
		return nil, nil, errors.New("use --cert/--key or --cert-dir, not both")
	case f.certDir != "":
		ents, err := os.ReadDir(f.certDir)
		if err != nil {
			return nil, nil, fmt.Errorf("cert-dir: %w", err)
		}
		for _, de := range ents {
			name, ok := strings.CutSuffix(de.Name(), ".crt")
			if !ok || name == "ca" || de.IsDir() {
				continue
			}
			pairs = append(pairs, pair{name, filepath.Join(f.certDir, de.Name()), filepath.Join(f.certDir, name+".key")})
		}
		if len(pairs) == 0 {
			return nil, nil, fmt.Errorf("cert-dir %s: no <id>.crt files", f.certDir)
		}
	case f.cert != "" && f.key != "":
		pairs = []pair{{filepath.Base(f.cert), f.cert, f.key}}
	default:
		return nil, nil, errors.New("client certificates are required: --cert and --key, or --cert-dir")
	}
	for _, p := range pairs {
		kp, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		peers = append(peers, benchPeer{name: p.name, tls: supplicantTLS(roots, f.serverName, version, kp)})
	}
	return secret, peers, nil
}

// supplicantTLS is the supplicant's config for one certificate. Without a
// server name it verifies only the chain, as a supplicant configured with a
// CA certificate and no domain does.
func supplicantTLS(roots *x509.CertPool, serverName string, version uint16, kp tls.Certificate) *tls.Config {
	c := &tls.Config{
		RootCAs: roots, ServerName: serverName, MinVersion: version, MaxVersion: version,
		// GetClientCertificate rather than Certificates: the client must
		// present its cert even when the server names other CAs.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil },
		// Small ClientHello (no hybrid post-quantum share): what common
		// supplicants send today; eaptls.Peer defaults to the same.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if serverName == "" {
		c.InsecureSkipVerify = true // replaced by the chain check below
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		}
	}
	return c
}

// benchReport is the --json output.
type benchReport struct {
	Server      string `json:"server"`
	TLS         string `json:"tls"`
	Concurrency int    `json:"concurrency"`
	Certs       int    `json:"certificates"`
	eapclient.Summary
	ErrorSamples []string `json:"error_samples,omitempty"`
}

func runBenchEAPTLS(ctx context.Context, e *env, f *benchEAPFlags, asJSON bool) error {
	secret, peers, err := f.load()
	if err != nil {
		return err
	}
	if f.concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	if f.count < 0 || f.duration < 0 {
		return errors.New("--count and --duration must not be negative")
	}
	if f.count > 0 && f.duration > 0 {
		return errors.New("use --count or --duration, not both")
	}
	count := f.count
	if count == 0 && f.duration == 0 {
		count = 1000
	}
	var portType uint32
	switch f.portType {
	case "ethernet":
		portType = eapclient.PortTypeEthernet
	case "wireless":
		portType = eapclient.PortTypeWireless
	default:
		return fmt.Errorf("--port-type %q: want ethernet or wireless", f.portType)
	}
	clients := make([]*eapclient.Client, f.concurrency)
	for i := range clients {
		c, err := eapclient.New(eapclient.Config{
			Server: f.server, Secret: secret, NASIdentifier: f.nas, FramedMTU: f.framedMTU,
			PortType: portType, Timeout: f.timeout, Retries: max(f.retries, -1),
		})
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}

	// stop ends the starting of new conversations (--duration, Ctrl-C);
	// conversations in flight finish under ctx with their own timeouts.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	if f.duration > 0 {
		var cancel context.CancelFunc
		stopCtx, cancel = context.WithTimeout(stopCtx, f.duration)
		defer cancel()
	}
	var (
		next    atomic.Int64
		total   eapclient.Stats
		wg      sync.WaitGroup
		errMu   sync.Mutex
		samples []string
	)
	sample := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if s := err.Error(); len(samples) < 5 && !slices.Contains(samples, s) {
			samples = append(samples, s)
		}
	}
	start := time.Now()
	progressDone := startProgress(e.stderr, &total, count, f.duration, start)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stopCtx.Err() == nil {
				n := next.Add(1) - 1
				if count > 0 && n >= int64(count) {
					return
				}
				bp := peers[n%int64(len(peers))]
				peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{TLS: bp.tls, Identity: f.identity, MTU: f.framedMTU})
				res, err := c.Authenticate(ctx, peer)
				peer.Close()
				if err != nil {
					sample(fmt.Errorf("%s: %w", bp.name, err))
				} else if res.Accepted && !res.KeysMatch {
					sample(fmt.Errorf("%s: MS-MPPE keys absent or different from the MSK", bp.name))
				}
				total.Add(res, err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	progressDone()
	sum := total.Summarize(elapsed)
	rep := benchReport{Server: f.server, TLS: f.tlsVersion, Concurrency: f.concurrency, Certs: len(peers), Summary: sum, ErrorSamples: samples}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBenchReport(e.stdout, rep)
	}
	if bad := sum.Timeouts + sum.Errors + sum.KeyMismatches; bad > 0 {
		if !asJSON {
			fmt.Fprintf(e.stderr, "hardbound: %d of %d authentications failed\n", bad, sum.Auths)
		}
		return errSilent
	}
	return nil
}

func printBenchReport(w io.Writer, r benchReport) {
	s := r.Summary
	fmt.Fprintf(w, "EAP-TLS against %s, TLS %s, concurrency %d, %d certificate(s)\n", r.Server, r.TLS, r.Concurrency, r.Certs)
	fmt.Fprintf(w, "  authentications  %d in %.2fs: %.1f/s\n", s.Auths, s.Elapsed.Seconds(), s.AuthsPerSecond)
	fmt.Fprintf(w, "  accepts          %d\n", s.Accepts)
	fmt.Fprintf(w, "  rejects          %d\n", s.Rejects)
	reasons := make([]string, 0, len(s.RejectReasons))
	for k := range s.RejectReasons {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, "    %6d  %s\n", s.RejectReasons[k], k)
	}
	fmt.Fprintf(w, "  timeouts         %d\n", s.Timeouts)
	fmt.Fprintf(w, "  errors           %d\n", s.Errors)
	fmt.Fprintf(w, "  key mismatches   %d\n", s.KeyMismatches)
	fmt.Fprintf(w, "  latency          p50 %v  p95 %v  p99 %v  max %v\n", round(s.P50), round(s.P95), round(s.P99), round(s.Max))
	fmt.Fprintf(w, "  round trips      %.2f per authentication\n", s.RoundTripsPer)
	fmt.Fprintf(w, "  retransmits      %d (discarded replies %d)\n", s.Retransmits, s.Discarded)
	for _, m := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", m)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// startProgress prints a live line on stderr when it is a terminal, every
// 500ms, and returns a func that stops it and clears the line.
func startProgress(w io.Writer, st *eapclient.Stats, count int, d time.Duration, start time.Time) func() {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
			}
			auths, accepts, rejects, failures := st.Counts()
			el := time.Since(start)
			goal := ""
			switch {
			case count > 0:
				goal = fmt.Sprintf("/%d", count)
			case d > 0:
				goal = fmt.Sprintf(" (%.0fs/%.0fs)", el.Seconds(), d.Seconds())
			}
			fmt.Fprintf(f, "\r\033[K%d%s auths, %.0f/s, %d accepted, %d rejected, %d failed",
				auths, goal, float64(auths)/el.Seconds(), accepts, rejects, failures)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
