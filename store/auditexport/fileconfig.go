package auditexport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"hardbound/store/config"
)

// FileConfig is the audit: section of hardbound.yaml: where the chain is
// exported to and how it is anchored.
type FileConfig struct {
	Sinks      []SinkConfig     `yaml:"sinks"`
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	Retention  RetentionConfig  `yaml:"retention"`
}

// RetentionConfig says when the oldest events leave the store: once every
// sink confirmed them, a signed checkpoint covers them, and they are older
// than MaxAge.
type RetentionConfig struct {
	// MaxAge is how long events stay at least (0, the default: forever).
	MaxAge config.Duration `yaml:"max_age"`
	// Interval is how often pruning runs (default 1h).
	Interval config.Duration `yaml:"interval"`
}

// SinkConfig is one entry of audit.sinks. Each sink has its own cursor in
// the store, keyed by Name, so renaming a sink starts it from seq 1.
type SinkConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // syslog | http
	// Address is host:port of a syslog receiver.
	Address string `yaml:"address"`
	// Transport is tls (RFC 5425, default), tcp (RFC 6587 octet
	// counting) or udp (RFC 5426) for syslog.
	Transport string `yaml:"transport"`
	// URL is the https:// endpoint of an http sink.
	URL string `yaml:"url"`
	// CAFile verifies the receiver; empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the receiver's certificate
	// (default: the host of address or url).
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TokenFile holds the bearer token of an http sink.
	TokenFile string `yaml:"token_file"`
	// Facility is the syslog facility number (default 13, log audit).
	Facility *int `yaml:"facility"`
	// Hostname is the HOSTNAME of syslog messages and "host" of records
	// (default: the machine's name).
	Hostname string `yaml:"hostname"`
	// BatchSize caps the events of one write or POST (default 500).
	BatchSize int `yaml:"batch_size"`
	// ConfirmAfter is how long a stream connection must stay up, with
	// every byte acknowledged by the receiver's TCP, before the events
	// on it count as delivered (default 2s). Syslog over TCP and TLS has
	// no acknowledgement of its own; see docs/audit.md.
	ConfirmAfter config.Duration `yaml:"confirm_after"`
	// Timeout bounds one dial, write or POST (default 10s).
	Timeout config.Duration `yaml:"timeout"`
}

// CheckpointConfig says when the head is signed and with which key.
type CheckpointConfig struct {
	// KeyFile is the audit signing key (PKCS #8 PEM, Ed25519 or ECDSA
	// P-256), created 0600 if absent; default <data_dir>/audit/checkpoint.key.
	KeyFile string `yaml:"key_file"`
	// Every signs a checkpoint once the head moved this many events past
	// the last one (default 1000; 0 turns it off).
	Every uint64 `yaml:"every"`
	// Interval signs one whenever the head moved and this much time
	// passed (default 1m; 0 turns it off).
	Interval config.Duration `yaml:"interval"`
	// TrustedKeys are PEM public key files of earlier (rotated) audit keys,
	// whose checkpoints still verify.
	TrustedKeys []string `yaml:"trusted_keys"`
}

// Defaults of a sink and of the checkpoints.
const (
	DefaultBatchSize    = 500
	DefaultConfirmAfter = 2 * time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultFacility     = 13
	DefaultEvery        = 1000
	DefaultInterval     = time.Minute
	maxBatchSize        = 10000
)

// DefaultFileConfig is the section before the file is laid over it: no
// sinks, a checkpoint every 1000 events or every minute.
func DefaultFileConfig() FileConfig {
	return FileConfig{Checkpoint: CheckpointConfig{Every: DefaultEvery, Interval: config.Duration(DefaultInterval)}}
}

// sinkName keeps names usable as store keys and metric labels.
var sinkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Validate names the field of a bad value; path is the section's place in
// the file ("audit").
func (c FileConfig) Validate(path string) error {
	if c.Retention.MaxAge != 0 && c.Retention.MaxAge.D() < time.Hour {
		return config.Errorf(path+".retention.max_age", "must be 0 (keep everything) or at least 1h, not %s", c.Retention.MaxAge.D())
	}
	if c.Retention.MaxAge != 0 && c.Checkpoint.Every == 0 && c.Checkpoint.Interval == 0 {
		return config.Errorf(path+".retention.max_age", "needs checkpoints (checkpoint.every or checkpoint.interval): only what a checkpoint covers is pruned")
	}
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		p := fmt.Sprintf("%s.sinks[%d]", path, i)
		if err := s.validate(p); err != nil {
			return err
		}
		if seen[s.Name] {
			return config.Errorf(p+".name", "%q is used by another sink", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (s SinkConfig) validate(p string) error {
	if !sinkName.MatchString(s.Name) {
		return config.Errorf(p+".name", "must be 1-64 letters, digits, '_', '.' or '-', not %q", s.Name)
	}
	switch s.Type {
	case "syslog":
		switch s.Transport {
		case "", "tls", "tcp", "udp":
		default:
			return config.Errorf(p+".transport", "must be tls, tcp or udp, not %q", s.Transport)
		}
		if s.Address == "" {
			return config.Errorf(p+".address", "required for a syslog sink")
		}
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			return config.Errorf(p+".address", "bad address %q: %v", s.Address, err)
		}
		if s.URL != "" || s.TokenFile != "" {
			return config.Errorf(p+".url", "url and token_file are for http sinks")
		}
		if s.Transport == "tcp" || s.Transport == "udp" {
			if s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
				return config.Errorf(p+".ca_file", "TLS files need transport tls")
			}
		}
	case "http":
		u, err := url.Parse(s.URL)
		if err != nil || u.Host == "" {
			return config.Errorf(p+".url", "must be an https:// URL, not %q", s.URL)
		}
		if u.Scheme != "https" {
			return config.Errorf(p+".url", "must be https, not %q: the chain leaves in the clear otherwise", u.Scheme)
		}
		if s.Address != "" || s.Transport != "" {
			return config.Errorf(p+".address", "address and transport are for syslog sinks")
		}
	default:
		return config.Errorf(p+".type", "must be syslog or http, not %q", s.Type)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return config.Errorf(p+".cert_file", "cert_file and key_file go together")
	}
	if s.Facility != nil && (*s.Facility < 0 || *s.Facility > 23) {
		return config.Errorf(p+".facility", "must be 0-23, not %d", *s.Facility)
	}
	if s.BatchSize < 0 || s.BatchSize > maxBatchSize {
		return config.Errorf(p+".batch_size", "must be 0-%d, not %d", maxBatchSize, s.BatchSize)
	}
	return nil
}

// transport is the syslog transport with its default.
func (s SinkConfig) transport() string {
	if s.Transport == "" {
		return "tls"
	}
	return s.Transport
}

func (s SinkConfig) batchSize() int {
	if s.BatchSize == 0 {
		return DefaultBatchSize
	}
	return s.BatchSize
}

func (s SinkConfig) confirmAfter() time.Duration {
	if s.ConfirmAfter == 0 {
		return DefaultConfirmAfter
	}
	return s.ConfirmAfter.D()
}

func (s SinkConfig) timeout() time.Duration {
	if s.Timeout == 0 {
		return DefaultTimeout
	}
	return s.Timeout.D()
}

func (s SinkConfig) facility() int {
	if s.Facility == nil {
		return DefaultFacility
	}
	return *s.Facility
}

func (s SinkConfig) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "-"
	}
	return h
}

// tlsConfig builds the client side of a TLS sink from the files; host is
// the name checked when server_name is unset.
func (s SinkConfig) tlsConfig(p, host string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if s.ServerName != "" {
		c.ServerName = s.ServerName
	}
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, config.Errorf(p+".ca_file", "%w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, config.Errorf(p+".ca_file", "no PEM certificate in %s", s.CAFile)
		}
		c.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, config.Errorf(p+".cert_file", "%w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// KeyPath is the checkpoint key file: key_file, or audit/checkpoint.key in
// dataDir.
func (c CheckpointConfig) KeyPath(dataDir string) string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(dataDir, "audit", "checkpoint.key")
}
