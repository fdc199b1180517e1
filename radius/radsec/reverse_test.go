package radsec_test

import (
	"context"
	"sync"
	"testing"
	"time"

	lradius "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"hardbound/enroll/devbind"
	"hardbound/radius/dynauth"
	"hardbound/radius/eapclient"
	"hardbound/radius/packet"
	"hardbound/radius/radsec"
)

// TestReverseDisconnect: a device authenticates through a NAS holding a
// RADIUS/TLS connection and its session starts; when the device is
// quarantined, the enforcer's Disconnect-Request travels down that
// connection (draft-ietf-radext-reverse-coa), not over UDP, and the NAS's
// Disconnect-ACK comes back up it. Neither radsecproxy 1.9 nor FreeRADIUS
// 3.2 forwards a reverse Disconnect, so the NAS here is our own Go NAS.
func TestReverseDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	nas := e.nasCert(t, "ap-nat")
	dev := e.device(t, "dev-q", devbind.Request{})
	tc, err := e.dial(t, nas, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := authenticate(t, e, tc, dev)
	if !res.Accepted {
		t.Fatal("not accepted")
	}
	c, err := eapclient.New(eapclient.Config{Stream: tc, Secret: []byte(radsec.Secret), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := lradius.NewString("sess-1")
	if _, err := c.Accounting(e.ctx, eapclient.AcctStart, lradius.Attributes{
		{Type: rfc2866.AcctSessionID_Type, Attribute: sid}, {Type: 25, Attribute: res.Class}}); err != nil {
		t.Fatal(err)
	}
	if s, err := e.st.GetSession(e.ctx, "ap-nat", "sess-1"); err != nil || s.DeviceID != dev.ID {
		t.Fatalf("session %+v: %v", s, err)
	}

	// The NAS side: answer Disconnect-Requests arriving on the connection.
	got := make(chan []byte, 1)
	var nasWG sync.WaitGroup
	nasWG.Go(func() {
		sec := packet.NewSecret([]byte(radsec.Secret))
		buf := make([]byte, packet.MaxLen)
		_ = tc.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := packet.ReadStream(tc, buf, nil)
		if err != nil {
			t.Errorf("NAS read: %v", err)
			return
		}
		req, err := packet.Parse(b)
		if err != nil || req.Code() != lradius.CodeDisconnectRequest {
			t.Errorf("NAS got %v: %v", req.Code(), err)
			return
		}
		if err := sec.VerifyRequest(&req, packet.Policy{}); err != nil {
			t.Errorf("Disconnect-Request does not verify: %v", err)
			return
		}
		got <- append([]byte(nil), b...)
		ack, err := sec.EncodeResponse(&req, lradius.CodeDisconnectACK, true, nil)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := tc.Write(ack); err != nil {
			t.Error(err)
		}
	})

	sender := dynauth.NewSender(dynauth.SenderConfig{Timeout: time.Second, Tries: 2})
	enf, err := dynauth.NewEnforcer(dynauth.EnforcerConfig{
		Events: e.posture, Sessions: e.st, Profiles: e.posture, Auditor: e.st,
		Sender: sender.Via(e.ls.Stream),
		// No UDP address: this NAS is only reachable down its connection.
		NAS: func(name string) (dynauth.NAS, bool) {
			return dynauth.NAS{Name: name, Addr: "127.0.0.1:9", Secret: []byte(radsec.Secret)}, name == "ap-nat"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = enf.Run(ctx, ready) })
	<-ready
	if _, err := e.posture.Quarantine(e.ctx, dev.ID, "admin:test"); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		p, _ := lradius.Parse(b, []byte(radsec.Secret))
		if v := rfc2866.AcctSessionID_GetString(p); v != "sess-1" {
			t.Fatalf("Disconnect for session %q", v)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no Disconnect-Request down the RADIUS/TLS connection")
	}
	nasWG.Wait()
	eventually(t, "ACK matched", func() bool { return e.metrics.get("packet/reverse_response") == 1 })
	eventually(t, "audited", func() bool {
		evs, err := e.st.TailAudit(e.ctx, 20)
		if err != nil {
			return false
		}
		for _, ev := range evs {
			if ev.Subject == dev.ID && ev.Action == "radius.disconnect" && ev.Result == "ack" && ev.Source == "nas:ap-nat" {
				return true
			}
		}
		return false
	})
	cancel()
	wg.Wait()
}
