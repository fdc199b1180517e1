package e2e

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	hbradius "hardbound/radius"
	"hardbound/radius/dynauth"
	"hardbound/radius/eapclient"
	"hardbound/radius/packet"
	"hardbound/store"
	"hardbound/store/config"
)

// e2eDAS is a NAS's Dynamic Authorization Server on 127.0.0.1: it checks
// the Request Authenticator and the Message-Authenticator of every request
// and ACKs the valid ones.
type e2eDAS struct {
	conn   *net.UDPConn
	secret []byte
	sec    *packet.Secret

	mu      sync.Mutex
	valid   []*radius.Packet
	invalid []string
}

func newE2EDAS(t *testing.T, secret string) *e2eDAS {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &e2eDAS{conn: conn, secret: []byte(secret), sec: packet.NewSecret([]byte(secret))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(d.invalid) > 0 {
			t.Errorf("fake DAS discarded invalid requests: %v", d.invalid)
		}
	})
	return d
}

func (d *e2eDAS) port() int { return d.conn.LocalAddr().(*net.UDPAddr).Port }

func (d *e2eDAS) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		v, p, err := d.check(buf[:n])
		d.mu.Lock()
		if err != nil {
			d.invalid = append(d.invalid, err.Error())
		} else {
			d.valid = append(d.valid, p)
		}
		d.mu.Unlock()
		if err != nil {
			continue
		}
		code := radius.CodeDisconnectACK
		if p.Code == radius.CodeCoARequest {
			code = radius.CodeCoAACK
		}
		if b, err := d.sec.EncodeResponse(&v, code, false, nil); err == nil {
			_, _ = d.conn.WriteToUDP(b, from)
		}
	}
}

// check validates a request as RFC 5176 and RFC 3579 §3.2 require: the
// Request Authenticator and a Message-Authenticator computed over a zero
// Request Authenticator. The codec's view aliases raw.
func (d *e2eDAS) check(raw []byte) (packet.Packet, *radius.Packet, error) {
	v, err := packet.Parse(raw)
	if err != nil {
		return v, nil, err
	}
	if c := v.Code(); c != radius.CodeDisconnectRequest && c != radius.CodeCoARequest {
		return v, nil, fmt.Errorf("unexpected code %v", c)
	}
	if err := d.sec.VerifyRequest(&v, packet.Policy{RequireMessageAuthenticator: true}); err != nil {
		return v, nil, err
	}
	p, err := radius.Parse(raw, d.secret)
	return v, p, err
}

func (d *e2eDAS) requests() []*radius.Packet {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*radius.Packet(nil), d.valid...)
}

// TestE2ELiveSessionDisconnect: authenticate, start accounting with the
// Accept's Class, then change the device's standing with the CLI; the
// NAS's DAS receives an authentic Disconnect-Request naming the session,
// the outcome is audited, and the next authentication is refused.
func TestE2ELiveSessionDisconnect(t *testing.T) {
	t.Parallel()
	const secret = "e2e-live-nas-secret"
	das := newE2EDAS(t, secret)
	in := startE2E(t, func(cfg *node.Config) {
		cfg.RADIUS.Clients = []hbradius.FileClient{{Name: "nas1", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: das.port()}}
		cfg.RADIUS.CoA.Timeout = config.Duration(500 * time.Millisecond)
	})
	// Runs after the parallel subtests, before the server stops: the audit
	// chain written concurrently by RADIUS, the enforcer and the admin API
	// still verifies.
	t.Cleanup(func() {
		var vr admin.VerifyResult
		in.cliJSON(t, &vr, "audit", "verify")
		if !vr.OK || vr.Events == 0 {
			t.Errorf("audit verify = %+v", vr)
		}
		// And the outcomes are in /metrics.
		m := in.scrape(t)
		for _, c := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"hardbound_dynauth_answers_total", []string{`result="ack"`}, 4},
			{"hardbound_radius_accounting_requests_total", []string{`status="start"`}, 4},
			{"hardbound_radius_accounting_requests_total", []string{`status="stop"`}, 4},
			{"hardbound_radius_rejects_total", []string{`reason="device_quarantined"`}, 1},
			{"hardbound_radius_rejects_total", []string{`reason="cert_revoked"`}, 1},
			{"hardbound_posture_decisions_total", []string{`reason="ok"`, `allow="true"`}, 4},
		} {
			if got := metricSum(t, m, c.name, c.labels...); got < c.min {
				t.Errorf("%s%v = %v, want >= %v", c.name, c.labels, got, c.min)
			}
		}
	})
	tests := []struct {
		name       string
		args       []string // %ID% and %SERIAL% are replaced
		wantReason string
	}{
		{"device_quarantine", []string{"device", "quarantine", "%ID%"}, "device_quarantined"},
		{"cert_revoke", []string{"cert", "revoke", "%SERIAL%", "--reason", "keyCompromise"}, "cert_revoked"},
		{"device_revoke", []string{"device", "revoke", "%ID%"}, "device_revoked"},
		{"posture_noncompliant", []string{"posture", "set", "%ID%", "noncompliant"}, "noncompliant"},
	}
	for i, tt := range tests {
		t.Run(tt.name+"/disconnected", func(t *testing.T) {
			t.Parallel()
			ctx := e2eContext(t)
			dev := in.bind(t, devbind.Request{DeviceID: "live-" + tt.name, Posture: store.ComplianceCompliant})
			nas := in.nasClient(t, secret, func(c *eapclient.Config) { c.CallingStationID = fmt.Sprintf("02-00-00-00-00-%02x", i+1) })
			res := in.mustAccept(t, nas, dev.Certificate)
			if len(res.Class) == 0 {
				t.Fatal("Access-Accept without Class")
			}
			sid := fmt.Sprintf("E2E-SESSION-%04d", i+1)
			resp, err := nas.Accounting(ctx, eapclient.AcctStart, radius.Attributes{
				{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
				{Type: rfc2865.Class_Type, Attribute: res.Class},
			})
			if err != nil || resp.Code != radius.CodeAccountingResponse {
				t.Fatalf("Accounting-Start: %v", err)
			}

			var sessions admin.List[admin.Session]
			in.cliJSON(t, &sessions, "session", "list", "--device", dev.ID)
			if len(sessions.Items) != 1 {
				t.Fatalf("session list --device %s: %d sessions, want 1", dev.ID, len(sessions.Items))
			}
			if s := sessions.Items[0]; s.AcctSessionID != sid || s.NAS != "nas1" || s.DeviceID != dev.ID || !s.Live() || s.CertSHA256 != store.HashCert(dev.Leaf) {
				t.Fatalf("session = %+v", s)
			}
			if out := in.cliOK(t, "session", "list"); !strings.Contains(out, sid) {
				t.Fatalf("session list table lacks %s:\n%s", sid, out)
			}

			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.NewReplacer("%ID%", dev.ID, "%SERIAL%", dev.Binding.Serial).Replace(a)
			}
			in.cliOK(t, args...)
			var got *radius.Packet
			eventually(t, 15*time.Second, "the fake DAS to receive a request for "+sid, func() bool {
				for _, p := range das.requests() {
					if rfc2866.AcctSessionID_GetString(p) == sid {
						got = p
						return true
					}
				}
				return false
			})
			if got.Code != radius.CodeDisconnectRequest {
				t.Fatalf("DAS got %v, want Disconnect-Request", got.Code)
			}
			in.waitAuditEvent(t, "radius.disconnect", dev.ID, "ack", "")
			in.mustReject(t, nas, dev.Certificate, dev.ID, tt.wantReason)

			// The NAS ends the session: it leaves the live list.
			if resp, err := nas.Accounting(ctx, eapclient.AcctStop, radius.Attributes{
				{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
				{Type: rfc2865.Class_Type, Attribute: res.Class},
				{Type: rfc2866.AcctTerminateCause_Type, Attribute: radius.NewInteger(uint32(rfc2866.AcctTerminateCause_Value_AdminReset))},
			}); err != nil || resp.Code != radius.CodeAccountingResponse {
				t.Fatalf("Accounting-Stop: %v", err)
			}
			in.cliJSON(t, &sessions, "session", "list", "--device", dev.ID)
			if len(sessions.Items) != 0 {
				t.Fatalf("stopped session still listed as live: %+v", sessions.Items[0])
			}
			in.cliJSON(t, &sessions, "session", "list", "--device", dev.ID, "--all")
			if len(sessions.Items) != 1 || sessions.Items[0].Live() || sessions.Items[0].TerminateCause != uint32(rfc2866.AcctTerminateCause_Value_AdminReset) {
				t.Fatalf("session list --all after stop = %+v", sessions.Items)
			}
		})
	}
}

// accessRequest builds an authentic Access-Request carrying an
// EAP-Response/Identity, with or without Message-Authenticator.
func accessRequest(t *testing.T, secret string, withMA bool) []byte {
	t.Helper()
	p := radius.New(radius.CodeAccessRequest, []byte(secret))
	if _, err := rand.Read(p.Authenticator[:]); err != nil {
		t.Fatal(err)
	}
	rfc2865.UserName_SetString(p, "anonymous@e2e.test")
	rfc2865.NASIdentifier_SetString(p, "e2e-raw")
	id := []byte("anonymous@e2e.test")
	eap := append([]byte{2, 7, 0, byte(5 + len(id)), 1}, id...)
	p.Attributes = append(p.Attributes, &radius.AVP{Type: rfc2869.EAPMessage_Type, Attribute: eap})
	if !withMA {
		b, err := p.MarshalBinary() // an Access-Request's Authenticator is the random one
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := packet.NewSecret([]byte(secret)).EncodeRequest(p.Code, p.Identifier, p.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func udpExchange(t *testing.T, c *net.UDPConn, req []byte, wait time.Duration) ([]byte, bool) {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	return udpRead(t, c, wait)
}

// udpRead waits up to wait for one datagram.
func udpRead(t *testing.T, c *net.UDPConn, wait time.Duration) ([]byte, bool) {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, err := c.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], true
}

// TestE2ERADIUSWire: BlastRADIUS hygiene and RFC 5080 duplicate detection
// on the running server, seen from raw UDP and /metrics.
func TestE2ERADIUSWire(t *testing.T) {
	t.Parallel()
	in := startE2E(t, nil)
	ctx := e2eContext(t)
	dial := func(t *testing.T) *net.UDPConn {
		raddr, err := net.ResolveUDPAddr("udp", in.Addr("radius-auth"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	metrics := func(t *testing.T) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr("metrics")+"/metrics", nil)
		status, body := httpDo(t, http.DefaultClient, req)
		if status != http.StatusOK {
			t.Fatalf("GET /metrics = %d", status)
		}
		return string(body)
	}
	const dropLine = `hardbound_radius_drops_total{cause="missing_message_authenticator"}`

	t.Run("no_message_authenticator/dropped_and_counted", func(t *testing.T) {
		c := dial(t)
		if strings.Contains(metrics(t), dropLine+" 1") {
			t.Fatal("drop already counted before the test packet")
		}
		req := accessRequest(t, in.radiusSecret, false)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the drop to be counted in /metrics", func() bool {
			return strings.Contains(metrics(t), dropLine+" 1")
		})
		// The drop is counted: any reply would already be here.
		if reply, ok := udpRead(t, c, 200*time.Millisecond); ok {
			t.Fatalf("got a %d-byte reply to an Access-Request without Message-Authenticator", len(reply))
		}
	})

	t.Run("retransmission/byte_identical_reply", func(t *testing.T) {
		c := dial(t)
		req := accessRequest(t, in.radiusSecret, true)
		first, ok := udpExchange(t, c, req, 5*time.Second)
		if !ok {
			t.Fatal("no reply to an authentic Access-Request")
		}
		if !radius.IsAuthenticResponse(first, req, []byte(in.radiusSecret)) {
			t.Fatal("reply is not authentic")
		}
		if radius.Code(first[0]) != radius.CodeAccessChallenge {
			t.Fatalf("reply code %d, want Access-Challenge", first[0])
		}
		second, ok := udpExchange(t, c, req, 5*time.Second)
		if !ok {
			t.Fatal("no reply to the retransmission")
		}
		if !bytes.Equal(first, second) {
			t.Fatal("retransmitted Access-Request got a different reply")
		}
	})

	t.Run("wrong_secret/dropped_and_counted", func(t *testing.T) {
		c := dial(t)
		const line = `hardbound_radius_drops_total{cause="bad_message_authenticator"}`
		before := metricSum(t, metrics(t), "hardbound_radius_drops_total", `cause="bad_message_authenticator"`)
		if _, err := c.Write(accessRequest(t, "not-the-nas-secret", true)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, line+" to count the packet", func() bool {
			return metricSum(t, metrics(t), "hardbound_radius_drops_total", `cause="bad_message_authenticator"`) > before
		})
		if reply, ok := udpRead(t, c, 200*time.Millisecond); ok {
			t.Fatalf("got a %d-byte reply to a packet signed with the wrong secret", len(reply))
		}
	})

	t.Run("status_server/answered", func(t *testing.T) {
		c := dial(t)
		req, err := packet.NewSecret([]byte(in.radiusSecret)).EncodeRequest(radius.CodeStatusServer, 99, nil)
		if err != nil {
			t.Fatal(err)
		}
		reply, ok := udpExchange(t, c, req, 5*time.Second)
		if !ok || radius.Code(reply[0]) != radius.CodeAccessAccept || !radius.IsAuthenticResponse(reply, req, []byte(in.radiusSecret)) {
			t.Fatalf("Status-Server: reply %v %x, want an authentic Access-Accept", ok, reply)
		}
	})

	t.Run("metrics/hardbound_and_go", func(t *testing.T) {
		// One real authentication so the RADIUS series have samples.
		dev := in.bind(t, devbind.Request{DeviceID: "wire-1", Posture: store.ComplianceCompliant})
		in.mustAccept(t, in.nasClient(t, "", nil), dev.Certificate)
		m := metrics(t)
		for _, want := range []string{"hardbound_radius_", "hardbound_posture_decisions_total", "go_goroutines", "go_memstats_", dropLine} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestE2ELiveCoAQuarantineAndRecovery: with prefer_coa a quarantining
// profile moves a live session to the quarantine VLAN with a CoA-Request;
// with reauth_on_recovery, compliance again disconnects the session so the
// device leaves quarantine at once.
func TestE2ELiveCoAQuarantineAndRecovery(t *testing.T) {
	t.Parallel()
	const secret = "e2e-coa-nas-secret"
	das := newE2EDAS(t, secret)
	in := startE2E(t, func(cfg *node.Config) {
		cfg.RADIUS.Clients = []hbradius.FileClient{{Name: "nas-coa", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: das.port()}}
		cfg.RADIUS.CoA = dynauth.FileConfig{Timeout: config.Duration(500 * time.Millisecond), Retries: 2, PreferCoA: true, ReauthOnRecovery: true}
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "quar", Noncompliant: "quarantine", QuarantineVLAN: "666"}}
	})
	ctx := e2eContext(t)
	dev := in.bind(t, devbind.Request{DeviceID: "coa-1", Profile: "quar", Posture: store.ComplianceCompliant})
	nas := in.nasClient(t, secret, nil)
	res := in.mustAccept(t, nas, dev.Certificate)
	const sid = "E2E-COA-0001"
	if resp, err := nas.Accounting(ctx, eapclient.AcctStart, radius.Attributes{
		{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
		{Type: rfc2865.Class_Type, Attribute: res.Class},
	}); err != nil || resp.Code != radius.CodeAccountingResponse {
		t.Fatalf("Accounting-Start: %v", err)
	}
	waitDAS := func(code radius.Code) *radius.Packet {
		t.Helper()
		var got *radius.Packet
		eventually(t, 15*time.Second, fmt.Sprintf("the DAS to receive %v for %s", code, sid), func() bool {
			for _, p := range das.requests() {
				if p.Code == code && rfc2866.AcctSessionID_GetString(p) == sid {
					got = p
					return true
				}
			}
			return false
		})
		return got
	}

	in.cliOK(t, "posture", "set", dev.ID, "noncompliant")
	coa := waitDAS(radius.CodeCoARequest)
	vlan := ""
	for _, a := range coa.Attributes {
		if a.Type == 81 { // Tunnel-Private-Group-ID, optionally tagged (RFC 2868)
			v := a.Attribute
			if len(v) > 0 && v[0] <= 0x1f {
				v = v[1:]
			}
			vlan = string(v)
		}
	}
	if vlan != "666" {
		t.Fatalf("CoA-Request Tunnel-Private-Group-ID = %q, want 666", vlan)
	}
	in.waitAuditEvent(t, "radius.coa", dev.ID, "ack", "")
	if res := in.mustAccept(t, nas, dev.Certificate); res.VLAN != "666" {
		t.Fatalf("re-authentication while noncompliant: VLAN %q, want 666", res.VLAN)
	}

	in.cliOK(t, "posture", "set", dev.ID, "compliant")
	waitDAS(radius.CodeDisconnectRequest)
	in.waitAuditEvent(t, "radius.disconnect", dev.ID, "ack", "")
	if res := in.mustAccept(t, nas, dev.Certificate); res.VLAN != "" {
		t.Fatalf("after recovery: VLAN %q, want none", res.VLAN)
	}
}
