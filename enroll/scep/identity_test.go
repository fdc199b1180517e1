package scep_test

import (
	"testing"

	"hardbound/enroll/scep"
)

func TestIdentityCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      scep.Identity
		wantErr bool
	}{
		{"ok/default-cn", scep.Identity{}, false},
		{"ok/cn", scep.Identity{Source: scep.IdentityCN}, false},
		{"ok/serial", scep.Identity{Source: scep.IdentitySerial, Alias: "serial"}, false},
		{"ok/san_uri", scep.Identity{Source: scep.IdentitySANURI, URIPrefix: "IntuneDeviceId://"}, false},
		{"fail/san_uri-without-prefix", scep.Identity{Source: scep.IdentitySANURI}, true},
		{"fail/unknown", scep.Identity{Source: "imei"}, true},
	}
	for _, tc := range tests {
		if err := tc.id.Check(); (err != nil) != tc.wantErr {
			t.Errorf("%s: Check() = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}
