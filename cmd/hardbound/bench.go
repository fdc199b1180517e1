package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	enrollload "hardbound/enroll/loadgen"
	radiusload "hardbound/radius/loadgen"
)

// The load generators live in radius/loadgen and enroll/loadgen; these
// commands only turn flags into their configs and their reports into
// output and an exit status.

func newBenchCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generators: EAP-TLS authentications, test devices, enrollments",
	}
	cmd.AddCommand(newBenchEAPTLSCmd(e, cf), newBenchMakeDevicesCmd(e, cf), newBenchEnrollCmd(e, cf), newBenchTLSBaselineCmd(e))
	return cmd
}

func newBenchEAPTLSCmd(e *env, cf *clientFlags) *cobra.Command {
	var c radiusload.Config
	var secret, secretFile string
	var useRadSec bool
	var rs radiusload.RadSec
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
			var err error
			if useRadSec {
				// RFC 6614 §2.3: the RADIUS secret of RADIUS/TLS is fixed.
				c.Secret, c.RadSec = []byte("radsec"), &rs
			} else if c.Secret, err = radiusSecret(secret, secretFile); err != nil {
				return err
			}
			if isTerminal(e.stderr) {
				c.Progress = e.stderr
			}
			rep, err := radiusload.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := printReport(e.stdout, cf.json, rep, rep.WriteText); err != nil {
				return err
			}
			if bad := rep.Failures(); bad > 0 {
				if !cf.json {
					fmt.Fprintf(e.stderr, "hardbound: %d of %d authentications failed\n", bad, rep.Auths)
				}
				return errSilent
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.Server, "server", "127.0.0.1:1812", "RADIUS authentication server host:port")
	fl.StringVar(&secret, "secret", "", "RADIUS shared secret (prefer --secret-file)")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the RADIUS shared secret (serve --dev writes data/radius.secret)")
	fl.StringVar(&c.CA, "ca", "", "PEM CA bundle that verifies the RADIUS server certificate (default <cert-dir>/ca.crt)")
	fl.StringVar(&c.Cert, "cert", "", "client certificate chain (PEM)")
	fl.StringVar(&c.Key, "key", "", "client private key (PEM)")
	fl.StringVar(&c.Dir, "cert-dir", "", "directory of <id>.crt/<id>.key pairs (bench make-devices --out)")
	fl.StringVar(&c.TLSVersion, "tls", "1.3", "TLS version: 1.2 or 1.3")
	fl.StringVar(&c.ServerName, "server-name", "", "expected name in the RADIUS server certificate (default: chain check only)")
	fl.StringVar(&c.Identity, "identity", "anonymous", "EAP-Response/Identity and User-Name")
	fl.StringVar(&c.PortType, "port-type", "ethernet", "NAS-Port-Type: ethernet or wireless")
	fl.StringVar(&c.NASIdentifier, "nas-identifier", "hardbound-bench", "NAS-Identifier")
	fl.IntVar(&c.Concurrency, "concurrency", 8, "conversations in flight (one worker and UDP socket each)")
	fl.IntVar(&c.Count, "count", 0, "number of authentications (default 1000 unless --duration)")
	fl.DurationVar(&c.Duration, "duration", 0, "run for this long instead of --count")
	fl.IntVar(&c.FramedMTU, "framed-mtu", 1400, "Framed-MTU sent and used by the supplicant for its fragments")
	fl.DurationVar(&c.Timeout, "timeout", 2*time.Second, "wait for one reply before retransmitting")
	fl.IntVar(&c.Retries, "retries", 2, "retransmissions of one request before giving up")
	fl.BoolVar(&c.Resume, "resume", false, "each certificate keeps its TLS session and resumes it from the server's ticket (report: share resumed, round trips of each kind)")
	fl.BoolVar(&useRadSec, "radsec", false, "RADIUS/TLS to --server (e.g. 127.0.0.1:2083), one TLS connection per worker")
	fl.StringVar(&rs.Cert, "nas-cert", "", "--radsec: NAS certificate chain (hardbound nas issue's NAME.crt)")
	fl.StringVar(&rs.Key, "nas-key", "", "--radsec: NAS private key (NAME.key)")
	fl.StringVar(&rs.CA, "nas-ca", "", "--radsec: CA bundle verifying the RADIUS/TLS server (ca.crt)")
	fl.StringVar(&rs.ServerName, "nas-server-name", "", "--radsec: name checked in the server certificate (default the --server host)")
	fl.BoolVar(&rs.Shared, "radsec-shared", false, "--radsec: all workers over one TLS connection instead of one each")
	return cmd
}

// radiusSecret is the RADIUS secret from --secret or --secret-file.
func radiusSecret(secret, file string) ([]byte, error) {
	switch {
	case secret != "" && file != "":
		return nil, errors.New("use --secret or --secret-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, errors.New("a RADIUS secret is required (--secret-file or --secret)")
	}
	return []byte(secret), nil
}

// isTerminal reports whether w is a terminal, where a live progress line
// belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// terminalProgress returns a Progress callback that redraws one line on a
// terminal at most ten times a second, and finishes it at the last item.
func terminalProgress(w io.Writer, what string) func(done, n int) {
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	return func(done, n int) {
		mu.Lock()
		defer mu.Unlock()
		if done < n && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(w, "\r%d/%d %s (%.0f/s)", done, n, what, rate)
		if done == n {
			fmt.Fprintln(w)
		}
	}
}

// printReport writes rep as indented JSON with --json, as text otherwise.
func printReport(w io.Writer, asJSON bool, rep any, text func(io.Writer) error) error {
	if !asJSON {
		return text(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func newBenchEnrollCmd(e *env, cf *clientFlags) *cobra.Command {
	var c enrollload.Config
	var protocol string
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
<enroll-url>/scep[/<profile>]. Latency is the SCEP exchange alone. The
key is unattested, so --profile must name a profile whose formats admit
none: SCEP issues only what the profile admits at authentication.

A server outside --dev refuses the test evidence, and so the ACME half.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch protocol {
			case "acme", "scep", "both":
				c.ACME, c.SCEP = protocol != "scep", protocol != "acme"
			default:
				return fmt.Errorf("--protocol %q: want acme, scep or both", protocol)
			}
			c.CAFile = cf.pick(cf.caFile, "HARDBOUND_CA_FILE", "./data/ca/root.crt", e)
			if err := c.Validate(); err != nil {
				return err
			}
			// SCEP mints its challenges and ACME puts its devices in the
			// inventory through the admin API.
			{
				api, err := cf.client(e)
				if err != nil {
					return err
				}
				c.API = api.do
			}
			rep, err := enrollload.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := printReport(e.stdout, cf.json, rep, rep.WriteText); err != nil {
				return err
			}
			if rep.Failed() > 0 {
				return errSilent
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.URL, "enroll-url", "https://127.0.0.1:8443", "enrollment listener base URL")
	fl.StringVar(&protocol, "protocol", "both", "acme, scep or both")
	fl.StringVar(&c.Profile, "profile", "", "SCEP enrollment profile (default: the server's default)")
	fl.StringVar(&c.Format, "format", "tpm", "ACME attestation format: tpm, apple or android-key")
	fl.StringVar(&c.DataDir, "data-dir", "./data", "the --dev server's data dir (for dev-attest/)")
	fl.StringVar(&c.Prefix, "prefix", "", "device id / serial prefix (default enroll-<random>-)")
	fl.IntVar(&c.Count, "count", 100, "enrollments per protocol")
	fl.IntVar(&c.Concurrency, "concurrency", 8, "enrollments in flight per protocol")
	return cmd
}

func newBenchMakeDevicesCmd(e *env, cf *clientFlags) *cobra.Command {
	var c enrollload.DevicesConfig
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
			if err := c.Validate(); err != nil {
				return err
			}
			api, err := cf.client(e)
			if err != nil {
				return err
			}
			c.API = api.do
			c.RootCAFile = api.caFile
			if isTerminal(e.stderr) {
				c.Progress = terminalProgress(e.stderr, "devices")
			}
			rep, err := enrollload.MakeDevices(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := rep.WriteText(e.stdout); err != nil {
				return err
			}
			return rep.Err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&c.N, "n", 1000, "number of devices")
	fl.StringVar(&c.Out, "out", "", "output directory (created 0700)")
	fl.StringVar(&c.Format, "format", "tpm", "attestation format recorded: tpm, apple, android-key or none")
	fl.StringVar(&c.Profile, "profile", "default", "enrollment profile")
	fl.StringVar(&c.Posture, "posture", "compliant", "initial posture: compliant, noncompliant or unknown")
	fl.StringVar(&c.Prefix, "prefix", "", "device id prefix (default bench-<random>-)")
	fl.IntVar(&c.Concurrency, "concurrency", 8, "requests in flight")
	return cmd
}

// newBenchTLSBaselineCmd is the yardstick for the EAP-TLS server's CPU, in
// separate processes so the server's CPU can be read from /proc exactly as
// for `serve`.
func newBenchTLSBaselineCmd(e *env) *cobra.Command {
	var srv radiusload.BaselineServerConfig
	var c radiusload.BaselineConfig
	cmd := &cobra.Command{
		Use:   "tls-baseline",
		Short: "Bare crypto/tls mutual-auth handshakes (server or client), the CPU yardstick for EAP-TLS",
		Long: `tls-baseline runs the handshake EAP-TLS carries, without EAP or RADIUS:
with --listen it is a TLS server (RequireAndVerifyClientCert against
--client-ca, no session tickets, TLS 1.3 sends one application byte like
EAP-TLS's success indication); with --connect it drives --count handshakes,
--concurrency at a time, with the certificates of --cert-dir. Read the
server's CPU from /proc/<pid>/stat before and after (see BENCHMARKS.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case srv.Listen != "" && c.Connect == "":
				s, err := radiusload.ListenBaseline(cmd.Context(), srv)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "tls-baseline listening on %s, pid %d\n", s.Addr(), os.Getpid())
				return s.Serve(cmd.Context())
			case c.Connect != "" && srv.Listen == "":
				rep, err := radiusload.RunBaseline(cmd.Context(), c)
				if err != nil {
					return err
				}
				if err := rep.WriteText(e.stdout); err != nil {
					return err
				}
				if rep.FirstErr != nil {
					return fmt.Errorf("first failure: %w", rep.FirstErr)
				}
				return nil
			}
			return errors.New("use --listen ADDR (server) or --connect ADDR (client)")
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&srv.Listen, "listen", "", "server: TCP address to listen on")
	fl.StringVar(&srv.Cert, "cert", "", "server: certificate chain (PEM), e.g. <data>/tls/radius.crt")
	fl.StringVar(&srv.Key, "key", "", "server: private key (PEM)")
	fl.StringVar(&srv.ClientCA, "client-ca", "", "server: CA that issues client certificates, e.g. <data>/ca/issuing.crt")
	fl.StringVar(&c.Connect, "connect", "", "client: server TCP address")
	fl.StringVar(&c.Dir, "cert-dir", "", "client: <id>.crt/<id>.key pairs (bench make-devices --out)")
	fl.StringVar(&c.CA, "ca", "", "client: CA bundle for the server certificate (default <cert-dir>/ca.crt)")
	fl.StringVar(&c.ServerName, "server-name", "", "client: expected server name (default: chain check only)")
	fl.StringVar(&c.TLSVersion, "tls", "1.3", "client: 1.2 or 1.3")
	fl.IntVar(&c.Count, "count", 1000, "client: handshakes")
	fl.IntVar(&c.Concurrency, "concurrency", 8, "client: handshakes in flight")
	return cmd
}
