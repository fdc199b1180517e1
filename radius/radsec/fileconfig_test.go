package radsec

import (
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"hardbound/enroll/ca/catest"
	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	dir := t.TempDir()
	c := catest.New(t, filepath.Join(dir, "ext"))
	caFile := filepath.Join(dir, "ext.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Root().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      string
		wantField string // empty: valid
	}{
		{"defaults", "", ""},
		{"on", "addr: 0.0.0.0:2083", ""},
		{"tls13-only", "tls_min_version: '1.3'", ""},
		{"bad-addr", "addr: 2083", "radius.radsec.addr"},
		{"tls11", "tls_min_version: '1.1'", "radius.radsec.tls_min_version"},
		{"zero-conns", "max_connections: 0", "radius.radsec.max_connections"},
		{"in-flight-over-ids", "max_in_flight: 300", "radius.radsec.max_in_flight"},
		{"zero-idle", "idle_timeout: 0s", "radius.radsec.idle_timeout"},
		{"external", "clients: [{name: wlc, ca_file: " + caFile + ", subject_cn: wlc.example.org}]", ""},
		{"external-no-match", "clients: [{name: wlc, ca_file: " + caFile + "}]", "radius.radsec.clients[0]"},
		{"external-bad-name", "clients: [{name: 'a b', ca_file: " + caFile + ", san_dns: x}]", "radius.radsec.clients[0].name"},
		{"external-no-ca", "clients: [{name: wlc, ca_file: /nonexistent, san_dns: x}]", "radius.radsec.clients[0].ca_file"},
		{"nobody", "addr: ':2083'\nhardbound_nas: false", "radius.radsec.clients"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultFileConfig()
			if err := yaml.Unmarshal([]byte(tc.body), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate("radius.radsec")
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if c.Listener().MaxConns != defaultMaxConns && tc.name == "defaults" {
					t.Fatal("defaults not carried to Config")
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("err %v, want field %s", err, tc.wantField)
			}
		})
	}
}
