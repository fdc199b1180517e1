package radius

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/radius/packet"
)

// The server's real Decider answers from memory when it can; without this
// every inline packet with a decision would start a relief reader.
var _ cachedDecider = (*posture.Service)(nil)

// blockingDecider never answers from memory, and its Decide waits until
// released: a posture decision stuck on a slow store.
type blockingDecider struct {
	Decider
	entered chan struct{}
	release chan struct{}
}

func (d *blockingDecider) DecideCached(*x509.Certificate) (posture.Verdict, bool) {
	return posture.Verdict{}, false
}

func (d *blockingDecider) Decide(ctx context.Context, leaf *x509.Certificate) posture.Verdict {
	d.entered <- struct{}{}
	select {
	case <-d.release:
	case <-ctx.Done():
	}
	return d.Decider.Decide(ctx, leaf)
}

// An idle server answers a lone authentication packet on the reading
// goroutine; when that packet's decision needs the store, a relief reader
// takes the socket so other NASes are still answered meanwhile.
func TestIntegrationSlowDecisionDoesNotHoldTheSocket(t *testing.T) {
	dec := &blockingDecider{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ls := startLiveWith(t, nil, func(p *testPKI) Decider {
		dec.Decider = p.decider()
		return dec
	})
	nas := newUDPNAS(t, ls.auth, []byte(testSecret))
	replies := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := nas.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				close(replies)
				return
			}
			replies <- append([]byte(nil), buf[:n]...)
		}
	}()
	peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", tls.VersionTLS13), Identity: "x"})
	defer peer.Close()

	eap := peer.Identity(0)
	var state []byte
	var blockedReq []byte
	for id := byte(1); blockedReq == nil; id++ {
		if id > 10 {
			t.Fatal("the decision never ran")
		}
		attrs := packet.AppendEAP(nil, eap)
		if state != nil {
			attrs = append(attrs, &lradius.AVP{Type: attrState, Attribute: state})
		}
		req := buildRequest(t, lradius.CodeAccessRequest, id, nas.secret, attrs, true, false)
		if _, err := nas.conn.WriteToUDPAddrPort(req, nas.server); err != nil {
			t.Fatal(err)
		}
		select {
		case <-dec.entered:
			blockedReq = req
		case resp := <-replies:
			p := checkResponse(t, resp, req, nas.secret)
			state = p.Get(attrState)
			var err error
			if eap, _, err = peer.Step(eapOf(p)); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no reply")
		}
	}

	// The decision is stuck; another NAS must still be answered.
	other := newUDPNAS(t, ls.auth, []byte(testSecret))
	ss := buildRequest(t, lradius.CodeStatusServer, 99, other.secret, nil, true, false)
	if _, err := other.exchange(ss, 10*time.Second); err != nil {
		t.Fatalf("Status-Server while a decision is stuck: %v", err)
	}
	if n := ls.s.reliefs.Load(); n != 1 {
		t.Fatalf("%d relief readers started, want 1 (the stuck packet was not answered inline?)", n)
	}
	close(dec.release)
	select {
	case resp := <-replies:
		if p := checkResponse(t, resp, blockedReq, nas.secret); p.Code != lradius.CodeAccessChallenge {
			t.Fatalf("reply to the stuck round: %v", p.Code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck round was never answered")
	}
}
