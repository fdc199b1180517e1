package postgres

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/store/config"
)

func decodeSection(t *testing.T, body string) StoreFileConfig {
	t.Helper()
	c := DefaultStoreFileConfig()
	dec := yaml.NewDecoder(strings.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("decode %q: %v", body, err)
	}
	return c
}

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://hb:s3cret@db.example:5432/hardbound\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      string
		wantField string
		wantDSN   string
	}{
		{name: "ok/default_is_badger", body: ""},
		{name: "ok/badger", body: "backend: badger\n"},
		{name: "ok/badger_ignores_postgres_section", body: "backend: badger\npostgres: {max_conns: 0}\n"},
		{name: "ok/dsn", body: "backend: postgres\npostgres: {dsn: 'host=127.0.0.1 dbname=hb'}\n", wantDSN: "host=127.0.0.1 dbname=hb"},
		{name: "ok/dsn_file", body: "backend: postgres\npostgres: {dsn_file: " + dsnFile + "}\n", wantDSN: "postgres://hb:s3cret@db.example:5432/hardbound"},
		{name: "ok/polling_only", body: "backend: postgres\npostgres: {dsn: 'host=x', listen: false, poll_interval: 250ms}\n", wantDSN: "host=x"},
		{name: "bad/backend", body: "backend: mysql\n", wantField: "store.backend"},
		{name: "bad/no_dsn", body: "backend: postgres\n", wantField: "store.postgres.dsn"},
		{name: "bad/both", body: "backend: postgres\npostgres: {dsn: 'host=x', dsn_file: " + dsnFile + "}\n", wantField: "store.postgres.dsn_file"},
		{name: "bad/dsn_file_missing", body: "backend: postgres\npostgres: {dsn_file: " + filepath.Join(dir, "nope") + "}\n", wantField: "store.postgres.dsn_file"},
		{name: "bad/dsn_file_empty", body: "backend: postgres\npostgres: {dsn_file: " + empty + "}\n", wantField: "store.postgres.dsn_file"},
		{name: "bad/dsn_syntax", body: "backend: postgres\npostgres: {dsn: 'postgres://hb:pw@host:notaport/db'}\n", wantField: "store.postgres.dsn"},
		{name: "bad/max_conns", body: "backend: postgres\npostgres: {dsn: 'host=x', max_conns: 0}\n", wantField: "store.postgres.max_conns"},
		{name: "bad/poll_interval", body: "backend: postgres\npostgres: {dsn: 'host=x', poll_interval: 1ms}\n", wantField: "store.postgres.poll_interval"},
		{name: "bad/statement_timeout", body: "backend: postgres\npostgres: {dsn: 'host=x', statement_timeout: 10ms}\n", wantField: "store.postgres.statement_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := decodeSection(t, tc.body)
			err := c.Validate("store")
			if err := config.MatchField(err, tc.wantField); err != nil {
				t.Fatal(err)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if tc.wantDSN != "" && c.Postgres.ResolvedDSN() != tc.wantDSN {
				t.Fatalf("dsn %q, want %q", c.Postgres.ResolvedDSN(), tc.wantDSN)
			}
		})
	}
}

func TestFileConfigOptions(t *testing.T) {
	t.Parallel()
	c := DefaultFileConfig()
	c.PollInterval = config.Duration(300 * time.Millisecond)
	c.Listen = false
	var o options
	for _, fn := range c.Options() {
		fn(&o)
	}
	if o.maxConns != 16 || o.stmtTimeout != 30*time.Second || o.pollInterval != 300*time.Millisecond || o.listen {
		t.Fatalf("options %+v", o)
	}
}
