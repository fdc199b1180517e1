package radsec

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"hardbound/store/config"
)

// FileConfig is the radius.radsec section of hardbound.yaml. The listener
// is off unless addr is set (serve --dev sets [::]:2083).
type FileConfig struct {
	// Addr is the RADIUS/TLS listener, e.g. "0.0.0.0:2083" (RFC 6614 §2.1
	// port); empty: off.
	Addr string `yaml:"addr"`
	// TLSMinVersion is "1.2" (the default, the draft's floor) or "1.3".
	TLSMinVersion string `yaml:"tls_min_version"`
	// HardboundNAS accepts NAS certificates this hardbound issued (`hardbound
	// nas issue`), each a client without configuration; default true.
	HardboundNAS bool `yaml:"hardbound_nas"`
	// ServerNames go into the listener's server certificate (DNS names; IP
	// literals become IP SANs), which NASes check.
	ServerNames      []string        `yaml:"server_names"`
	MaxConnections   int             `yaml:"max_connections"`
	MaxPerNAS        int             `yaml:"max_connections_per_nas"`
	MaxInFlight      int             `yaml:"max_in_flight"`
	IdleTimeout      config.Duration `yaml:"idle_timeout"`
	HandshakeTimeout config.Duration `yaml:"handshake_timeout"`
	PacketTimeout    config.Duration `yaml:"packet_timeout"`
	// Clients are NASes with certificates of external CAs.
	Clients []FileClient `yaml:"clients"`
}

// FileClient is one radius.radsec.clients[] entry: a NAS whose certificate
// chains to ca_file and whose subject CN, a SAN dNSName or a SAN URI equals
// the one given (at least one).
type FileClient struct {
	Name      string `yaml:"name"`
	CAFile    string `yaml:"ca_file"`
	SubjectCN string `yaml:"subject_cn"`
	SANDNS    string `yaml:"san_dns"`
	SANURI    string `yaml:"san_uri"`

	roots *x509.CertPool // CAFile, read by Validate
}

// DefaultFileConfig is the section before the file is laid over it: Config's
// own defaults.
func DefaultFileConfig() FileConfig {
	return FileConfig{
		TLSMinVersion:    "1.2",
		HardboundNAS:     true,
		ServerNames:      []string{"localhost"},
		MaxConnections:   defaultMaxConns,
		MaxPerNAS:        defaultMaxPerNAS,
		MaxInFlight:      defaultMaxInFlight,
		IdleTimeout:      config.Duration(defaultIdleTimeout),
		HandshakeTimeout: config.Duration(defaultHandshakeTimeout),
		PacketTimeout:    config.Duration(defaultPacketTimeout),
	}
}

// Validate names the field of the first bad value and reads the clients'
// CA files; path is the section's place in the file ("radius.radsec").
func (c *FileConfig) Validate(path string) error {
	if err := config.CheckAddr(path+".addr", c.Addr); err != nil {
		return err
	}
	if _, err := minVersion(c.TLSMinVersion); err != nil {
		return config.Errorf(path+".tls_min_version", "%w", err)
	}
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{{"max_connections", c.MaxConnections, 1 << 20}, {"max_connections_per_nas", c.MaxPerNAS, 1 << 20}, {"max_in_flight", c.MaxInFlight, 256}} {
		if f.v <= 0 || f.v > f.max {
			return config.Errorf(path+"."+f.name, "must be 1..%d", f.max)
		}
	}
	for _, f := range []struct {
		name string
		v    config.Duration
	}{{"idle_timeout", c.IdleTimeout}, {"handshake_timeout", c.HandshakeTimeout}, {"packet_timeout", c.PacketTimeout}} {
		if f.v <= 0 {
			return config.Errorf(path+"."+f.name, "must be > 0")
		}
	}
	if c.Addr != "" && len(c.ServerNames) == 0 {
		return config.Errorf(path+".server_names", "at least one name is required")
	}
	names := map[string]bool{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		f := fmt.Sprintf("%s.clients[%d]", path, i)
		if err := CheckName(cl.Name); err != nil {
			return config.Errorf(f+".name", "%w", err)
		}
		if names[cl.Name] {
			return config.Errorf(f+".name", "duplicate client name %q", cl.Name)
		}
		names[cl.Name] = true
		if cl.SubjectCN == "" && cl.SANDNS == "" && cl.SANURI == "" {
			return config.Errorf(f, "set subject_cn, san_dns or san_uri: a CA alone would make every certificate it issued this NAS")
		}
		b, err := os.ReadFile(cl.CAFile)
		if err != nil {
			return config.Errorf(f+".ca_file", "%w", err)
		}
		cl.roots = x509.NewCertPool()
		if !cl.roots.AppendCertsFromPEM(b) {
			return config.Errorf(f+".ca_file", "no PEM certificate in %s", cl.CAFile)
		}
	}
	if c.Addr != "" && !c.HardboundNAS && len(c.Clients) == 0 {
		return config.Errorf(path+".clients", "no NAS could connect: hardbound_nas is off and no client is configured")
	}
	return nil
}

// Listener is the listener's Config from a validated section; the caller
// adds the server certificate, hardbound's CA (when HardboundNAS), the
// store's bindings, Logger and Metrics.
func (c *FileConfig) Listener() Config {
	v, _ := minVersion(c.TLSMinVersion) // checked by Validate
	cfg := Config{
		MinVersion:       v,
		MaxConns:         c.MaxConnections,
		MaxPerNAS:        c.MaxPerNAS,
		MaxInFlight:      c.MaxInFlight,
		IdleTimeout:      c.IdleTimeout.D(),
		HandshakeTimeout: c.HandshakeTimeout.D(),
		PacketTimeout:    c.PacketTimeout.D(),
	}
	for _, cl := range c.Clients {
		cfg.External = append(cfg.External, ExternalClient{Name: cl.Name, Roots: cl.roots, SubjectCN: cl.SubjectCN, DNS: cl.SANDNS, URI: cl.SANURI})
	}
	return cfg
}

func minVersion(s string) (uint16, error) {
	switch s {
	case "1.2", "":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("must be 1.2 or 1.3, not %q", s)
}
