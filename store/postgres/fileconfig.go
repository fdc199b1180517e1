package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store/config"
)

// Backends of the store: section.
const (
	BackendBadger   = "badger"
	BackendPostgres = "postgres"
)

// StoreFileConfig is the store: section of hardbound.yaml: which backend
// holds the records, and the PostgreSQL settings when it is this one.
// Badger, in <data_dir>/db, is the default and needs nothing else.
type StoreFileConfig struct {
	Backend  string     `yaml:"backend"` // badger | postgres
	Postgres FileConfig `yaml:"postgres"`
	// Unavailable is what a node does while its database is away
	// (docs/ha.md, "When the database is away"); only a networked
	// backend goes away.
	Unavailable UnavailableFileConfig `yaml:"unavailable"`
}

// UnavailableFileConfig is the store.unavailable: section.
type UnavailableFileConfig struct {
	// Grace is how long authentication answers from the warm caches once
	// the database stopped answering.
	Grace config.Duration `yaml:"grace"`
	// Policy is what follows the grace: reject (fail closed, the
	// default) or accept_cached (keep answering from the caches). The
	// names are posture's (posture.ParseOutagePolicy), checked by the
	// node's config.
	Policy string `yaml:"policy"`
}

// FileConfig is the store.postgres: section.
type FileConfig struct {
	// DSN is a libpq connection string or URL. A password in it is a
	// secret in the config file: prefer DSNFile, or a password from
	// PGPASSFILE / a client certificate.
	DSN string `yaml:"dsn"`
	// DSNFile names a file holding the DSN (kept 0600, outside the config).
	DSNFile string `yaml:"dsn_file"`
	// MaxConns bounds the pool of each node (the LISTEN connection is one
	// more).
	MaxConns int `yaml:"max_conns"`
	// StatementTimeout is the server-side statement_timeout of every
	// pooled connection, so that a stuck query fails instead of holding a
	// RADIUS worker; 0 keeps the server's.
	StatementTimeout config.Duration `yaml:"statement_timeout"`
	// PollInterval is how often a node looks for other nodes' changes
	// without being woken by a notification. With listen off it is the
	// propagation delay.
	PollInterval config.Duration `yaml:"poll_interval"`
	// Listen uses LISTEN/NOTIFY to hear of other nodes' changes at once;
	// off, polling alone finds them (engines without LISTEN).
	Listen bool `yaml:"listen"`

	dsn string // resolved by Validate
}

// DefaultStoreFileConfig is the section before the file is laid over it.
func DefaultStoreFileConfig() StoreFileConfig {
	return StoreFileConfig{Backend: BackendBadger, Postgres: DefaultFileConfig(),
		Unavailable: UnavailableFileConfig{Grace: config.Duration(DefaultUnavailableGrace), Policy: "reject"}}
}

// DefaultUnavailableGrace is store.unavailable.grace by default (the
// reasoning is posture.DefaultOutageGrace's, which must stay equal).
const DefaultUnavailableGrace = 60 * time.Second

// DefaultFileConfig is the store.postgres section's defaults.
func DefaultFileConfig() FileConfig {
	return FileConfig{
		MaxConns:         16,
		StatementTimeout: config.Duration(30 * time.Second),
		PollInterval:     config.Duration(time.Second),
		Listen:           true,
	}
}

// Validate names the field of a bad value; path is the section's place in
// the file ("store").
func (c *StoreFileConfig) Validate(path string) error {
	if g := c.Unavailable.Grace.D(); g < 0 || g > 24*time.Hour {
		return config.Errorf(path+".unavailable.grace", "%s is not between 0 and 24h", g)
	}
	switch c.Backend {
	case "", BackendBadger:
		c.Backend = BackendBadger
		return nil
	case BackendPostgres:
		return c.Postgres.Validate(path + ".postgres")
	}
	return config.Errorf(path+".backend", "%q is not badger or postgres", c.Backend)
}

// Validate checks the section and reads dsn_file; path is its place in
// the file ("store.postgres").
func (c *FileConfig) Validate(path string) error {
	switch {
	case c.DSN != "" && c.DSNFile != "":
		return config.Errorf(path+".dsn_file", "set dsn or dsn_file, not both")
	case c.DSN == "" && c.DSNFile == "":
		return config.Errorf(path+".dsn", "required (or dsn_file) with backend postgres")
	case c.DSNFile != "":
		dsn, err := config.ReadSecret(path+".dsn_file", c.DSNFile)
		if err != nil {
			return err
		}
		c.dsn = dsn
	default:
		c.dsn = c.DSN
	}
	field := path + ".dsn"
	if c.DSNFile != "" {
		field = path + ".dsn_file"
	}
	// Not pgx's message: a URL that fails to parse is quoted whole in
	// it, password included.
	if _, err := pgx.ParseConfig(c.dsn); err != nil {
		return config.Errorf(field, "not a PostgreSQL connection string (key=value pairs or a postgres:// URL)")
	}
	switch {
	case c.MaxConns < 1 || c.MaxConns > 1000:
		return config.Errorf(path+".max_conns", "%d is not between 1 and 1000", c.MaxConns)
	case c.PollInterval.D() < 10*time.Millisecond || c.PollInterval.D() > time.Hour:
		return config.Errorf(path+".poll_interval", "%s is not between 10ms and 1h", c.PollInterval.D())
	case c.StatementTimeout.D() != 0 && c.StatementTimeout.D() < time.Second:
		return config.Errorf(path+".statement_timeout", "%s is under 1s (0 keeps the server's)", c.StatementTimeout.D())
	}
	return nil
}

// ResolvedDSN is the DSN after Validate (read from dsn_file if set). It is
// a secret: never log it.
func (c *FileConfig) ResolvedDSN() string { return c.dsn }

// Options are the Open options the section asks for.
func (c *FileConfig) Options() []Option {
	return []Option{
		WithMaxConns(c.MaxConns),
		WithStatementTimeout(c.StatementTimeout.D()),
		WithPollInterval(c.PollInterval.D()),
		WithListen(c.Listen),
	}
}
