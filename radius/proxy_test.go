package radius

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/radius/freeradiustest"
)

// freeradiusProxyConf is a FreeRADIUS 3 configuration that proxies every
// Accounting-Request it receives on 127.0.0.1 to hardbound, as a site's
// proxy in front of many NASes would. Nothing is read from /etc.
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
}
security {
	max_attributes = 200
	reject_delay = 0
}
thread pool {
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
	max_requests_per_server = 0
}
client nases {
	ipaddr = 127.0.0.1
	secret = %[2]s
}
modules {
	always okay {
		rcode = ok
	}
}
proxy server {
	default_fallback = no
}
home_server hardbound {
	type = acct
	ipaddr = 127.0.0.1
	port = %[3]d
	secret = %[2]s
	response_window = 5
	status_check = none
}
home_server_pool hardbound {
	type = fail-over
	home_server = hardbound
}
realm hardbound {
	acct_pool = hardbound
	nostrip
}
server default {
	listen {
		type = acct
		ipaddr = 127.0.0.1
		port = %[4]d
	}
	preacct {
		update control {
			&Proxy-To-Realm := "hardbound"
		}
	}
	accounting {
		okay
	}
}
`

// TestInteropFreeRADIUSProxyAccountingOnClosesOnlyItsNAS: two NASes
// (NAS-IP-Address 10.1.0.1 and 10.1.0.2) reach hardbound through one
// FreeRADIUS proxy, so through one source address and one client. The
// Accounting-On of the first closes its session only; a replay of it
// (same Event-Timestamp) closes nothing more.
func TestInteropFreeRADIUSProxyAccountingOnClosesOnlyItsNAS(t *testing.T) {
	t.Parallel()
	fr := requireTool(t, "freeradius")
	rc := requireTool(t, "radclient")
	pki := newPKI(t)
	sessions, metrics := newMemSessions(), newCountMetrics()
	srv, err := New(Config{Clients: []Client{{Name: "proxy", Prefix: netip.MustParsePrefix("127.0.0.1/32"),
		Secret: []byte(testSecret), RequireMessageAuthenticator: true}}},
		pki.eapServer(t), pki.decider(), sessions, &memAudit{}, WithMetrics(metrics),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	acct := listenLoopback(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, nil, acct) }()
	t.Cleanup(func() { cancel(); <-done })

	dir := t.TempDir()
	pc := listenLoopback(t) // a free UDP port for the proxy's listener
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	conf := fmt.Sprintf(freeradiusProxyConf, dir, testSecret, acct.LocalAddr().(*net.UDPAddr).Port, port)
	if err := os.WriteFile(filepath.Join(dir, "radiusd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	freeradiustest.Run(t, fr, dir)

	proxy := fmt.Sprintf("127.0.0.1:%d", port)
	send := func(stdin string) {
		t.Helper()
		got, err := runTool(t, 30*time.Second, stdin, rc, "-x", "-r", "3", "-t", "5", proxy, "acct", testSecret)
		if err != nil || !strings.Contains(got, "Received Accounting-Response") {
			t.Fatalf("radclient via the proxy (%q): %v\n%s", stdin, err, got)
		}
	}
	send("Acct-Status-Type = Start\nAcct-Session-Id = \"a-1\"\nNAS-IP-Address = 10.1.0.1\n")
	send("Acct-Status-Type = Start\nAcct-Session-Id = \"b-1\"\nNAS-IP-Address = 10.1.0.2\n")
	on := fmt.Sprintf("Acct-Status-Type = Accounting-On\nNAS-IP-Address = 10.1.0.1\nEvent-Timestamp = %d\n", time.Now().Unix()+30)
	send(on)
	if a, ok := sessions.get("proxy", "a-1"); !ok || a.Live() || a.NASIPAddress != "10.1.0.1" {
		t.Fatalf("10.1.0.1's session after its Accounting-On: %+v (%v)", a, ok)
	}
	if b, ok := sessions.get("proxy", "b-1"); !ok || !b.Live() {
		t.Fatalf("10.1.0.2's session was closed by 10.1.0.1's Accounting-On: %+v (%v)", b, ok)
	}
	send(on) // replayed: answered, closes nothing
	if metrics.get("acct/accounting_on/ok") != 1 || metrics.get("acct/accounting_on/refused_stale") != 1 {
		t.Fatalf("metrics %v", metrics)
	}
}
