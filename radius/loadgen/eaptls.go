// Package loadgen drives load against a RADIUS server's EAP-TLS: Run acts
// as a NAS with many supplicants through radius/eapclient, and the TLS
// baseline runs the same mutual-auth handshake over bare crypto/tls, the
// yardstick the server's CPU per authentication is compared with (see
// BENCHMARKS.md). Both measure the RADIUS server, so they live beside it;
// the devices they present come from enroll/loadgen's MakeDevices.
//
// The package prints nothing on its own: it defines its flags beside its
// configs (flags.go), and hardbound bench (cmd/hardbound) registers them
// and turns a Report into output.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/eaptls"
	"hardbound/radius/eapclient"
)

// Config configures an EAP-TLS run.
type Config struct {
	// Server is the RADIUS authentication server, host:port: any RFC
	// 2865/3579 server, FreeRADIUS included.
	Server string
	// Secret is the RADIUS shared secret. Required.
	Secret []byte
	// Certs are the supplicants' certificates, used one conversation per
	// certificate in turn.
	Certs
	// Identity is the EAP-Response/Identity and User-Name.
	Identity string
	// PortType is the NAS-Port-Type: "ethernet" (the default) or
	// "wireless".
	PortType string
	// NASIdentifier is sent as NAS-Identifier.
	NASIdentifier string
	// Concurrency is the number of conversations in flight, one worker
	// and UDP socket each. At least 1.
	Concurrency int
	// Count is the number of authentications; Duration, instead, runs for
	// that long. Neither means 1000 authentications.
	Count    int
	Duration time.Duration
	// FramedMTU is sent as Framed-MTU and sizes the supplicant's fragments.
	FramedMTU int
	// Timeout is the wait for one reply before retransmitting, Retries the
	// retransmissions of one request before giving up (negative: none).
	Timeout time.Duration
	Retries int
	// Resume gives each certificate a session cache of its own, as a
	// supplicant keeps one: its first authentication is a full handshake
	// and each later one offers the ticket the server issued (RFC 5077
	// for TLS 1.2, RFC 8446 PSK for TLS 1.3). Without it every
	// authentication is a full handshake.
	Resume bool
	// RadSec, when set, runs every worker over its own RADIUS/TLS
	// connection (RFC 6614) to Server, presenting the NAS certificate
	// RadSec.Cert/Key and verifying the server against RadSec.CA; Secret is
	// then "radsec".
	RadSec *RadSec
	// Progress, when set, receives a status line every 500ms, rewritten in
	// place with a carriage return and an ANSI erase-line: give it a
	// terminal.
	Progress io.Writer
}

// Report is the outcome of a run; its JSON form is the --json output of
// hardbound bench eaptls.
type Report struct {
	Server      string `json:"server"`
	TLS         string `json:"tls"`
	Concurrency int    `json:"concurrency"`
	Certs       int    `json:"certificates"`
	Resume      bool   `json:"resume"`
	eapclient.Summary
	// ErrorSamples holds up to 5 distinct failures.
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// Failures counts the authentications that timed out, failed or had
// MS-MPPE keys different from the supplicant's MSK. Rejects are results,
// not failures.
func (r Report) Failures() int { return r.Timeouts + r.Errors + r.KeyMismatches }

// Err is nil when no authentication failed (Failures), else an error
// saying how many of all failed: a run's exit status.
func (r Report) Err() error {
	if bad := r.Failures(); bad > 0 {
		return fmt.Errorf("%d of %d authentications failed", bad, r.Auths)
	}
	return nil
}

// Run keeps cfg.Concurrency EAP-TLS conversations in flight against
// cfg.Server until the count or duration is reached or ctx ends. Every
// reply's Response Authenticator and Message-Authenticator are verified,
// lost replies retransmitted, and the MS-MPPE keys of every Access-Accept
// compared with the supplicant's MSK. It returns an error only when the
// run cannot start; what happened to each authentication is in the Report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if len(cfg.Secret) == 0 {
		return Report{}, errors.New("a RADIUS secret is required")
	}
	sups, err := cfg.Certs.load()
	if err != nil {
		return Report{}, err
	}
	if cfg.Resume {
		for i := range sups {
			sups[i].tls = sups[i].tls.Clone()
			sups[i].tls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
	}
	switch {
	case cfg.Concurrency < 1:
		return Report{}, errors.New("concurrency must be at least 1")
	case cfg.Count < 0 || cfg.Duration < 0:
		return Report{}, errors.New("count and duration must not be negative")
	case cfg.Count > 0 && cfg.Duration > 0:
		return Report{}, errors.New("use a count or a duration, not both")
	}
	count := cfg.Count
	if count == 0 && cfg.Duration == 0 {
		count = 1000
	}
	var portType uint32
	switch cfg.PortType {
	case "", "ethernet":
		portType = eapclient.PortTypeEthernet
	case "wireless":
		portType = eapclient.PortTypeWireless
	default:
		return Report{}, fmt.Errorf("port type %q: want ethernet or wireless", cfg.PortType)
	}
	clients := make([]*eapclient.Client, cfg.Concurrency)
	var one *shared
	if cfg.RadSec != nil && cfg.RadSec.Shared {
		conn, err := cfg.RadSec.dial(ctx, cfg.Server)
		if err != nil {
			return Report{}, err
		}
		defer conn.Close()
		one = newShared(conn)
	}
	for i := range clients {
		ccfg := eapclient.Config{
			Server: cfg.Server, Secret: cfg.Secret, NASIdentifier: cfg.NASIdentifier, FramedMTU: cfg.FramedMTU,
			PortType: portType, Timeout: cfg.Timeout, Retries: max(cfg.Retries, -1),
		}
		switch {
		case one != nil:
			ccfg.Stream = one.view()
		case cfg.RadSec != nil:
			conn, err := cfg.RadSec.dial(ctx, cfg.Server)
			if err != nil {
				return Report{}, err
			}
			defer conn.Close()
			ccfg.Stream = conn
		}
		c, err := eapclient.New(ccfg)
		if err != nil {
			return Report{}, err
		}
		defer c.Close()
		clients[i] = c
	}

	// stop ends the starting of new conversations (Duration, ctx);
	// conversations in flight finish under ctx with their own timeouts.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		stopCtx, cancel = context.WithTimeout(stopCtx, cfg.Duration)
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
	progressDone := func() {}
	if cfg.Progress != nil {
		progressDone = startProgress(cfg.Progress, &total, count, cfg.Duration, start)
	}
	for _, c := range clients {
		wg.Go(func() {
			for stopCtx.Err() == nil {
				n := next.Add(1) - 1
				if count > 0 && n >= int64(count) {
					return
				}
				s := sups[n%int64(len(sups))]
				peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{TLS: s.tls, Identity: cfg.Identity, MTU: cfg.FramedMTU})
				res, err := c.Authenticate(ctx, peer)
				peer.Close()
				if err != nil {
					sample(fmt.Errorf("%s: %w", s.name, err))
				} else if res.Accepted && !res.KeysMatch {
					sample(fmt.Errorf("%s: MS-MPPE keys absent or different from the MSK", s.name))
				}
				total.Add(res, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	progressDone()
	return Report{Server: cfg.Server, TLS: cfg.TLSVersion, Concurrency: cfg.Concurrency, Certs: len(sups), Resume: cfg.Resume,
		Summary: total.Summarize(elapsed), ErrorSamples: samples}, nil
}

// WriteText writes the report as hardbound bench eaptls prints it.
func (r Report) WriteText(w io.Writer) error {
	s := r.Summary
	var b []byte
	b = fmt.Appendf(b, "EAP-TLS against %s, TLS %s, concurrency %d, %d certificate(s)\n", r.Server, r.TLS, r.Concurrency, r.Certs)
	b = fmt.Appendf(b, "  authentications  %d in %.2fs: %.1f/s\n", s.Auths, s.Elapsed.Seconds(), s.AuthsPerSecond)
	b = fmt.Appendf(b, "  accepts          %d\n", s.Accepts)
	b = fmt.Appendf(b, "  rejects          %d\n", s.Rejects)
	reasons := make([]string, 0, len(s.RejectReasons))
	for k := range s.RejectReasons {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	for _, k := range reasons {
		b = fmt.Appendf(b, "    %6d  %s\n", s.RejectReasons[k], k)
	}
	b = fmt.Appendf(b, "  timeouts         %d\n", s.Timeouts)
	b = fmt.Appendf(b, "  errors           %d\n", s.Errors)
	b = fmt.Appendf(b, "  key mismatches   %d\n", s.KeyMismatches)
	b = fmt.Appendf(b, "  latency          p50 %v  p95 %v  p99 %v  max %v\n", RoundLatency(s.P50), RoundLatency(s.P95), RoundLatency(s.P99), RoundLatency(s.Max))
	b = fmt.Appendf(b, "  round trips      %.2f per authentication\n", s.RoundTripsPer)
	if r.Resume {
		b = fmt.Appendf(b, "  resumed          %d (%.1f%%), %.2f round trips each; full %.2f each\n",
			s.Resumed, 100*s.ResumedShare, s.RoundTripsResumed, s.RoundTripsFull)
	}
	b = fmt.Appendf(b, "  retransmits      %d (discarded replies %d)\n", s.Retransmits, s.Discarded)
	for _, m := range r.ErrorSamples {
		b = fmt.Appendf(b, "  error: %s\n", m)
	}
	_, err := w.Write(b)
	return err
}

// RoundLatency drops the digits of a latency nobody reads: whole ms above
// a second, 10µs above a millisecond, µs below. Both load generators'
// reports print latencies with it.
func RoundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// startProgress writes a live line to w every 500ms and returns a func that
// stops it and clears the line.
func startProgress(w io.Writer, st *eapclient.Stats, count int, d time.Duration, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
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
			fmt.Fprintf(w, "\r\033[K%d%s auths, %.0f/s, %d accepted, %d rejected, %d failed",
				auths, goal, float64(auths)/el.Seconds(), accepts, rejects, failures)
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
