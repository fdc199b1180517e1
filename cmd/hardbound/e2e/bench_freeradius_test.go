package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"hardbound/radius/freeradiustest"

	"hardbound/enroll/devbind"
	"hardbound/store"
)

// freeradiusConf is a complete FreeRADIUS 3.2 configuration: one client, an
// EAP-TLS module trusting our CA, one auth listener. Nothing is read from
// /etc/freeradius.
const freeradiusConf = `prefix = /usr
confdir = %[1]s
raddbdir = %[1]s
logdir = %[1]s
run_dir = %[1]s
db_dir = %[1]s
libdir = /usr/lib/freeradius
pidfile = %[1]s/radiusd.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = files
	file = %[1]s/radius.log
	auth = yes
}
security {
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
thread pool {
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
	max_requests_per_server = 0
}
client local {
	ipaddr = 127.0.0.1
	secret = %[2]s
	require_message_authenticator = yes
}
modules {
	eap {
		default_eap_type = tls
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 1024
		tls-config tls-common {
			private_key_file = %[1]s/server.key
			certificate_file = %[1]s/server.crt
			ca_file = %[1]s/ca.pem
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "1.3"
			fragment_size = 1024
			cache {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[3]d
	}
	authorize {
		eap {
			ok = return
		}
	}
	authenticate {
		eap
	}
}
`

// startFreeRADIUS runs FreeRADIUS in the foreground on 127.0.0.1 with
// in's RADIUS server certificate and CA, and returns its address and
// shared secret.
func startFreeRADIUS(t *testing.T, in *instance) (addr, secret string) {
	t.Helper()
	dir := t.TempDir()
	data := in.cfg.DataDir
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(data, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := map[string][]byte{
		"server.crt": read("tls/radius.crt"),
		"server.key": read("tls/radius.key"),
		"ca.pem":     append(read("ca/issuing.crt"), read("ca/root.crt")...),
	}
	var sb [16]byte
	_, _ = rand.Read(sb[:])
	secret = hex.EncodeToString(sb[:])
	port := freeUDPPort(t)
	files["radiusd.conf"] = fmt.Appendf(nil, freeradiusConf, dir, secret, port)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	freeradiustest.Run(t, "freeradius", dir)
	return fmt.Sprintf("127.0.0.1:%d", port), secret
}

// The load generator must work against any RFC-conformant RADIUS server,
// so it is run against FreeRADIUS too: EAP-TLS 1.2 and 1.3 accepted with
// the MPPE keys matching the supplicant's MSK, and a device whose CA
// FreeRADIUS does not trust counted as a reject, not an error.
func TestBenchEAPTLSAgainstFreeRADIUS(t *testing.T) {
	requireTools(t, "freeradius")
	t.Parallel()
	in := startTest(t, testConfig(t))
	other := startTest(t, testConfig(t))
	okDir, foreignDir := t.TempDir(), t.TempDir()
	for _, id := range []string{"fr-ok-1", "fr-ok-2"} {
		writeDevice(t, okDir, id, in, in.bind(t, devbind.Request{DeviceID: id, Posture: store.ComplianceCompliant}))
	}
	writeDevice(t, foreignDir, "fr-foreign", other, other.bind(t, devbind.Request{DeviceID: "fr-foreign", Posture: store.ComplianceCompliant}))
	// The supplicant still trusts FreeRADIUS's certificate (in's CA); only
	// its own certificate is foreign to FreeRADIUS.
	root, err := os.ReadFile(filepath.Join(okDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreignDir, "ca.crt"), root, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, secret := startFreeRADIUS(t, in)

	// FreeRADIUS answers any certificate it cannot verify with a TLS alert
	// and an Access-Reject.
	runBenchCases(t, addr, []string{"--secret", secret}, []benchCase{
		{"accept/tls1.2", okDir, "1.2", 10, 0},
		{"accept/tls1.3", okDir, "1.3", 10, 0},
		{"reject/untrusted-ca-is-a-reject-not-an-error", foreignDir, "1.2", 0, 4},
	})
}
