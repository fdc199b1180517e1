package radius

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"time"

	"hardbound/eaptls"
	"hardbound/radius/dynauth"
	"hardbound/radius/radsec"
	"hardbound/store/config"
)

// FileConfig is the radius: section of hardbound.yaml. DefaultFileConfig is
// laid under the file; Validate names the field of every bad value and
// resolves the clients' prefixes and secrets, which Server then hands on.
type FileConfig struct {
	AuthAddr         string          `yaml:"auth_addr"`
	AcctAddr         string          `yaml:"acct_addr"`
	MaxConversations int             `yaml:"max_conversations"`
	MaxPerNAS        int             `yaml:"max_conversations_per_nas"`
	IdleTimeout      config.Duration `yaml:"conversation_idle_timeout"`
	// MaxConversationBytes and EarlyIdleTimeout: Config's; 0 the defaults.
	MaxConversationBytes int64           `yaml:"max_conversation_bytes"`
	EarlyIdleTimeout     config.Duration `yaml:"early_idle_timeout"`
	// ClassKeyFile holds the key that authenticates Class (32 octets,
	// created 0600 when absent); empty: radius-class.key in the data dir
	// (the wiring's choice).
	ClassKeyFile  string `yaml:"class_key_file"`
	TLSMaxVersion string `yaml:"tls_max_version"` // "1.2" | "1.3"
	MaxFragment   int    `yaml:"max_fragment"`
	AllowNoEMS    bool   `yaml:"allow_no_ems"`
	// SendCANames puts the issuing CA's name in the TLS CertificateRequest
	// (a hint some supplicants use to pick among several client certs). Off
	// by default: without it a TLS 1.3 authentication takes 4 RADIUS round
	// trips at Framed-MTU 1400 instead of 5. The chain is verified either way.
	SendCANames bool `yaml:"send_ca_names"`
	// AuditFlush and AuditSync: how authentication decisions reach the
	// audit chain (Config.AuditFlush / AuditSync); 0 is Config's default.
	AuditFlush config.Duration `yaml:"audit_flush"`
	// ChainCache: verified client chains remembered (eaptls.ServerConfig);
	// 0 the default, -1 none.
	ChainCache int  `yaml:"chain_cache"`
	AuditSync  bool `yaml:"audit_sync"`
	// Resumption: EAP-TLS session tickets (docs/radius.md, "Resumption").
	Resumption  FileResumption     `yaml:"resumption"`
	ServerNames []string           `yaml:"server_names"`
	Clients     []FileClient       `yaml:"clients"`
	CoA         dynauth.FileConfig `yaml:"coa"`
	// RadSec is RADIUS/TLS (radius/radsec), off unless its addr is set.
	RadSec radsec.FileConfig `yaml:"radsec"`
}

// FileResumption is the radius.resumption section.
type FileResumption struct {
	// Enabled issues and accepts tickets; on by default. Every resumption
	// runs the whole decision on the ticket's certificate.
	Enabled bool `yaml:"enabled"`
	// MaxLifetime caps a ticket from the full handshake that earned it;
	// the certificate's remaining life and the profile's posture max age
	// cap it further.
	MaxLifetime config.Duration `yaml:"max_lifetime"`
	// KeyRotation draws a new ticket key this often (the previous one
	// still decrypts until the next rotation); 0 never rotates.
	KeyRotation config.Duration `yaml:"key_rotation"`
	// FullAfterChange forces a full handshake on a device whose standing
	// changed after its ticket was issued.
	FullAfterChange bool `yaml:"full_after_change"`
	// DisabledProfiles: devices of these profiles always do a full
	// handshake.
	DisabledProfiles []string `yaml:"disabled_profiles"`
	// SharedKeyFile holds 32 octets in hex (64 characters), the same on
	// every node of one store: with it the nodes share their ticket keys
	// through the store, sealed with it, so a device resumes on any node.
	// Without it each node keeps its own keys in memory.
	SharedKeyFile string `yaml:"shared_key_file"`

	sharedKey []byte // SharedKeyFile's key, resolved by Validate
}

// Defaults of the resumption section.
const (
	defaultTicketLifetime = 8 * time.Hour
	maxTicketLifetime     = 7 * 24 * time.Hour // crypto/tls's own bound on a ticket
)

// FileClient is one radius.clients[] entry: a NAS, or a network of NASes
// sharing a secret.
type FileClient struct {
	Name       string `yaml:"name"`
	CIDR       string `yaml:"cidr"` // a prefix or a single address
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// CoAPort and CoASecret: 0 and empty take Client's defaults
	// (DefaultCoAPort, Secret).
	CoAPort   int    `yaml:"coa_port"`
	CoASecret string `yaml:"coa_secret"`
	// RequireMessageAuthenticator: absent means true (Client's WARNING).
	RequireMessageAuthenticator *bool  `yaml:"require_message_authenticator"`
	SendRejectReason            bool   `yaml:"send_reject_reason"`
	TLSMaxVersion               string `yaml:"tls_max_version"`
	// OnOffWithoutTimestamp: Client's WARNING.
	OnOffWithoutTimestamp bool `yaml:"onoff_without_event_timestamp"`
	// Resumption: false makes every authentication through this NAS a
	// full handshake; absent follows radius.resumption.enabled.
	Resumption *bool `yaml:"resumption"`

	prefix netip.Prefix // CIDR, resolved by Validate
	secret []byte       // Secret or SecretFile's content, resolved by Validate
}

// DefaultFileConfig is the section before the file is laid over it. The
// conversation limits and idle timeout are Config's own defaults.
func DefaultFileConfig() FileConfig {
	return FileConfig{
		AuthAddr:         "0.0.0.0:1812",
		AcctAddr:         "0.0.0.0:1813",
		MaxConversations: defaultMaxConversations,
		MaxPerNAS:        defaultMaxConversationsPerNAS,
		IdleTimeout:      config.Duration(defaultConversationIdle),
		TLSMaxVersion:    "1.3",
		ServerNames:      []string{"localhost"},
		CoA:              dynauth.DefaultFileConfig(),
		Resumption: FileResumption{
			Enabled:     true,
			MaxLifetime: config.Duration(defaultTicketLifetime),
			KeyRotation: config.Duration(defaultTicketLifetime),
		},
		RadSec: radsec.DefaultFileConfig(),
	}
}

// Validate checks every field and resolves the clients' prefixes and
// secrets (reading secret_file). path is the section's place in the file
// ("radius"); errors are *config.FieldError naming the full path.
func (c *FileConfig) Validate(path string) error {
	if err := config.CheckAddr(path+".auth_addr", c.AuthAddr); err != nil {
		return err
	}
	if err := config.CheckAddr(path+".acct_addr", c.AcctAddr); err != nil {
		return err
	}
	if c.MaxConversations <= 0 {
		return config.Errorf(path+".max_conversations", "must be > 0")
	}
	if c.MaxPerNAS <= 0 {
		return config.Errorf(path+".max_conversations_per_nas", "must be > 0")
	}
	if c.ChainCache < -1 || c.ChainCache > 1<<24 {
		return config.Errorf(path+".chain_cache", "must be -1 (off), 0 (default) or up to 16777216 entries")
	}
	if c.AuditFlush < 0 || c.AuditFlush.D() > time.Second {
		return config.Errorf(path+".audit_flush", "must be between 0 and 1s")
	}
	if c.IdleTimeout <= 0 {
		return config.Errorf(path+".conversation_idle_timeout", "must be > 0")
	}
	if c.EarlyIdleTimeout < 0 || c.EarlyIdleTimeout > c.IdleTimeout {
		return config.Errorf(path+".early_idle_timeout", "must be between 0 (default) and conversation_idle_timeout")
	}
	if c.MaxConversationBytes != 0 && c.MaxConversationBytes < 1<<20 {
		return config.Errorf(path+".max_conversation_bytes", "must be 0 (default) or at least 1 MiB")
	}
	if _, err := tlsVersion(c.TLSMaxVersion); err != nil {
		return config.Errorf(path+".tls_max_version", "%w", err)
	}
	if c.MaxFragment != 0 && (c.MaxFragment < 100 || c.MaxFragment > 4000) {
		return config.Errorf(path+".max_fragment", "must be 0 (from Framed-MTU) or 100..4000")
	}
	if r := c.Resumption; r.Enabled {
		if r.MaxLifetime.D() < time.Minute || r.MaxLifetime.D() > maxTicketLifetime {
			return config.Errorf(path+".resumption.max_lifetime", "must be between 1m and 168h")
		}
		if r.KeyRotation < 0 || (r.KeyRotation != 0 && r.KeyRotation.D() < time.Minute) {
			return config.Errorf(path+".resumption.key_rotation", "must be 0 (never) or at least 1m")
		}
		if r.SharedKeyFile != "" {
			f := path + ".resumption.shared_key_file"
			v, err := config.ReadSecret(f, r.SharedKeyFile)
			if err != nil {
				return err
			}
			k, err := hex.DecodeString(v)
			if err != nil || len(k) != SharedKeyLen {
				return config.Errorf(f, "must hold %d octets in hex (%d characters)", SharedKeyLen, 2*SharedKeyLen)
			}
			c.Resumption.sharedKey = k
		}
	}
	names := make(map[string]bool, len(c.Clients))
	for i := range c.Clients {
		cl := &c.Clients[i]
		f := fmt.Sprintf("%s.clients[%d]", path, i)
		if names[cl.Name] {
			return config.Errorf(f+".name", "duplicate client name %q", cl.Name)
		}
		names[cl.Name] = true
		if err := cl.resolve(f); err != nil {
			return err
		}
	}
	if err := c.CoA.Validate(path + ".coa"); err != nil {
		return err
	}
	return c.RadSec.Validate(path + ".radsec")
}

// resolve validates one client at path f ("radius.clients[0]").
func (cl *FileClient) resolve(f string) error {
	if cl.Name == "" {
		return config.Errorf(f+".name", "must not be empty")
	}
	p, err := netip.ParsePrefix(cl.CIDR)
	if err != nil {
		a, aerr := netip.ParseAddr(cl.CIDR)
		if aerr != nil {
			return config.Errorf(f+".cidr", "bad CIDR %q", cl.CIDR)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	cl.prefix = p.Masked()
	switch {
	case cl.Secret != "" && cl.SecretFile != "":
		return config.Errorf(f+".secret", "set secret or secret_file, not both")
	case cl.SecretFile != "":
		b, err := os.ReadFile(cl.SecretFile)
		if err != nil {
			return config.Errorf(f+".secret_file", "%w", err)
		}
		cl.secret = bytes.TrimRight(b, "\r\n")
	default:
		cl.secret = []byte(cl.Secret)
	}
	if len(cl.secret) == 0 {
		return config.Errorf(f+".secret", "must not be empty")
	}
	if cl.CoAPort < 0 || cl.CoAPort > 65535 {
		return config.Errorf(f+".coa_port", "must be 1..65535")
	}
	if cl.TLSMaxVersion != "" {
		if _, err := tlsVersion(cl.TLSMaxVersion); err != nil {
			return config.Errorf(f+".tls_max_version", "%w", err)
		}
	}
	return nil
}

// Server is the server's Config from a validated section.
func (c *FileConfig) Server() Config {
	clients := make([]Client, 0, len(c.Clients))
	for i := range c.Clients {
		clients = append(clients, c.Clients[i].client())
	}
	return Config{
		Clients:                clients,
		ConversationIdle:       c.IdleTimeout.D(),
		MaxConversations:       c.MaxConversations,
		MaxConversationsPerNAS: c.MaxPerNAS,
		MaxConversationBytes:   c.MaxConversationBytes,
		EarlyIdle:              c.EarlyIdleTimeout.D(),
		AuditFlush:             c.AuditFlush.D(),
		AuditSync:              c.AuditSync,
		Resumption: Resumption{
			KeyRotation:      c.Resumption.KeyRotation.D(),
			FullAfterChange:  c.Resumption.FullAfterChange,
			DisabledProfiles: c.Resumption.DisabledProfiles,
			SharedKey:        c.Resumption.sharedKey,
		},
	}
}

func (cl *FileClient) client() Client {
	rc := Client{
		Name: cl.Name, Prefix: cl.prefix, Secret: cl.secret, CoAPort: cl.CoAPort,
		RequireMessageAuthenticator: cl.RequireMessageAuthenticator == nil || *cl.RequireMessageAuthenticator,
		LimitProxyState:             true,
		SendRejectReason:            cl.SendRejectReason,
		OnOffWithoutTimestamp:       cl.OnOffWithoutTimestamp,
		NoResume:                    cl.Resumption != nil && !*cl.Resumption,
	}
	if cl.CoASecret != "" {
		rc.CoASecret = []byte(cl.CoASecret)
	}
	if cl.TLSMaxVersion != "" {
		rc.TLSMaxVersion, _ = tlsVersion(cl.TLSMaxVersion) // checked by Validate
	}
	return rc
}

// EAP is the EAP-TLS server's configuration from a validated section, with
// the server certificate and the CAs that issue device certificates; the
// caller adds the Logger and Metrics.
func (c *FileConfig) EAP(cert tls.Certificate, clientCAs *x509.CertPool) eaptls.ServerConfig {
	maxV, _ := tlsVersion(c.TLSMaxVersion) // checked by Validate
	var res eaptls.Resumption
	if c.Resumption.Enabled {
		res.MaxLifetime = c.Resumption.MaxLifetime.D()
	}
	return eaptls.ServerConfig{
		Resumption: res,
		TLS: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS12,
			MaxVersion:   maxV,
		},
		MaxFragment: c.MaxFragment,
		AllowNoEMS:  c.AllowNoEMS,
		OmitCANames: !c.SendCANames,
		ChainCache:  c.ChainCache,
	}
}

// tlsVersion reads tls_max_version; empty is TLS 1.3.
func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3", "":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("must be 1.2 or 1.3, not %q", s)
}
