package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/enroll"
	"hardbound/posture"
	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/posture/mdm/jamf"
	"hardbound/radius"
	"hardbound/store/auditexport"
	"hardbound/store/config"
	"hardbound/store/policy"
	"hardbound/store/postgres"
)

// Config is hardbound.yaml: the process's own keys (data_dir, log,
// memory_limit), the profiles, and one section per component, each with its
// defaults and Validate beside the component. Validate names the field of
// every bad value.
type Config struct {
	DataDir  string                 `yaml:"data_dir"`
	Log      LogConfig              `yaml:"log"`
	RADIUS   radius.FileConfig      `yaml:"radius"`
	Enroll   enroll.FileConfig      `yaml:"enroll"`
	Admin    admin.FileConfig       `yaml:"admin"`
	Metrics  metrics.FileConfig     `yaml:"metrics"`
	Profiles []ProfileConfig        `yaml:"profiles"`
	MDM      MDMConfig              `yaml:"mdm"`
	Audit    auditexport.FileConfig `yaml:"audit"`
	// Store says where the records live (store.go): Badger in
	// <data_dir>/db by default, or a PostgreSQL database shared by nodes.
	Store postgres.StoreFileConfig `yaml:"store"`
	// MemoryLimit is the Go runtime's soft memory limit ("768MiB";
	// debug.SetMemoryLimit), so that the GC heap goal does not double the
	// posture caches (~400 MiB live with 1M devices) or a Badger
	// compaction's buffers. Empty or "0" keeps the runtime's default, which
	// is GOMEMLIMIT when set; a value here wins over GOMEMLIMIT.
	MemoryLimit string `yaml:"memory_limit"`
	// Dev enables test attestation roots and test evidence (bench make-devices).
	// WARNING: never in production. Set by `serve --dev`, not by the file.
	Dev bool `yaml:"-"`
	// Version is the build's version, for the banner and the User-Agent of
	// MDM calls. Set by main, not by the file.
	Version string `yaml:"-"`
	// File is the file LoadConfig read ("" for the built-in defaults).
	File string `yaml:"-"`
	// Load loads this configuration again as the process first did (the
	// file, then the command line's overrides), for a reload (reload.go).
	// Set by serve; nil: the node cannot reload.
	Load func() (*Config, error) `yaml:"-"`

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

// MemoryLimitBytes is memory_limit in bytes as Validate resolved it; 0 when
// unset.
func (c *Config) MemoryLimitBytes() int64 { return c.memoryLimit }

type LogConfig struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

type ProfileConfig struct {
	Name           string          `yaml:"name"`
	Validity       config.Duration `yaml:"validity"`
	Formats        []string        `yaml:"formats"`
	PostureMaxAge  config.Duration `yaml:"posture_max_age"`
	Noncompliant   string          `yaml:"noncompliant"` // reject | quarantine
	Unknown        string          `yaml:"unknown"`
	QuarantineVLAN string          `yaml:"quarantine_vlan"`
	VLAN           string          `yaml:"vlan"`
	SessionTimeout config.Duration `yaml:"session_timeout"`
	// SCEP settings of the profile.
	SCEP SCEPProfileConfig `yaml:"scep"`
	// require_inventory, min_os, min_patch_level (inventory.go).
	inventoryProfileConfig `yaml:",inline"`
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

// MDMConfig is the mdm: section: one part per connector, each owned by its
// package.
type MDMConfig struct {
	Webhook mdm.WebhookFileConfig `yaml:"webhook"`
	Jamf    jamf.FileConfig       `yaml:"jamf"`
	Intune  intune.FileConfig     `yaml:"intune"`
}

// DefaultConfig is the embedded default every file is laid over: the
// process's own defaults and each component's.
func DefaultConfig() *Config {
	return &Config{
		DataDir: "./data",
		Log:     LogConfig{Format: "text", Level: "info"},
		RADIUS:  radius.DefaultFileConfig(),
		Enroll:  enroll.DefaultFileConfig(),
		Admin:   admin.DefaultFileConfig(),
		Metrics: metrics.DefaultFileConfig(),
		Audit:   auditexport.DefaultFileConfig(),
		Store:   postgres.DefaultStoreFileConfig(),
		MDM: MDMConfig{
			Webhook: mdm.DefaultWebhookFileConfig(),
			Intune:  intune.DefaultFileConfig(),
		},
	}
}

// LoadConfig reads path over the defaults. Unknown keys are errors.
func LoadConfig(path string) (*Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		// First the keys and values, by their full path; then the decode.
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		if err := config.CheckNode(&doc, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
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
	cfg.File = path
	return cfg, nil
}

// ServeOptions are what `hardbound serve` sets beside the file: the file
// (Path), the --data-dir and --log-format overrides, --dev and the build's
// version.
type ServeOptions struct {
	Path, DataDir, LogFormat string
	Dev                      bool
	Version                  string
}

// Load is LoadConfig(o.Path) with o over it; the Config's Load repeats
// it, so that a reload (SIGHUP, `hardbound config reload`) keeps the
// command line's overrides.
func (o ServeOptions) Load() (*Config, error) {
	cfg, err := LoadConfig(o.Path)
	if err != nil {
		return nil, err
	}
	if o.DataDir != "" {
		cfg.DataDir = o.DataDir
	}
	if o.LogFormat != "" {
		cfg.Log.Format = o.LogFormat
	}
	cfg.Dev, cfg.Version, cfg.Load = o.Dev, o.Version, o.Load
	return cfg, nil
}

// fieldErr names a bad value of the process's keys and the profiles like
// every section's Validate does.
func fieldErr(field, format string, a ...any) error { return config.Errorf(field, format, a...) }

// Validate checks every field and resolves secrets and prefixes: the
// process's keys and the profiles here, each section by its own Validate,
// and the checks across sections.
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
	if err := c.RADIUS.Validate("radius"); err != nil {
		return err
	}
	if err := c.Enroll.Validate("enroll"); err != nil {
		return err
	}
	if _, err := c.Enroll.Names("enroll", c.profileNames()); err != nil {
		return err
	}
	if err := c.Admin.Validate("admin"); err != nil {
		return err
	}
	if err := c.Audit.Validate("audit"); err != nil {
		return err
	}
	if err := c.Metrics.Validate("metrics"); err != nil {
		return err
	}
	if err := c.Store.Validate("store"); err != nil {
		return err
	}
	if _, err := posture.ParseOutagePolicy(c.Store.Unavailable.Policy); err != nil {
		return fieldErr("store.unavailable.policy", "%v", err)
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
		if err := p.validateInventory(f); err != nil {
			return err
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
	if err := c.MDM.Jamf.Validate("mdm.jamf"); err != nil {
		return err
	}
	if jc := c.MDM.Jamf; jc.ChallengeProfile != "" && !seen[jc.ChallengeProfile] && !(len(c.Profiles) == 0 && jc.ChallengeProfile == policy.DefaultProfile) {
		return fieldErr("mdm.jamf.challenge_profile", "no profile named %q", jc.ChallengeProfile)
	}
	if err := c.MDM.Webhook.Validate("mdm.webhook"); err != nil {
		return err
	}
	if err := c.MDM.Intune.Validate("mdm.intune"); err != nil {
		return err
	}
	return c.validateInventorySources()
}
