package radsec_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"hardbound/radius/freeradiustest"

	"hardbound/enroll/devbind"
)

// freeradiusProxyConf is FreeRADIUS 3.2 as a RadSec client: it takes
// RADIUS/UDP from eapol_test and proxies every request to hardbound, a home
// server with proto = tcp and a tls section.
const freeradiusProxyConf = `prefix = /usr
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
proxy_requests = yes
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
proxy server {
	default_fallback = no
}
home_server hardbound {
	type = auth
	ipaddr = 127.0.0.1
	port = %[4]d
	proto = tcp
	secret = radsec
	status_check = none
	response_window = 20
	tls {
		private_key_file = %[1]s/nas.key
		certificate_file = %[1]s/nas.crt
		ca_file = %[1]s/ca.crt
		fragment_size = 8192
		tls_min_version = "1.2"
		tls_max_version = "1.3"
	}
}
home_server_pool hardbound_pool {
	type = fail-over
	home_server = hardbound
}
realm hardbound {
	auth_pool = hardbound_pool
	nostrip
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[3]d
	}
	authorize {
		update control {
			&Proxy-To-Realm := "hardbound"
		}
	}
	authenticate {
	}
}
`

// TestFreeRADIUSHomeServer: eapol_test -> FreeRADIUS 3.2 (UDP) ->
// hardbound (RADIUS/TLS, FreeRADIUS's tls home server with a NAS
// certificate from the Issuer): accepted, MPPE keys matching.
func TestFreeRADIUSHomeServer(t *testing.T) {
	bin := requireTool(t, "freeradius")
	e := newEnv(t, nil)
	dir := t.TempDir()
	e.writeCA(t, dir)
	writeCert(t, dir, "nas", e.nasCert(t, "freeradius1"))
	port := freeUDPPort(t)
	_, tport, _ := net.SplitHostPort(e.addr)
	tp, err := strconv.Atoi(tport)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "fr-udp-secret"
	if err := os.WriteFile(filepath.Join(dir, "radiusd.conf"), fmt.Appendf(nil, freeradiusProxyConf, dir, secret, port, tp), 0o600); err != nil {
		t.Fatal(err)
	}
	freeradiustest.Run(t, bin, dir)
	dev := e.device(t, "dev-fr", devbind.Request{})
	res, err := eapolTestSecret(t, port, secret, filepath.Join(dir, "ca.crt"), dev, "", 20)
	if err != nil || !strings.Contains(res, "SUCCESS") || !strings.Contains(res, "MPPE keys OK: 1  mismatch: 0") {
		t.Fatalf("eapol_test through FreeRADIUS: %v\n%s", err, tail(res, 30))
	}
	if e.metrics.get("accepted/hardbound") != 1 || !strings.Contains(e.logs.String(), "nas=freeradius1") {
		t.Fatalf("no RADIUS/TLS connection from FreeRADIUS: %v", e.metrics.snapshot())
	}
}
