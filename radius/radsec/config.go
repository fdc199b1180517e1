package radsec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"hardbound/store"
)

// Secret is the RADIUS shared secret of every RADIUS/TLS connection (RFC
// 6614 §2.3), radius.StreamSecret: TLS protects the packets; the MD5 layer
// stays only because the packet format needs a key. Disconnect/CoA down a
// connection are keyed with it too.
const Secret = "radsec"

// Defaults of Config, which are also those of hardbound.yaml's
// radius.radsec section (DefaultFileConfig).
const (
	defaultMaxConns         = 4096
	defaultMaxPerNAS        = 64
	defaultMaxInFlight      = 256
	defaultIdleTimeout      = 5 * time.Minute
	defaultHandshakeTimeout = 10 * time.Second
	defaultPacketTimeout    = 10 * time.Second
	defaultWriteTimeout     = 10 * time.Second
)

// Config configures a Listener. Zero values take the defaults noted.
type Config struct {
	// Certificate is the server's (hardbound's CA issues it).
	Certificate tls.Certificate
	// OwnCA is hardbound's CA: a peer certificate chaining to it is a NAS
	// if it is a live NAS binding in Bindings (Issuer). nil: only External.
	OwnCA    *x509.CertPool
	Bindings Bindings
	// Outage, if set, lets a NAS certificate of hardbound's CA that was
	// identified before the store's database went away connect again
	// while it is away, as long as Outage says cached answers stand
	// (posture.Service). nil: such a NAS is refused until the store
	// answers.
	Outage Outage
	// External are NASes whose certificates other CAs issue.
	External []ExternalClient
	// MinVersion is the lowest TLS version accepted: TLS 1.2 (the default,
	// the draft's floor) or 1.3. 1.3 is preferred whenever the peer offers it.
	MinVersion uint16
	// MaxConns bounds connections in all, handshaking ones included
	// (default 4096); MaxPerNAS those of one NAS (default 64).
	MaxConns  int
	MaxPerNAS int
	// MaxInFlight bounds requests of one connection being answered at once
	// (default 256, the Identifier space); beyond it the connection is not
	// read until one finishes, so TCP pushes back.
	MaxInFlight int
	// IdleTimeout closes a connection on which no packet started for this
	// long (default 5m; NASes keep theirs alive with Status-Server).
	// HandshakeTimeout bounds the TLS handshake (default 10s), PacketTimeout
	// the arrival of one packet once its first octet came (default 10s: a
	// trickling peer is cut off), WriteTimeout one write (default 10s).
	IdleTimeout      time.Duration
	HandshakeTimeout time.Duration
	PacketTimeout    time.Duration
	WriteTimeout     time.Duration
	Logger           *slog.Logger
	Metrics          Metrics
	// Auditor, if set, records every identified connection and every
	// refusal of a certificate of hardbound's CA (revoked, unbound, not a
	// NAS): only a holder of such a certificate can cause one, so the
	// chain cannot be flooded anonymously. Anonymous refusals (unknown
	// CA, no certificate, a failed handshake) are logged and counted only.
	Auditor Auditor
}

// Auditor appends to the audit chain (store.Store).
type Auditor interface {
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

func (c *Config) setDefaults() {
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.MaxConns <= 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.MaxPerNAS <= 0 {
		c.MaxPerNAS = defaultMaxPerNAS
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.IdleTimeout, defaultIdleTimeout}, {&c.HandshakeTimeout, defaultHandshakeTimeout},
		{&c.PacketTimeout, defaultPacketTimeout}, {&c.WriteTimeout, defaultWriteTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
}

func (c *Config) validate() error {
	switch {
	case len(c.Certificate.Certificate) == 0:
		return errors.New("radsec: a server certificate is required")
	case c.OwnCA == nil && len(c.External) == 0:
		return errors.New("radsec: no NAS can connect: neither hardbound's CA nor an external client is configured")
	case c.OwnCA != nil && c.Bindings == nil:
		return errors.New("radsec: NAS certificates of hardbound's CA need the store's bindings")
	case c.MinVersion != 0 && c.MinVersion != tls.VersionTLS12 && c.MinVersion != tls.VersionTLS13:
		return errors.New("radsec: minimum TLS version must be 1.2 or 1.3")
	}
	names := map[string]bool{}
	for _, e := range c.External {
		switch {
		case CheckName(e.Name) != nil:
			return CheckName(e.Name)
		case names[e.Name]:
			return errors.New("radsec: duplicate external client " + e.Name)
		case e.Roots == nil:
			return errors.New("radsec: external client " + e.Name + ": no CA")
		case e.SubjectCN == "" && e.DNS == "" && e.URI == "":
			return errors.New("radsec: external client " + e.Name + ": no subject or SAN to match")
		}
		names[e.Name] = true
	}
	return nil
}

// Metrics receives the listener's counters (hardbound_radsec_*). Labels
// come from closed sets:
//
//   - Connections(n): connections open, handshaking ones included (gauge).
//   - Accepted(source): a NAS identified: hardbound, external, or
//     hardbound_cached (identified from before the store went away).
//   - Refused(reason): limit, per_nas, handshake, no_certificate,
//     unknown_ca, not_nas, unbound, revoked, store_unavailable, error.
//   - Closed(reason): eof, idle, slow, framing, tls, write, revoked, shutdown.
//   - Packet(kind): request, response, reverse_request, reverse_response,
//     reverse_unmatched.
type Metrics interface {
	Connections(n int)
	Accepted(source string)
	Refused(reason string)
	Closed(reason string)
	Packet(kind string)
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) Connections(int) {}
func (NopMetrics) Accepted(string) {}
func (NopMetrics) Refused(string)  {}
func (NopMetrics) Closed(string)   {}
func (NopMetrics) Packet(string)   {}
