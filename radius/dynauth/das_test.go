package dynauth

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"

	"hardbound/radius/packet"
)

// fakeDAS is a NAS's Dynamic Authorization Server on 127.0.0.1 that checks
// what a real one (hostapd) checks: Request Authenticator, a correct
// Message-Authenticator over the zero-authenticator packet, Event-Timestamp.
type fakeDAS struct {
	conn   *net.UDPConn
	secret []byte

	drop      atomic.Int32 // drop this many more valid requests
	nak       ErrorCause   // answer NAK with this cause (0: ACK)
	nakCode   bool         // answer NAK without Error-Cause
	coaNAK    ErrorCause   // NAK CoA-Requests only, with this cause
	noMA      bool         // answer without Message-Authenticator
	badMA     bool         // answer with a corrupted Message-Authenticator
	answerKey []byte       // sign answers with this secret instead (wrong-secret test)

	valid   atomic.Int64
	invalid atomic.Int64

	mu   sync.Mutex
	seen []*radius.Packet // capped
	wg   sync.WaitGroup
}

func newFakeDAS(tb testing.TB, secret string, setup func(*fakeDAS)) *fakeDAS {
	tb.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadBuffer(4 << 20) // a burst of requests must not overflow the test NAS
	d := &fakeDAS{conn: conn, secret: []byte(secret)}
	if setup != nil {
		setup(d)
	}
	d.wg.Add(1)
	go d.serve()
	tb.Cleanup(func() { conn.Close(); d.wg.Wait() })
	return d
}

func (d *fakeDAS) addr() string { return d.conn.LocalAddr().String() }

func (d *fakeDAS) serve() {
	defer d.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		resp, err := d.handle(buf[:n])
		if err != nil {
			d.invalid.Add(1)
			continue
		}
		if resp == nil {
			continue
		}
		_, _ = d.conn.WriteToUDP(resp, from)
	}
}

func (d *fakeDAS) handle(raw []byte) ([]byte, error) {
	v, err := packet.Parse(raw)
	if err != nil {
		return nil, err
	}
	// Request Authenticator and a Message-Authenticator over the
	// zero-authenticator packet, both required (RFC 5176 §2.3, §3.4).
	if err := packet.NewSecret(d.secret).VerifyRequest(&v, packet.Policy{RequireMessageAuthenticator: true}); err != nil {
		return nil, err
	}
	if c := v.Code(); c != radius.CodeDisconnectRequest && c != radius.CodeCoARequest {
		return nil, errors.New("not a dynamic authorization request")
	}
	p, err := radius.Parse(raw, d.secret)
	if err != nil {
		return nil, err
	}
	if _, err := rfc2869.EventTimestamp_Lookup(p); err != nil {
		return nil, errors.New("no event-timestamp")
	}
	d.valid.Add(1)
	d.mu.Lock()
	if len(d.seen) < 64 {
		d.seen = append(d.seen, p)
	}
	d.mu.Unlock()
	if d.drop.Load() > 0 && d.drop.Add(-1) >= 0 {
		return nil, nil
	}
	code := radius.CodeDisconnectACK
	if p.Code == radius.CodeCoARequest {
		code = radius.CodeCoAACK
	}
	cause := d.nak
	if p.Code == radius.CodeCoARequest && d.coaNAK != 0 {
		cause = d.coaNAK
	}
	if cause != 0 || d.nakCode {
		code++ // NAK follows ACK in both pairs
	}
	key := d.secret
	if d.answerKey != nil {
		key = d.answerKey
	}
	var r radius.Packet
	if cause != 0 {
		rfc3576.ErrorCause_Add(&r, rfc3576.ErrorCause(cause))
	}
	sec := packet.NewSecret(key)
	b, err := sec.EncodeResponse(&v, code, !d.noMA, r.Attributes)
	if err != nil {
		return nil, err
	}
	if d.badMA && !d.noMA {
		// Corrupt the Message-Authenticator (first) and re-sign only the
		// Response Authenticator, so that only the MA check catches it.
		b[packet.HeaderLen+2] ^= 0xff
		ra := sec.ResponseAuthenticator(b, v.Authenticator())
		copy(b[4:packet.HeaderLen], ra[:])
	}
	return b, nil
}

func (d *fakeDAS) last() *radius.Packet {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.seen) == 0 {
		return nil
	}
	return d.seen[len(d.seen)-1]
}
