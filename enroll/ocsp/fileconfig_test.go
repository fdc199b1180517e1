package ocsp_test

import (
	"testing"
	"time"

	"hardbound/enroll/ocsp"
	"hardbound/store/config"
)

func TestFileConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*ocsp.FileConfig)
		field  string
	}{
		{name: "defaults"},
		{name: "url", mutate: func(c *ocsp.FileConfig) { c.URL = "ftp://x/ocsp" }, field: "enroll.ocsp.url"},
		{name: "validity", mutate: func(c *ocsp.FileConfig) { c.Validity = 0 }, field: "enroll.ocsp.validity"},
		{name: "refresh", mutate: func(c *ocsp.FileConfig) { c.Refresh = config.Duration(time.Hour) }, field: "enroll.ocsp.refresh"},
		{name: "signer", mutate: func(c *ocsp.FileConfig) { c.SignerValidity = config.Duration(time.Minute) }, field: "enroll.ocsp.signer_validity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ocsp.DefaultFileConfig()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			if err := config.MatchField(c.Validate("enroll.ocsp"), tt.field); err != nil {
				t.Fatal(err)
			}
		})
	}
}
