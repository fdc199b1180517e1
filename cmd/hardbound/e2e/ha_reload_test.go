package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	hbradius "hardbound/radius"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/config"
	"hardbound/store/postgres/pgtest"
)

// TestE2EPostgresReloadOneDisconnect: two nodes on one PostgreSQL run on
// files that assign VLAN 10; sessions are admitted and accounted through
// node B. Both files are changed to VLAN 20 and both nodes get SIGHUP at
// once, as configuration management reloading a cluster does: each node
// judges the live sessions again and publishes a policy change for each,
// and the NAS's DAS still receives exactly one Disconnect-Request per
// session, because both nodes claim the same (profiles, session) pair
// (radius/dynauth claimKey, docs/ha.md).
func TestE2EPostgresReloadOneDisconnect(t *testing.T) {
	t.Parallel()
	cl, err := pgtest.Start()
	if err != nil {
		pgtest.Require(t, nil, err)
	}
	t.Cleanup(cl.Stop)
	const (
		secret   = "e2e-ha-reload-nas-secret"
		sessions = 3
	)
	das := newE2EDAS(t, secret)
	vlan := func(v string) []node.ProfileConfig { return []node.ProfileConfig{{Name: "default", VLAN: v}} }
	nodes := startNodesWith(t, cl, 2, func(cfg *node.Config) {
		cfg.RADIUS.Clients = []hbradius.FileClient{{Name: "nas1", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: das.port()}}
		// Long enough that no answer of the DAS is retransmitted on a
		// loaded machine: every datagram counted is a request of its own.
		cfg.RADIUS.CoA.Timeout = config.Duration(10 * time.Second)
		cfg.Profiles = vlan("10")
	})
	b := nodes[1]
	ctx := e2eContext(t)
	var sids []string
	for i := range sessions {
		dev := nodes[0].bind(t, devbind.Request{DeviceID: fmt.Sprintf("ha-reload-%d", i), Posture: store.ComplianceCompliant})
		nas := b.nasClient(t, secret, func(cc *eapclient.Config) { cc.CallingStationID = fmt.Sprintf("02-00-00-00-02-%02x", i) })
		res := b.mustAccept(t, nas, dev.Certificate)
		sid := fmt.Sprintf("HA-RELOAD-%d", i)
		resp, err := nas.Accounting(ctx, eapclient.AcctStart, radius.Attributes{
			{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
			{Type: rfc2865.Class_Type, Attribute: res.Class},
		})
		if err != nil || resp.Code != radius.CodeAccountingResponse {
			t.Fatalf("Accounting-Start on node B: %v", err)
		}
		sids = append(sids, sid)
	}

	reloaded := make([]int, len(nodes))
	for i, in := range nodes {
		next := *in.cfg
		next.Profiles = vlan("20")
		in.rewriteConfig(t, &next)
		reloaded[i] = strings.Count(in.stderr.String(), "configuration reloaded")
	}
	for _, in := range nodes {
		if err := in.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for i, in := range nodes {
		eventually(t, 15*time.Second, fmt.Sprintf("node %d to reload after SIGHUP", i), func() bool {
			return strings.Count(in.stderr.String(), "configuration reloaded") > reloaded[i]
		})
	}
	// Each node judged every session again and handled a policy change
	// for it: one sent, the other found it claimed.
	count := func() (sent, claimed float64) {
		for _, in := range nodes {
			m := in.scrape(t)
			sent += metricSum(t, m, "hardbound_dynauth_events_total", `kind="policy"`, `action="disconnect"`)
			claimed += metricSum(t, m, "hardbound_dynauth_events_total", `kind="policy"`, `action="claimed_elsewhere"`)
		}
		return sent, claimed
	}
	eventually(t, 30*time.Second, "both nodes to handle the policy change of every session", func() bool {
		sent, claimed := count()
		return sent+claimed >= float64(len(nodes)*sessions)
	})
	if sent, claimed := count(); sent != sessions || claimed != sessions {
		t.Fatalf("policy events: %v sent, %v claimed elsewhere; want %d and %d", sent, claimed, sessions, sessions)
	}
	got := map[string]int{}
	for _, p := range das.requests() {
		if p.Code != radius.CodeDisconnectRequest {
			t.Fatalf("DAS got %v, want only Disconnect-Requests", p.Code)
		}
		got[rfc2866.AcctSessionID_GetString(p)]++
	}
	for _, sid := range sids {
		if got[sid] != 1 {
			t.Errorf("DAS got %d Disconnect-Requests for %s, want exactly 1 (all: %v)", got[sid], sid, got)
		}
	}
	if len(got) != sessions {
		t.Errorf("DAS got requests for %v, want only the %d sessions", got, sessions)
	}
	if out := b.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify on node B: %s", out)
	}
}
