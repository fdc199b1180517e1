package dynauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeStream is a NAS's RADIUS/TLS connection as Via sees it: requests
// are answered by a fakeDAS's checks, or not at all, or the connection
// closes.
type fakeStream struct {
	das    *fakeDAS
	silent bool
	closed bool
	sent   int
}

func (f *fakeStream) Secret() []byte { return f.das.secret }

func (f *fakeStream) Exchange(ctx context.Context, encode func(id byte) ([]byte, error)) ([]byte, error) {
	b, err := encode(7)
	if err != nil {
		return nil, err
	}
	if f.closed {
		return nil, ErrStreamClosed
	}
	f.sent++
	resp, err := f.das.handle(b)
	if err != nil || resp == nil || f.silent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return resp, nil
}

// TestVia: while a NAS holds a stream, requests go down it (one
// transmission, the UDP checks on the answer); a NAK is a NAK; silence
// times out after all of Send's tries' waits; a stream that closes, or no
// stream, means UDP.
func TestVia(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		stream   func(*fakeDAS) *fakeStream // nil: the NAS holds none
		setup    func(*fakeDAS)
		want     Result
		wantErr  error
		cause    ErrorCause
		viaUDP   bool
		attempts int
	}{
		{name: "ack/stream", stream: func(d *fakeDAS) *fakeStream { return &fakeStream{das: d} }, want: ResultACK, attempts: 1},
		{name: "nak/stream", stream: func(d *fakeDAS) *fakeStream { return &fakeStream{das: d} }, setup: func(d *fakeDAS) { d.nak = 503 },
			want: ResultNAK, wantErr: ErrNAK, cause: 503, attempts: 1},
		{name: "error/stream_answer_with_bad_ma", stream: func(d *fakeDAS) *fakeStream { return &fakeStream{das: d} }, setup: func(d *fakeDAS) { d.badMA = true },
			want: ResultError, wantErr: ErrBadPacket, attempts: 1},
		{name: "timeout/stream_silent", stream: func(d *fakeDAS) *fakeStream { return &fakeStream{das: d, silent: true} },
			want: ResultTimeout, wantErr: ErrTimeout, attempts: 1},
		{name: "ack/stream_closed_falls_back_to_udp", stream: func(d *fakeDAS) *fakeStream { return &fakeStream{das: d, closed: true} },
			want: ResultACK, viaUDP: true, attempts: 1},
		{name: "ack/no_stream_udp", want: ResultACK, viaUDP: true, attempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const secret = "stream-secret"
			das := newFakeDAS(t, secret, tc.setup)
			var st *fakeStream
			if tc.stream != nil {
				st = tc.stream(das)
			}
			s := NewSender(SenderConfig{Timeout: 20 * time.Millisecond, Tries: 3})
			x := s.Via(func(name string) (Stream, bool) {
				if st == nil || name != "ap1" {
					return nil, false
				}
				return st, true
			})
			start := time.Now()
			out, err := x.Send(context.Background(), NAS{Name: "ap1", Addr: das.addr(), Secret: []byte(secret)}, Request{Kind: Disconnect, Identity: testIdent})
			if out.Result != tc.want || !errors.Is(err, tc.wantErr) || out.ErrorCause != tc.cause || out.Attempts != tc.attempts {
				t.Fatalf("outcome %+v, err %v", out, err)
			}
			if got := strings.HasPrefix(out.Addr, "stream:"); got == tc.viaUDP {
				t.Fatalf("sent to %s", out.Addr)
			}
			if tc.want == ResultTimeout && time.Since(start) < 140*time.Millisecond {
				t.Fatalf("gave up after %s, before the 20+40+80ms of Send's tries", time.Since(start))
			}
			if st != nil && !tc.viaUDP && st.sent != 1 {
				t.Fatalf("%d transmissions on the stream", st.sent)
			}
		})
	}
}
