package loadgen

import (
	"fmt"

	"github.com/spf13/pflag"
)

// The command-line flags of `hardbound bench enroll` and `hardbound bench
// make-devices` live beside the configs they set, with their defaults, so
// that the commands only wire.

// EnrollHelp describes an enrollment run for `hardbound bench enroll --help`.
const EnrollHelp = `enroll runs --count enrollments per protocol, --concurrency at a time per
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

A server outside --dev refuses the test evidence, and so the ACME half.`

// MakeDevicesHelp describes MakeDevices for `hardbound bench make-devices
// --help`.
const MakeDevicesHelp = `make-devices generates a P-256 key per device locally, sends its CSR to
POST /api/v1/dev/devices (the server binds it with test attestation evidence;
it refuses outside --dev) and writes <out>/<id>.crt (leaf + issuing CA),
<out>/<id>.key (mode 0600) and <out>/ca.crt (the root, from --ca-file), the
layout "bench eaptls --cert-dir" reads.`

// Flags are the flags of an enrollment run: the Config's fields and the
// protocol choice that Resolve turns into Config.ACME and Config.SCEP.
type Flags struct {
	Config
	protocol string
}

// RegisterFlags defines the flags on fs.
func (f *Flags) RegisterFlags(fs *pflag.FlagSet) {
	c := &f.Config
	fs.StringVar(&c.URL, "enroll-url", "https://127.0.0.1:8443", "enrollment listener base URL")
	fs.StringVar(&f.protocol, "protocol", "both", "acme, scep or both")
	fs.StringVar(&c.Profile, "profile", "", "SCEP enrollment profile (default: the server's default)")
	fs.StringVar(&c.Format, "format", "tpm", "ACME attestation format: tpm, apple or android-key")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "the --dev server's data dir (for dev-attest/)")
	fs.StringVar(&c.Prefix, "prefix", "", "device id / serial prefix (default enroll-<random>-)")
	fs.IntVar(&c.Count, "count", 100, "enrollments per protocol")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "enrollments in flight per protocol")
}

// Resolve is the Config the flags set, with the enrollment listener
// verified by caFile, checked (Validate); the caller adds the API.
func (f *Flags) Resolve(caFile string) (Config, error) {
	c := f.Config
	switch f.protocol {
	case "acme", "scep", "both":
		c.ACME, c.SCEP = f.protocol != "scep", f.protocol != "acme"
	default:
		return c, fmt.Errorf("--protocol %q: want acme, scep or both", f.protocol)
	}
	c.CAFile = caFile
	return c, c.Validate()
}

// RegisterFlags defines make-devices' flags on fs.
func (c *DevicesConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.N, "n", 1000, "number of devices")
	fs.StringVar(&c.Out, "out", "", "output directory (created 0700)")
	fs.StringVar(&c.Format, "format", "tpm", "attestation format recorded: tpm, apple, android-key or none")
	fs.StringVar(&c.Profile, "profile", "default", "enrollment profile")
	fs.StringVar(&c.Posture, "posture", "compliant", "initial posture: compliant, noncompliant or unknown")
	fs.StringVar(&c.Prefix, "prefix", "", "device id prefix (default bench-<random>-)")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "requests in flight")
}
