package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The command-line flags of `hardbound bench eaptls` and `hardbound bench
// tls-baseline` live beside the configs they set, with their defaults, so
// that the commands only wire.

// EAPTLSHelp describes an EAP-TLS run for `hardbound bench eaptls --help`.
const EAPTLSHelp = `eaptls acts as a NAS: it keeps --concurrency EAP-TLS conversations in flight
against --server (any RFC 2865/3579 RADIUS server, FreeRADIUS included), each
worker with its own UDP socket. Every reply's Response Authenticator and
Message-Authenticator are verified, lost replies are retransmitted, and the
MS-MPPE keys of every Access-Accept are compared with the supplicant's MSK.

Certificates come from --cert/--key or from --cert-dir (the layout written by
"bench make-devices": <id>.crt, <id>.key, ca.crt), used one conversation per
certificate in turn. The server certificate is verified against --ca; with
--server-name its name is checked too (like wpa_supplicant's domain_match).

Exit status 1 if any authentication timed out, failed or had mismatched
keys; rejects are results, not failures.`

// BaselineHelp describes the TLS baseline for `hardbound bench tls-baseline
// --help`.
const BaselineHelp = `tls-baseline runs the handshake EAP-TLS carries, without EAP or RADIUS:
with --listen it is a TLS server (RequireAndVerifyClientCert against
--client-ca, no session tickets, TLS 1.3 sends one application byte like
EAP-TLS's success indication); with --connect it drives --count handshakes,
--concurrency at a time, with the certificates of --cert-dir. Read the
server's CPU from /proc/<pid>/stat before and after (see BENCHMARKS.md).`

// Flags are the flags of an EAP-TLS run: the Config's fields, and the
// secret and RADIUS/TLS settings that Resolve turns into Config.Secret and
// Config.RadSec.
type Flags struct {
	Config
	secret, secretFile string
	radsec             bool
	rs                 RadSec
}

// RegisterFlags defines the flags on fs.
func (f *Flags) RegisterFlags(fs *pflag.FlagSet) {
	c := &f.Config
	fs.StringVar(&c.Server, "server", "127.0.0.1:1812", "RADIUS authentication server host:port")
	fs.StringVar(&f.secret, "secret", "", "RADIUS shared secret (prefer --secret-file)")
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the RADIUS shared secret (serve --dev writes data/radius.secret)")
	fs.StringVar(&c.CA, "ca", "", "PEM CA bundle that verifies the RADIUS server certificate (default <cert-dir>/ca.crt)")
	fs.StringVar(&c.Cert, "cert", "", "client certificate chain (PEM)")
	fs.StringVar(&c.Key, "key", "", "client private key (PEM)")
	fs.StringVar(&c.Dir, "cert-dir", "", "directory of <id>.crt/<id>.key pairs (bench make-devices --out)")
	fs.StringVar(&c.TLSVersion, "tls", "1.3", "TLS version: 1.2 or 1.3")
	fs.StringVar(&c.ServerName, "server-name", "", "expected name in the RADIUS server certificate (default: chain check only)")
	fs.StringVar(&c.Identity, "identity", "anonymous", "EAP-Response/Identity and User-Name")
	fs.StringVar(&c.PortType, "port-type", "ethernet", "NAS-Port-Type: ethernet or wireless")
	fs.StringVar(&c.NASIdentifier, "nas-identifier", "hardbound-bench", "NAS-Identifier")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "conversations in flight (one worker and UDP socket each)")
	fs.IntVar(&c.Count, "count", 0, "number of authentications (default 1000 unless --duration)")
	fs.DurationVar(&c.Duration, "duration", 0, "run for this long instead of --count")
	fs.IntVar(&c.FramedMTU, "framed-mtu", 1400, "Framed-MTU sent and used by the supplicant for its fragments")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "wait for one reply before retransmitting")
	fs.IntVar(&c.Retries, "retries", 2, "retransmissions of one request before giving up")
	fs.BoolVar(&c.Resume, "resume", false, "each certificate keeps its TLS session and resumes it from the server's ticket (report: share resumed, round trips of each kind)")
	fs.BoolVar(&f.radsec, "radsec", false, "RADIUS/TLS to --server (e.g. 127.0.0.1:2083), one TLS connection per worker")
	fs.StringVar(&f.rs.Cert, "nas-cert", "", "--radsec: NAS certificate chain (hardbound nas issue's NAME.crt)")
	fs.StringVar(&f.rs.Key, "nas-key", "", "--radsec: NAS private key (NAME.key)")
	fs.StringVar(&f.rs.CA, "nas-ca", "", "--radsec: CA bundle verifying the RADIUS/TLS server (ca.crt)")
	fs.StringVar(&f.rs.ServerName, "nas-server-name", "", "--radsec: name checked in the server certificate (default the --server host)")
	fs.BoolVar(&f.rs.Shared, "radsec-shared", false, "--radsec: all workers over one TLS connection instead of one each")
}

// Resolve is the Config the flags set: with --radsec, RADIUS/TLS and its
// fixed secret; else the secret of --secret or --secret-file (exactly
// one).
func (f *Flags) Resolve() (Config, error) {
	c := f.Config
	if f.radsec {
		// RFC 6614 §2.3: the RADIUS secret of RADIUS/TLS is fixed.
		c.Secret, c.RadSec = []byte("radsec"), &f.rs
		return c, nil
	}
	secret := f.secret
	switch {
	case secret != "" && f.secretFile != "":
		return c, errors.New("use --secret or --secret-file, not both")
	case f.secretFile != "":
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return c, fmt.Errorf("secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return c, errors.New("a RADIUS secret is required (--secret-file or --secret)")
	}
	c.Secret = []byte(secret)
	return c, nil
}

// RegisterFlags defines the server role's flags of tls-baseline on fs.
func (c *BaselineServerConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "", "server: TCP address to listen on")
	fs.StringVar(&c.Cert, "cert", "", "server: certificate chain (PEM), e.g. <data>/tls/radius.crt")
	fs.StringVar(&c.Key, "key", "", "server: private key (PEM)")
	fs.StringVar(&c.ClientCA, "client-ca", "", "server: CA that issues client certificates, e.g. <data>/ca/issuing.crt")
}

// RegisterFlags defines the client role's flags of tls-baseline on fs.
func (c *BaselineConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Connect, "connect", "", "client: server TCP address")
	fs.StringVar(&c.Dir, "cert-dir", "", "client: <id>.crt/<id>.key pairs (bench make-devices --out)")
	fs.StringVar(&c.CA, "ca", "", "client: CA bundle for the server certificate (default <cert-dir>/ca.crt)")
	fs.StringVar(&c.ServerName, "server-name", "", "client: expected server name (default: chain check only)")
	fs.StringVar(&c.TLSVersion, "tls", "1.3", "client: 1.2 or 1.3")
	fs.IntVar(&c.Count, "count", 1000, "client: handshakes")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "client: handshakes in flight")
}

// BaselineFlags are the flags of tls-baseline: the server's role
// (--listen) and the client's (--connect), of which a run takes one.
type BaselineFlags struct {
	Server BaselineServerConfig
	Client BaselineConfig
}

// RegisterFlags defines both roles' flags on fs.
func (f *BaselineFlags) RegisterFlags(fs *pflag.FlagSet) {
	f.Server.RegisterFlags(fs)
	f.Client.RegisterFlags(fs)
}

// Run runs the role the flags chose. The server writes its address and
// process id to w (a CPU measurement reads /proc/<pid>/stat) and serves
// until ctx ends; the client writes its report to w, and a failed
// handshake makes the run an error naming the first.
func (f *BaselineFlags) Run(ctx context.Context, w io.Writer) error {
	switch {
	case f.Server.Listen != "" && f.Client.Connect == "":
		s, err := ListenBaseline(ctx, f.Server)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "tls-baseline listening on %s, pid %d\n", s.Addr(), os.Getpid())
		return s.Serve(ctx)
	case f.Client.Connect != "" && f.Server.Listen == "":
		rep, err := RunBaseline(ctx, f.Client)
		if err != nil {
			return err
		}
		if err := rep.WriteText(w); err != nil {
			return err
		}
		if rep.FirstErr != nil {
			return fmt.Errorf("first failure: %w", rep.FirstErr)
		}
		return nil
	}
	return errors.New("use --listen ADDR (server) or --connect ADDR (client)")
}
