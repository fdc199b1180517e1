package dynauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc3580"
)

var testIdent = Identity{
	AcctSessionID:    "6B2A5B8C1F0E4D3A",
	UserName:         "device-1",
	CallingStationID: "02-00-00-00-00-01",
	NASIdentifier:    "ap1",
	NASIPAddress:     "127.0.0.1",
}

func TestSenderOutcomes(t *testing.T) {
	t.Parallel()
	const secret = "das-secret"
	tests := []struct {
		name      string
		setup     func(*fakeDAS)
		req       Request
		requireMA bool
		timeout   time.Duration // first-try wait; default 2s (answered cases finish at once)
		want      Result
		wantErr   error
		cause     ErrorCause
		attempts  int
	}{
		{name: "ack/disconnect", want: ResultACK, attempts: 1},
		{name: "ack/coa_vlan", req: Request{Kind: CoA, VLAN: "666"}, want: ResultACK, attempts: 1},
		{name: "ack/after_two_drops", timeout: 250 * time.Millisecond, setup: func(d *fakeDAS) { d.drop.Store(2) }, want: ResultACK, attempts: 3},
		{name: "ack/without_ma_when_not_required", setup: func(d *fakeDAS) { d.noMA = true }, want: ResultACK, attempts: 1},
		{name: "nak/session_not_found", setup: func(d *fakeDAS) { d.nak = 503 }, want: ResultNAK, wantErr: ErrNAK, cause: 503, attempts: 1},
		{name: "nak/no_error_cause", setup: func(d *fakeDAS) { d.nakCode = true }, want: ResultNAK, wantErr: ErrNAK, attempts: 1},
		{name: "timeout/all_dropped", timeout: 20 * time.Millisecond, setup: func(d *fakeDAS) { d.drop.Store(100) }, want: ResultTimeout, wantErr: ErrTimeout, attempts: 3},
		{name: "timeout/answer_signed_with_wrong_secret", timeout: 20 * time.Millisecond, setup: func(d *fakeDAS) { d.answerKey = []byte("other") }, want: ResultTimeout, wantErr: ErrTimeout, attempts: 3},
		{name: "timeout/bad_response_ma", timeout: 20 * time.Millisecond, setup: func(d *fakeDAS) { d.badMA = true }, want: ResultTimeout, wantErr: ErrTimeout, attempts: 3},
		{name: "timeout/ma_required_but_missing", timeout: 20 * time.Millisecond, setup: func(d *fakeDAS) { d.noMA = true }, requireMA: true, want: ResultTimeout, wantErr: ErrTimeout, attempts: 3},
		{name: "error/coa_without_vlan", req: Request{Kind: CoA}, want: ResultError, wantErr: ErrBadRequest},
		{name: "error/no_identification", req: Request{Identity: Identity{NASIdentifier: "ap1"}}, want: ResultError, wantErr: ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			das := newFakeDAS(t, secret, tc.setup)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 2 * time.Second
			}
			s := NewSender(SenderConfig{Tries: 3, Timeout: timeout, RequireResponseMA: tc.requireMA})
			req := tc.req
			if req.Identity == (Identity{}) {
				req.Identity = testIdent
			}
			out, err := s.Send(context.Background(), NAS{Name: "ap1", Addr: das.addr(), Secret: []byte(secret)}, req)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Send: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Send err = %v, want %v", err, tc.wantErr)
			}
			if out.Result != tc.want || out.ErrorCause != tc.cause || out.Attempts != tc.attempts {
				t.Fatalf("outcome = %+v, want result %s cause %d attempts %d", out, tc.want, tc.cause, tc.attempts)
			}
			if tc.want == ResultACK || tc.want == ResultNAK {
				var nak *NAKError
				if tc.want == ResultNAK && (!errors.As(err, &nak) || nak.Cause != tc.cause) {
					t.Fatalf("NAK error = %v", err)
				}
				checkIdentification(t, das, req)
			}
		})
	}
}

// checkIdentification asserts the DAS saw the session identification
// exactly as given, and the VLAN triple for a CoA.
func checkIdentification(t *testing.T, das *fakeDAS, req Request) {
	t.Helper()
	p := das.last()
	if p == nil {
		t.Fatal("DAS saw no valid request")
	}
	if got := rfc2866.AcctSessionID_GetString(p); got != req.Identity.AcctSessionID {
		t.Errorf("Acct-Session-Id = %q", got)
	}
	if got := rfc2865.UserName_GetString(p); got != req.Identity.UserName {
		t.Errorf("User-Name = %q", got)
	}
	if got := rfc2865.CallingStationID_GetString(p); got != req.Identity.CallingStationID {
		t.Errorf("Calling-Station-Id = %q", got)
	}
	if got := rfc2865.NASIdentifier_GetString(p); got != req.Identity.NASIdentifier {
		t.Errorf("NAS-Identifier = %q", got)
	}
	if got := rfc2865.NASIPAddress_Get(p); !got.Equal(net.ParseIP(req.Identity.NASIPAddress)) {
		t.Errorf("NAS-IP-Address = %v", got)
	}
	if req.Kind == CoA {
		tag, tt := rfc2868.TunnelType_Get(p)
		mtag, mt := rfc2868.TunnelMediumType_Get(p)
		gtag, vlan := rfc2868.TunnelPrivateGroupID_GetString(p)
		if tag != 1 || tt != rfc3580.TunnelType_Value_VLAN || mtag != 1 || mt != rfc2868.TunnelMediumType_Value_IEEE802 || gtag != 1 || vlan != req.VLAN {
			t.Errorf("tunnel attrs = (%d,%d) (%d,%d) (%d,%q)", tag, tt, mtag, mt, gtag, vlan)
		}
	} else if _, tt := rfc2868.TunnelType_Get(p); tt != 0 {
		t.Errorf("Disconnect carries Tunnel-Type %d", tt)
	}
}

func TestSenderNoListenerTimesOut(t *testing.T) {
	t.Parallel()
	// Reserve a port, then free it so nothing listens (ICMP unreachable path).
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	s := NewSender(SenderConfig{Tries: 2, Timeout: 10 * time.Millisecond})
	out, err := s.Send(context.Background(), NAS{Addr: addr, Secret: []byte("x")}, Request{Identity: testIdent})
	if !errors.Is(err, ErrTimeout) || out.Result != ResultTimeout || out.Attempts != 2 {
		t.Fatalf("got %+v, %v; want timeout after 2 tries", out, err)
	}
}

func TestSenderContextCancelStopsWaiting(t *testing.T) {
	t.Parallel()
	das := newFakeDAS(t, "s", func(d *fakeDAS) { d.drop.Store(100) })
	s := NewSender(SenderConfig{Tries: 3, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for das.valid.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := s.Send(ctx, NAS{Addr: das.addr(), Secret: []byte("s")}, Request{Identity: testIdent})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNASAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		nas  NAS
		want string
		err  bool
	}{
		{"default_port", NAS{Addr: "192.0.2.1"}, "192.0.2.1:3799", false},
		{"configured_port", NAS{Addr: "192.0.2.1", Port: 1700}, "192.0.2.1:1700", false},
		{"explicit_port", NAS{Addr: "192.0.2.1:4000", Port: 1700}, "192.0.2.1:4000", false},
		{"ipv6_default_port", NAS{Addr: "2001:db8::1"}, "[2001:db8::1]:3799", false},
		{"missing", NAS{}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.nas.address()
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("address() = %q, %v; want %q (err %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestSenderSharesSocketsBeyond256Outstanding(t *testing.T) {
	t.Parallel()
	das := newFakeDAS(t, "mux", nil)
	s := NewSender(SenderConfig{MaxInFlight: 1000, MaxPerNAS: 1000, Timeout: 2 * time.Second})
	const n = 600
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := testIdent
			id.AcctSessionID = fmt.Sprintf("%016X", i)
			out, err := s.Send(context.Background(), NAS{Addr: das.addr(), Secret: []byte("mux")}, Request{Identity: id})
			if err == nil && out.Result != ResultACK {
				err = fmt.Errorf("result %s", out.Result)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s.mux.mu.Lock()
	defer s.mux.mu.Unlock()
	if len(s.mux.pools) != 0 {
		t.Fatalf("sockets left open: %d pools", len(s.mux.pools))
	}
}

func TestSenderBoundsRequestsPerNAS(t *testing.T) {
	t.Parallel()
	das := newFakeDAS(t, "per-nas", nil)
	s := NewSender(SenderConfig{MaxPerNAS: 3, Timeout: 2 * time.Second})
	var peak, cur atomic.Int32
	s.mux.onAcquire = func(delta int32) { // test hook: count leases
		if n := cur.Add(delta); delta > 0 {
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		}
	}
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			id := testIdent
			id.AcctSessionID = fmt.Sprintf("%016X", i)
			_, err := s.Send(context.Background(), NAS{Addr: das.addr(), Secret: []byte("per-nas")}, Request{Identity: id})
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p < 1 || p > 3 {
		t.Fatalf("peak concurrent requests to one NAS = %d, want 1..3", p)
	}
}
