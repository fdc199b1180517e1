package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/policy"
	"hardbound/posture"
)

// Config is hardbound.yaml. Zero values mean "use the default"; Validate
// names the field of every bad value.
type Config struct {
	DataDir  string          `yaml:"data_dir"`
	Log      LogConfig       `yaml:"log"`
	RADIUS   RADIUSConfig    `yaml:"radius"`
	Enroll   EnrollConfig    `yaml:"enroll"`
	Admin    AdminConfig     `yaml:"admin"`
	Metrics  MetricsConfig   `yaml:"metrics"`
	Profiles []ProfileConfig `yaml:"profiles"`
	MDM      MDMConfig       `yaml:"mdm"`
	// MemoryLimit is the Go runtime's soft memory limit ("768MiB";
	// debug.SetMemoryLimit), so that the GC heap goal does not double the
	// posture caches (~400 MiB live with 1M devices) or a Badger
	// compaction's buffers. Empty or "0" keeps the runtime's default, which
	// is GOMEMLIMIT when set; a value here wins over GOMEMLIMIT.
	MemoryLimit string `yaml:"memory_limit"`
	// Dev enables test attestation roots and test evidence (bench make-devices).
	// WARNING: never in production. Set by `serve --dev`, not by the file.
	Dev bool `yaml:"-"`

	memoryLimit int64 // MemoryLimit in bytes, resolved by Validate; 0 = unset
}

// minMemoryLimit is the smallest memory_limit accepted: below it the GC would
// run continuously just to hold the caches, which is a typo ("768KiB"), not
// a setting.
const minMemoryLimit = 64 << 20

// parseByteSize reads a size in GOMEMLIMIT's syntax: a whole number of bytes
// with an optional unit B, KiB, MiB, GiB or TiB.
func parseByteSize(s string) (int64, error) {
	num := strings.TrimRight(s, "BKMGTi")
	unit := s[len(num):]
	shift, ok := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[unit]
	if !ok {
		return 0, fmt.Errorf("unit %q is not one of B, KiB, MiB, GiB, TiB", unit)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a whole number of bytes with a unit (e.g. 768MiB)", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

type LogConfig struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

type RADIUSConfig struct {
	AuthAddr         string   `yaml:"auth_addr"`
	AcctAddr         string   `yaml:"acct_addr"`
	MaxConversations int      `yaml:"max_conversations"`
	MaxPerNAS        int      `yaml:"max_conversations_per_nas"`
	IdleTimeout      Duration `yaml:"conversation_idle_timeout"`
	TLSMaxVersion    string   `yaml:"tls_max_version"` // "1.2" | "1.3"
	MaxFragment      int      `yaml:"max_fragment"`
	AllowNoEMS       bool     `yaml:"allow_no_ems"`
	// SendCANames puts the issuing CA's name in the TLS CertificateRequest
	// (a hint some supplicants use to pick among several client certs). Off
	// by default: without it a TLS 1.3 authentication takes 4 RADIUS round
	// trips at Framed-MTU 1400 instead of 5. The chain is verified either way.
	SendCANames bool `yaml:"send_ca_names"`
	// AuditFlush and AuditSync: how authentication decisions reach the
	// audit chain (radius.Config.AuditFlush / AuditSync).
	AuditFlush Duration `yaml:"audit_flush"`
	// ChainCache: verified client chains remembered (eaptls.ServerConfig);
	// 0 the default, -1 none.
	ChainCache  int            `yaml:"chain_cache"`
	AuditSync   bool           `yaml:"audit_sync"`
	ServerNames []string       `yaml:"server_names"`
	Clients     []ClientConfig `yaml:"clients"`
	CoA         CoAConfig      `yaml:"coa"`
}

type ClientConfig struct {
	Name       string `yaml:"name"`
	CIDR       string `yaml:"cidr"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	CoAPort    int    `yaml:"coa_port"`
	// CoASecret defaults to Secret.
	CoASecret                   string `yaml:"coa_secret"`
	RequireMessageAuthenticator *bool  `yaml:"require_message_authenticator"`
	SendRejectReason            bool   `yaml:"send_reject_reason"`
	TLSMaxVersion               string `yaml:"tls_max_version"`

	prefix netip.Prefix
	secret []byte
}

type CoAConfig struct {
	Timeout Duration `yaml:"timeout"`
	Retries int      `yaml:"retries"`
	// PreferCoA moves sessions of quarantining profiles to the quarantine
	// VLAN with a CoA-Request (falling back to Disconnect on NAK); default:
	// Disconnect-Request, which every NAS honours.
	PreferCoA bool `yaml:"prefer_coa"`
	// ReauthOnRecovery disconnects sessions when a device becomes compliant
	// or is released, so it leaves quarantine at once.
	ReauthOnRecovery bool `yaml:"reauth_on_recovery"`
}

type EnrollConfig struct {
	HTTPSAddr   string   `yaml:"https_addr"`
	HTTPAddr    string   `yaml:"http_addr"`
	ServerNames []string `yaml:"server_names"`
	// Roots: PEM bundles replacing the built-in vendor roots.
	AppleRoots   string     `yaml:"apple_roots"`
	TPMRoots     string     `yaml:"tpm_roots"`
	AndroidRoots string     `yaml:"android_roots"`
	RateLimits   RateLimits `yaml:"rate_limits"`
}

type RateLimits struct {
	PerDevice  RateConfig `yaml:"per_device"`
	PerIP      RateConfig `yaml:"per_ip"`
	PerProfile RateConfig `yaml:"per_profile"`
}

type RateConfig struct {
	Every Duration `yaml:"every"`
	Burst int      `yaml:"burst"`
}

type AdminConfig struct {
	Addr string `yaml:"addr"`
	// TokenFile holds "name sha256hex" lines; defaults to <data_dir>/admin.tokens.
	TokenFile string `yaml:"token_file"`
}

type MetricsConfig struct {
	Addr string `yaml:"addr"`
}

type ProfileConfig struct {
	Name           string   `yaml:"name"`
	Validity       Duration `yaml:"validity"`
	Formats        []string `yaml:"formats"`
	PostureMaxAge  Duration `yaml:"posture_max_age"`
	Noncompliant   string   `yaml:"noncompliant"` // reject | quarantine
	Unknown        string   `yaml:"unknown"`
	QuarantineVLAN string   `yaml:"quarantine_vlan"`
	VLAN           string   `yaml:"vlan"`
	SessionTimeout Duration `yaml:"session_timeout"`
	// SCEP settings of the profile.
	SCEP SCEPProfileConfig `yaml:"scep"`
}

// SCEPProfileConfig says how SCEP enrollment of a profile identifies devices.
type SCEPProfileConfig struct {
	// Identity: cn (default), serial or san_uri; URIPrefix for san_uri.
	Identity  string `yaml:"identity"`
	URIPrefix string `yaml:"uri_prefix"`
	// Alias records the identity as this MDM alias kind (serial, udid, intune_id).
	Alias    string `yaml:"alias"`
	Platform string `yaml:"platform"`
	// RequireAttestation refuses SCEP issuance unless the key is attested.
	RequireAttestation bool `yaml:"require_attestation"`
	// Intune validates challenges with Microsoft Intune (mdm.intune).
	Intune bool `yaml:"intune"`
	// StaticChallengeFile enables a static SCEP challenge for this profile.
	// WARNING: a static challenge authenticates nobody; certs are unattested.
	StaticChallengeFile string `yaml:"static_challenge_file"`

	static string
}

type MDMConfig struct {
	Webhook WebhookConfig `yaml:"webhook"`
	Jamf    JamfConfig    `yaml:"jamf"`
	Intune  IntuneConfig  `yaml:"intune"`
}

type WebhookConfig struct {
	SecretFile string   `yaml:"secret_file"`
	Window     Duration `yaml:"window"`
}

type JamfConfig struct {
	// Username/PasswordFile are the Basic credentials Jamf uses for the
	// dynamic-challenge URL and for its webhooks.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// URL and an API client (Jamf Pro 10.49+, "Read Computers") let
	// hardbound confirm every webhook against the Jamf Pro API (optional).
	URL                 string `yaml:"url"`
	APIClientID         string `yaml:"api_client_id"`
	APIClientSecretFile string `yaml:"api_client_secret_file"`
	// NoncompliantGroups are smart groups whose members are noncompliant.
	NoncompliantGroups []string `yaml:"noncompliant_groups"`
	ChallengeProfile   string   `yaml:"challenge_profile"`
}

type IntuneConfig struct {
	TenantID         string   `yaml:"tenant_id"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	PollInterval     Duration `yaml:"poll_interval"`
	GraphURL         string   `yaml:"graph_url"`
	LoginURL         string   `yaml:"login_url"`
}

// Duration is a time.Duration written as a Go duration string ("15m").
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", s, err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// defaultConfig is the embedded default every file is laid over.
func defaultConfig() *Config {
	return &Config{
		DataDir: "./data",
		Log:     LogConfig{Format: "text", Level: "info"},
		RADIUS: RADIUSConfig{
			AuthAddr:         "0.0.0.0:1812",
			AcctAddr:         "0.0.0.0:1813",
			MaxConversations: 20000,
			MaxPerNAS:        5000,
			IdleTimeout:      Duration(30 * time.Second),
			TLSMaxVersion:    "1.3",
			ServerNames:      []string{"localhost"},
			CoA:              CoAConfig{Timeout: Duration(time.Second), Retries: 3},
		},
		Enroll: EnrollConfig{
			HTTPSAddr:   "0.0.0.0:8443",
			HTTPAddr:    "0.0.0.0:8080",
			ServerNames: []string{"localhost"},
			RateLimits: RateLimits{
				PerDevice:  RateConfig{Every: Duration(time.Minute), Burst: 5},
				PerIP:      RateConfig{Every: Duration(time.Second), Burst: 50},
				PerProfile: RateConfig{Every: Duration(time.Millisecond), Burst: 1000},
			},
		},
		Admin:   AdminConfig{Addr: "127.0.0.1:9443"},
		Metrics: MetricsConfig{Addr: "127.0.0.1:9812"},
		MDM: MDMConfig{
			Webhook: WebhookConfig{Window: Duration(5 * time.Minute)},
			Intune:  IntuneConfig{PollInterval: Duration(15 * time.Minute)},
		},
	}
}

// loadConfig reads path over the defaults. Unknown keys are errors.
func loadConfig(path string) (*Config, error) {
	cfg := defaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF and means "all defaults".
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func fieldErr(field, format string, a ...any) error {
	return fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, a...))
}

func checkAddr(field, addr string) error {
	if addr == "" {
		return nil // listener disabled
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fieldErr(field, "bad address %q: %v", addr, err)
	}
	return nil
}

// Validate checks every field and resolves secrets and prefixes.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fieldErr("data_dir", "must not be empty")
	}
	c.memoryLimit = 0
	if c.MemoryLimit != "" {
		n, err := parseByteSize(c.MemoryLimit)
		if err != nil {
			return fieldErr("memory_limit", "%v", err)
		}
		if n != 0 && n < minMemoryLimit {
			return fieldErr("memory_limit", "%s is below the minimum of 64MiB (0 or empty: no limit)", c.MemoryLimit)
		}
		c.memoryLimit = n
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fieldErr("log.format", "must be text or json, not %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	for f, a := range map[string]string{
		"radius.auth_addr": c.RADIUS.AuthAddr, "radius.acct_addr": c.RADIUS.AcctAddr,
		"enroll.https_addr": c.Enroll.HTTPSAddr, "enroll.http_addr": c.Enroll.HTTPAddr,
		"admin.addr": c.Admin.Addr, "metrics.addr": c.Metrics.Addr,
	} {
		if err := checkAddr(f, a); err != nil {
			return err
		}
	}
	if c.RADIUS.MaxConversations <= 0 {
		return fieldErr("radius.max_conversations", "must be > 0")
	}
	if c.RADIUS.MaxPerNAS <= 0 {
		return fieldErr("radius.max_conversations_per_nas", "must be > 0")
	}
	if c.RADIUS.ChainCache < -1 || c.RADIUS.ChainCache > 1<<24 {
		return fieldErr("radius.chain_cache", "must be -1 (off), 0 (default) or up to 16777216 entries")
	}
	if c.RADIUS.AuditFlush < 0 || c.RADIUS.AuditFlush.D() > time.Second {
		return fieldErr("radius.audit_flush", "must be between 0 and 1s")
	}
	if c.RADIUS.IdleTimeout <= 0 {
		return fieldErr("radius.conversation_idle_timeout", "must be > 0")
	}
	if _, err := tlsVersion(c.RADIUS.TLSMaxVersion); err != nil {
		return fieldErr("radius.tls_max_version", "%v", err)
	}
	if c.RADIUS.MaxFragment != 0 && (c.RADIUS.MaxFragment < 100 || c.RADIUS.MaxFragment > 4000) {
		return fieldErr("radius.max_fragment", "must be 0 (from Framed-MTU) or 100..4000")
	}
	names := map[string]bool{}
	for i := range c.RADIUS.Clients {
		cl := &c.RADIUS.Clients[i]
		f := fmt.Sprintf("radius.clients[%d]", i)
		if cl.Name == "" {
			return fieldErr(f+".name", "must not be empty")
		}
		if names[cl.Name] {
			return fieldErr(f+".name", "duplicate client name %q", cl.Name)
		}
		names[cl.Name] = true
		p, err := netip.ParsePrefix(cl.CIDR)
		if err != nil {
			a, aerr := netip.ParseAddr(cl.CIDR)
			if aerr != nil {
				return fieldErr(f+".cidr", "bad CIDR %q", cl.CIDR)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cl.prefix = p.Masked()
		switch {
		case cl.Secret != "" && cl.SecretFile != "":
			return fieldErr(f+".secret", "set secret or secret_file, not both")
		case cl.SecretFile != "":
			b, err := os.ReadFile(cl.SecretFile)
			if err != nil {
				return fieldErr(f+".secret_file", "%v", err)
			}
			cl.secret = bytes.TrimRight(b, "\r\n")
		default:
			cl.secret = []byte(cl.Secret)
		}
		if len(cl.secret) == 0 {
			return fieldErr(f+".secret", "must not be empty")
		}
		if cl.CoAPort == 0 {
			cl.CoAPort = 3799
		}
		if cl.CoAPort < 1 || cl.CoAPort > 65535 {
			return fieldErr(f+".coa_port", "must be 1..65535")
		}
		if cl.TLSMaxVersion != "" {
			if _, err := tlsVersion(cl.TLSMaxVersion); err != nil {
				return fieldErr(f+".tls_max_version", "%v", err)
			}
		}
	}
	if c.RADIUS.CoA.Retries < 0 || c.RADIUS.CoA.Retries > 10 {
		return fieldErr("radius.coa.retries", "must be 0..10")
	}
	if c.RADIUS.CoA.Timeout <= 0 {
		return fieldErr("radius.coa.timeout", "must be > 0")
	}
	for _, f := range []struct{ name, path string }{
		{"enroll.apple_roots", c.Enroll.AppleRoots}, {"enroll.tpm_roots", c.Enroll.TPMRoots},
		{"enroll.android_roots", c.Enroll.AndroidRoots},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return fieldErr(f.name, "%v", err)
		}
	}
	for name, r := range map[string]RateConfig{
		"enroll.rate_limits.per_device":  c.Enroll.RateLimits.PerDevice,
		"enroll.rate_limits.per_ip":      c.Enroll.RateLimits.PerIP,
		"enroll.rate_limits.per_profile": c.Enroll.RateLimits.PerProfile,
	} {
		if r.Every <= 0 || r.Burst <= 0 {
			return fieldErr(name, "every and burst must be > 0")
		}
	}
	seen := map[string]bool{}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		f := fmt.Sprintf("profiles[%d]", i)
		if err := policy.CheckName(p.Name); err != nil {
			return fieldErr(f+".name", "%v", err)
		}
		if seen[p.Name] {
			return fieldErr(f+".name", "duplicate profile %q", p.Name)
		}
		seen[p.Name] = true
		if err := policy.Formats(p.Formats).Check(); err != nil {
			return fieldErr(f+".formats", "%v", err)
		}
		for k, v := range map[string]*string{".noncompliant": &p.Noncompliant, ".unknown": &p.Unknown} {
			a, err := posture.ParseAction(*v)
			if err != nil {
				return fieldErr(f+k, "%v", err)
			}
			*v = string(a)
			if a == posture.ActionQuarantine && p.QuarantineVLAN == "" {
				return fieldErr(f+".quarantine_vlan", "required when %s is quarantine", strings.TrimPrefix(k, "."))
			}
		}
		if err := p.scepIdentity().Check(); err != nil {
			return fieldErr(f+".scep.identity", "%v", err)
		}
		if p.SCEP.Intune && c.MDM.Intune.TenantID == "" {
			return fieldErr(f+".scep.intune", "needs mdm.intune to be configured")
		}
		if p.Validity != 0 && (p.Validity.D() < time.Hour || p.Validity.D() > 5*365*24*time.Hour) {
			return fieldErr(f+".validity", "must be between 1h and 5 years")
		}
		if p.SCEP.StaticChallengeFile != "" {
			b, err := os.ReadFile(p.SCEP.StaticChallengeFile)
			if err != nil {
				return fieldErr(f+".scep.static_challenge_file", "%v", err)
			}
			if p.SCEP.static = strings.TrimSpace(string(b)); len(p.SCEP.static) < 16 {
				return fieldErr(f+".scep.static_challenge_file", "a static challenge must be at least 16 characters")
			}
		}
	}
	if jc := c.MDM.Jamf; (jc.URL != "") != (jc.APIClientID != "" && jc.APIClientSecretFile != "") {
		return fieldErr("mdm.jamf.url", "url, api_client_id and api_client_secret_file go together")
	}
	if jc := c.MDM.Jamf; jc.ChallengeProfile != "" && !seen[jc.ChallengeProfile] && !(len(c.Profiles) == 0 && jc.ChallengeProfile == policy.DefaultProfile) {
		return fieldErr("mdm.jamf.challenge_profile", "no profile named %q", jc.ChallengeProfile)
	}
	if c.MDM.Webhook.SecretFile != "" {
		if _, err := os.ReadFile(c.MDM.Webhook.SecretFile); err != nil {
			return fieldErr("mdm.webhook.secret_file", "%v", err)
		}
	}
	if c.MDM.Intune.TenantID != "" && (c.MDM.Intune.ClientID == "" || c.MDM.Intune.ClientSecretFile == "") {
		return fieldErr("mdm.intune", "tenant_id, client_id and client_secret_file go together")
	}
	return nil
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return 0x0303, nil
	case "1.3", "":
		return 0x0304, nil
	}
	return 0, fmt.Errorf("must be 1.2 or 1.3, not %q", s)
}
