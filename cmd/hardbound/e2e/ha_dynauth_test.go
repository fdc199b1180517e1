package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	hbradius "hardbound/radius"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/config"
	"hardbound/store/postgres/pgtest"
)

// testThreeNodesOneDisconnect: three nodes on one database, one NAS whose
// DAS (a UDP listener of the test) every node knows. Devices admitted and
// accounted through node C, revoked through node B: every node's enforcer
// sees each revocation through the change feed, and the NAS receives
// exactly one Disconnect-Request per session (the claim of docs/ha.md),
// counted on the wire once every node has handled the change.
func testThreeNodesOneDisconnect(t *testing.T, cl *pgtest.Cluster) {
	const secret = "e2e-ha-nas-secret"
	das := newE2EDAS(t, secret)
	nodes := startNodesWith(t, cl, 3, func(cfg *node.Config) {
		cfg.RADIUS.Clients = []hbradius.FileClient{{Name: "nas1", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: das.port()}}
		// Long enough that no answer of the DAS is retransmitted on a
		// loaded machine: every datagram counted is a request of its own.
		cfg.RADIUS.CoA.Timeout = config.Duration(10 * time.Second)
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	const devices = 5
	for i := range devices {
		ctx := e2eContext(t)
		dev := a.bind(t, devbind.Request{DeviceID: fmt.Sprintf("ha-da-%d", i), Posture: store.ComplianceCompliant})
		nas := c.nasClient(t, secret, func(cc *eapclient.Config) { cc.CallingStationID = fmt.Sprintf("02-00-00-00-01-%02x", i) })
		res := c.mustAccept(t, nas, dev.Certificate)
		sid := fmt.Sprintf("HA-SESSION-%d", i)
		resp, err := nas.Accounting(ctx, eapclient.AcctStart, radius.Attributes{
			{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
			{Type: rfc2865.Class_Type, Attribute: res.Class},
		})
		if err != nil || resp.Code != radius.CodeAccountingResponse {
			t.Fatalf("Accounting-Start on node C: %v", err)
		}
		if err := b.api(http.MethodPost, "/api/v1/devices/"+dev.ID+"/revoke", admin.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
			t.Fatalf("revoke %s on node B: %v", dev.ID, err)
		}
		// Every node has handled the revocation: one sent, the others
		// found the session claimed.
		eventually(t, 15*time.Second, "every node to handle the revocation", func() bool {
			sent, claimed := 0.0, 0.0
			for _, in := range nodes {
				m := in.scrape(t)
				sent += metricSum(t, m, "hardbound_dynauth_events_total", `kind="device_revoked"`, `action="disconnect"`)
				claimed += metricSum(t, m, "hardbound_dynauth_events_total", `kind="device_revoked"`, `action="claimed_elsewhere"`)
			}
			return sent+claimed >= float64(3*(i+1))
		})
		n := 0
		for _, p := range das.requests() {
			if rfc2866.AcctSessionID_GetString(p) == sid {
				if p.Code != radius.CodeDisconnectRequest {
					t.Fatalf("DAS got %v for %s, want Disconnect-Request", p.Code, sid)
				}
				n++
			}
		}
		if n != 1 {
			t.Fatalf("DAS got %d Disconnect-Requests for %s, want exactly 1", n, sid)
		}
	}
	sent, claimed := 0.0, 0.0
	for _, in := range nodes {
		m := in.scrape(t)
		sent += metricSum(t, m, "hardbound_dynauth_events_total", `kind="device_revoked"`, `action="disconnect"`)
		claimed += metricSum(t, m, "hardbound_dynauth_events_total", `kind="device_revoked"`, `action="claimed_elsewhere"`)
	}
	if sent != devices || claimed != 2*devices {
		t.Fatalf("events: %v sent, %v claimed elsewhere; want %d and %d", sent, claimed, devices, 2*devices)
	}
	if got := len(das.requests()); got != devices {
		t.Fatalf("DAS got %d requests in all, want %d", got, devices)
	}
	if out := a.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify on node A: %s", out)
	}
}
