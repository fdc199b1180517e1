package dynauth

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"

	"hardbound/radius/packet"
)

// maOffset is where the Message-Authenticator value of our requests and of
// the test answers sits: the codec puts it first.
const maOffset = packet.HeaderLen + 2

func TestEncodeRequestIsAuthentic(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	sec := packet.NewSecret(secret)
	now := time.Unix(1_790_000_000, 0)
	for _, kind := range []Kind{Disconnect, CoA} {
		t.Run(kind.String(), func(t *testing.T) {
			b, err := encodeRequest(Request{Kind: kind, Identity: testIdent, VLAN: "99"}, 7, sec, now)
			if err != nil {
				t.Fatal(err)
			}
			// layeh.com/radius checks the Request Authenticator on its own.
			if !radius.IsAuthenticRequest(b, secret) {
				t.Fatal("request authenticator does not verify")
			}
			p, err := radius.Parse(b, secret)
			if err != nil {
				t.Fatal(err)
			}
			if p.Code != kind.code() || p.Identifier != 7 {
				t.Fatalf("code %d id %d", p.Code, p.Identifier)
			}
			if ts := rfc2869.EventTimestamp_Get(p); !ts.Equal(now) {
				t.Fatalf("Event-Timestamp = %v", ts)
			}
			// MA first, over the packet with zero authenticator and zero MA
			// (RFC 5176 §3.4).
			v, err := packet.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !v.MessageAuthenticatorFirst() {
				t.Fatal("Message-Authenticator is not the first attribute")
			}
			if err := sec.VerifyRequest(&v, packet.Policy{RequireMessageAuthenticator: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// answer builds a response to req with the given mutations.
func answer(t testing.TB, req []byte, secret []byte, code radius.Code, cause uint32, withMA bool) []byte {
	t.Helper()
	p, err := packet.Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	var r radius.Packet
	if cause != 0 {
		rfc3576.ErrorCause_Add(&r, rfc3576.ErrorCause(cause))
	}
	b, err := packet.NewSecret(secret).EncodeResponse(&p, code, withMA, r.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	sec := packet.NewSecret(secret)
	req, err := encodeRequest(Request{Identity: testIdent}, 42, sec, time.Unix(1_790_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	ack := answer(t, req, secret, radius.CodeDisconnectACK, 0, true)
	nak := answer(t, req, secret, radius.CodeDisconnectNAK, 503, true)
	noMA := answer(t, req, secret, radius.CodeDisconnectACK, 0, false)
	reauth := func(b []byte) []byte { // recompute the response authenticator after tampering
		ra := sec.ResponseAuthenticator(b, req[4:20])
		copy(b[4:20], ra[:])
		return b
	}
	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	tests := []struct {
		name      string
		raw       []byte
		requireMA bool
		ack       bool
		cause     ErrorCause
		why       string
	}{
		{name: "ok/ack", raw: ack, ack: true},
		{name: "ok/nak_with_cause", raw: nak, cause: 503},
		{name: "ok/ack_without_ma", raw: noMA, ack: true},
		{name: "ok/trailing_padding_ignored", raw: append(append([]byte(nil), ack...), 0, 0, 0), ack: true},
		{name: "bad/ma_required", raw: noMA, requireMA: true, why: "message_authenticator"},
		{name: "bad/short", raw: ack[:19], why: "short"},
		{name: "bad/length_over_datagram", raw: mutate(ack, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+1)); return b }), why: "length"},
		{name: "bad/datagram_over_4096", raw: append(append([]byte(nil), ack...), make([]byte, 4097-len(ack))...), why: "length"},
		{name: "bad/length_under_header", raw: mutate(ack, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 19); return b }), why: "length"},
		{name: "bad/coa_code_for_disconnect", raw: mutate(ack, func(b []byte) []byte { b[0] = byte(radius.CodeCoAACK); return reauth(b) }), why: "code"},
		{name: "bad/identifier", raw: mutate(ack, func(b []byte) []byte { b[1]++; return reauth(b) }), why: "identifier"},
		{name: "bad/authenticator", raw: mutate(ack, func(b []byte) []byte { b[5] ^= 1; return b }), why: "authenticator"},
		{name: "bad/ma_value", raw: mutate(ack, func(b []byte) []byte { b[maOffset] ^= 1; return reauth(b) }), why: "message_authenticator"},
		{name: "bad/two_mas", raw: mutate(ack, func(b []byte) []byte {
			b = append(b, ack[20:38]...)
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			return reauth(b)
		}), why: "message_authenticator"},
		{name: "bad/truncated_attribute", raw: mutate(noMA, func(b []byte) []byte {
			b = append(b, 101, 6, 0)
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			return reauth(b)
		}), why: "attributes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := parseResponse(tc.raw, req, sec, tc.requireMA)
			if tc.why != "" {
				var pe *packetError
				if !errors.Is(err, ErrBadPacket) || !errors.As(err, &pe) || pe.why != tc.why {
					t.Fatalf("err = %v, want %s", err, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ACK != tc.ack || r.ErrorCause != tc.cause {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestErrorCauseString(t *testing.T) {
	t.Parallel()
	for c, want := range map[ErrorCause]string{0: "", 503: "503 Session-Context-Not-Found", 403: "403 NAS-Identification-Mismatch", 999: "999 Unknown"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	secret := []byte("fuzz-secret")
	sec := packet.NewSecret(secret)
	req, err := encodeRequest(Request{Identity: testIdent}, 9, sec, time.Unix(1_790_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(answer(f, req, secret, radius.CodeDisconnectACK, 0, true))
	f.Add(answer(f, req, secret, radius.CodeDisconnectNAK, 503, true))
	f.Add(answer(f, req, secret, radius.CodeDisconnectACK, 0, false))
	f.Add([]byte{41, 9, 0, 20})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := parseResponse(raw, req, sec, false)
		if err != nil {
			if !errors.Is(err, ErrBadPacket) {
				t.Fatalf("error not ErrBadPacket: %v", err)
			}
			return
		}
		// Anything accepted must be authentic under the secret.
		if !radius.IsAuthenticResponse(raw[:binary.BigEndian.Uint16(raw[2:4])], req, secret) {
			t.Fatalf("accepted an unauthentic response: %+v", r)
		}
	})
}
