package packet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	lradius "layeh.com/radius"
)

// katKey signs the known-answer vectors below. They were computed with
// another HMAC-MD5 / MD5 implementation than Go's, from the formulas of
// RFC 2865 §3, RFC 2866 §3, RFC 3579 §3.2 and RFC 5176 §2.3 / §3.4.
const katKey = "hardbound-kat"

var (
	// Access-Request, id 0x2a, Authenticator 00..0f, Message-Authenticator
	// first, User-Name "alice", EAP-Message Response/Identity "alice".
	katAccessRequest = mustHex("012a0039000102030405060708090a0b0c0d0e0f50122efc7adb5db69365c07327fffa331c8d0107616c6963654f0c022a000a01616c696365")
	// The same request (id 0x2b) with Message-Authenticator last, as
	// hostapd and eapol_test send it.
	katAccessRequestMALast = mustHex("012b0039000102030405060708090a0b0c0d0e0f0107616c6963654f0c022a000a01616c696365501283b7a492442eef03763ce8113d90b7f1")
	// Access-Challenge answering katAccessRequest: Message-Authenticator,
	// Proxy-State "proxy1", EAP-Request/EAP-TLS Start, State 16 x aa.
	katAccessChallenge = mustHex("0b2a0048204ed2d26344f3f777afdd348bd21ba950127b3ab4bac15a3d1bc86dced41e148301210870726f7879314f08012b00060d201812aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	// Accounting-Request, id 7: Message-Authenticator over a zero
	// Authenticator, Acct-Status-Type Start, Acct-Session-Id "S-1".
	katAccountingRequest = mustHex("04070031f095af2dcd218f3e550c6ccd062066f450120bb64dabc26603a000f8306b7de011732806000000012c05532d31")
	// Accounting-Response answering it, without attributes.
	katAccountingResponse = mustHex("05070014a7836fca5514ba86b7d197e66c9bfabe")
	// Disconnect-Request, id 9: Acct-Session-Id "S-1", Event-Timestamp.
	katDisconnectRequest = mustHex("28090031484122fad8777c107d12638fadc524025012863522a02aeeab6d9552de0fe5d701c02c05532d3137066ab13b80")
	// Disconnect-NAK answering it, Error-Cause 503.
	katDisconnectNAK = mustHex("2a09002cad0eaff9ae649f39ced7bc28f80287f350129f4f789028b53bc3527913c38f2426c66506000001f7")
	// Status-Server, id 0x63, Authenticator 10..1f.
	katStatusServer = mustHex("0c630026101112131415161718191a1b1c1d1e1f5012120b432cf48fe4f02ebceef42bd79e94")
)

// RFC 2865 §7.1: the Access-Request of user "nemo" (secret "xyzzy5461")
// and the Access-Accept answering it.
var (
	rfc2865Request = mustHex("010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003")
	rfc2865Accept  = mustHex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) Packet {
	t.Helper()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// attrsOf returns a packet's attributes other than Message-Authenticator,
// as an encoder takes them.
func attrsOf(t testing.TB, b []byte) lradius.Attributes {
	t.Helper()
	p := mustParse(t, b)
	var out lradius.Attributes
	for typ, v := range p.All() {
		if typ != lradius.Type(typeMA) {
			out = append(out, &lradius.AVP{Type: typ, Attribute: v})
		}
	}
	return out
}

func TestRFC2865Example(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte("xyzzy5461"))
	req := mustParse(t, rfc2865Request)
	if got := s.ResponseAuthenticator(rfc2865Accept, req.Authenticator()); !bytes.Equal(got[:], rfc2865Accept[4:20]) {
		t.Fatalf("Response Authenticator %x, want %x", got, rfc2865Accept[4:20])
	}
	// A PAP request without Message-Authenticator passes only where the
	// policy allows it; the example Access-Accept, which has none, is refused
	// by the BlastRADIUS rule.
	if err := s.VerifyRequest(&req, Policy{}); err != nil {
		t.Fatalf("request under the lax policy: %v", err)
	}
	if err := s.VerifyRequest(&req, Policy{RequireMessageAuthenticator: true}); !errors.Is(err, ErrNoMessageAuthenticator) {
		t.Fatalf("request under the strict policy: %v", err)
	}
	acc := mustParse(t, rfc2865Accept)
	if err := s.VerifyResponse(&acc, req.Authenticator(), Policy{}); !errors.Is(err, ErrNoMessageAuthenticator) {
		t.Fatalf("Access-Accept without Message-Authenticator: %v", err)
	}
}

func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte(katKey))
	tests := []struct {
		name string
		pkt  []byte
		req  []byte // the request a response answers; nil for requests
		// reencode rebuilds the packet from its attributes; nil where the
		// Authenticator is random (Access-Request, Status-Server).
		reencode func(req *Packet, attrs lradius.Attributes) ([]byte, error)
	}{
		{name: "access_request", pkt: katAccessRequest},
		{name: "access_request/message_authenticator_last", pkt: katAccessRequestMALast},
		{name: "status_server", pkt: katStatusServer},
		{name: "accounting_request", pkt: katAccountingRequest, reencode: func(_ *Packet, a lradius.Attributes) ([]byte, error) {
			return s.EncodeRequest(lradius.CodeAccountingRequest, 7, a)
		}},
		{name: "disconnect_request", pkt: katDisconnectRequest, reencode: func(_ *Packet, a lradius.Attributes) ([]byte, error) {
			return s.EncodeRequest(lradius.CodeDisconnectRequest, 9, a)
		}},
		{name: "access_challenge", pkt: katAccessChallenge, req: katAccessRequest, reencode: func(r *Packet, a lradius.Attributes) ([]byte, error) {
			return s.EncodeResponse(r, lradius.CodeAccessChallenge, true, a)
		}},
		{name: "accounting_response", pkt: katAccountingResponse, req: katAccountingRequest, reencode: func(r *Packet, a lradius.Attributes) ([]byte, error) {
			return s.EncodeResponse(r, lradius.CodeAccountingResponse, false, a)
		}},
		{name: "disconnect_nak", pkt: katDisconnectNAK, req: katDisconnectRequest, reencode: func(r *Packet, a lradius.Attributes) ([]byte, error) {
			return s.EncodeResponse(r, lradius.CodeDisconnectNAK, true, a)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tt.pkt)
			var req Packet
			if tt.req != nil {
				req = mustParse(t, tt.req)
				if err := s.VerifyResponse(&p, req.Authenticator(), Policy{}); err != nil {
					t.Fatalf("verify: %v", err)
				}
			} else if err := s.VerifyRequest(&p, Policy{RequireMessageAuthenticator: true}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// Signing the packet with its authenticators wiped gives the
			// vector back.
			b := bytes.Clone(tt.pkt)
			if p.HasMessageAuthenticator() {
				clear(b[p.maOff : p.maOff+AuthLen])
			}
			var err error
			if tt.req != nil {
				clear(b[4:20])
				err = s.SignResponse(b, req.Authenticator())
			} else {
				if hashedRequest(p.Code()) {
					clear(b[4:20])
				}
				err = s.SignRequest(b)
			}
			if err != nil || !bytes.Equal(b, tt.pkt) {
				t.Fatalf("signed %x (%v), want %x", b, err, tt.pkt)
			}
			if tt.reencode == nil {
				return
			}
			got, err := tt.reencode(&req, attrsOf(t, tt.pkt))
			if err != nil || !bytes.Equal(got, tt.pkt) {
				t.Fatalf("encoded %x (%v), want %x", got, err, tt.pkt)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	withLen := func(b []byte, l int) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint16(b[2:4], uint16(l))
		return b
	}
	grow := func(b []byte, attrs ...byte) []byte {
		b = append(bytes.Clone(b), attrs...)
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
		return b
	}
	good := katAccessRequest
	badAttr := bytes.Clone(good)
	badAttr[21] = 1 // attribute length below 2
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		maFirst bool
		eap     bool
		proxy   bool
	}{
		{name: "ok/message_authenticator_first", in: good, maFirst: true, eap: true},
		{name: "ok/message_authenticator_last", in: katAccessRequestMALast, eap: true},
		{name: "ok/proxy_state", in: katAccessChallenge, maFirst: true, eap: true, proxy: true},
		{name: "ok/header_only", in: katAccountingResponse},
		{name: "ok/trailing_padding_ignored", in: append(bytes.Clone(good), 0, 0, 0), maFirst: true, eap: true},
		{name: "fail/empty", in: nil, wantErr: ErrShort},
		{name: "fail/short", in: good[:19], wantErr: ErrShort},
		{name: "fail/length_below_20", in: withLen(good, 19), wantErr: ErrLength},
		{name: "fail/length_beyond_datagram", in: withLen(good, len(good)+1), wantErr: ErrLength},
		{name: "fail/length_above_4096", in: withLen(make([]byte, 4096), 4097), wantErr: ErrLength},
		{name: "fail/datagram_above_4096", in: make([]byte, 4097), wantErr: ErrTooLarge},
		{name: "fail/attribute_length_1", in: badAttr, wantErr: ErrAttributes},
		{name: "fail/attribute_overruns_length", in: withLen(good, len(good)-1), wantErr: ErrAttributes},
		{name: "fail/truncated_attribute_header", in: grow(good, 1), wantErr: ErrAttributes},
		{name: "fail/two_message_authenticators", in: grow(good, good[20:38]...), wantErr: ErrMessageAuthenticatorForm},
		{name: "fail/short_message_authenticator", in: grow(katAccountingResponse, 80, 6, 0, 0, 0, 0), wantErr: ErrMessageAuthenticatorForm},
		{name: "fail/long_message_authenticator", in: grow(katAccountingResponse, append([]byte{80, 19}, make([]byte, 17)...)...), wantErr: ErrMessageAuthenticatorForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if tt.wantErr != ErrTooLarge && !errors.Is(err, ErrMalformed) {
					t.Fatalf("%v does not match ErrMalformed", err)
				}
				return
			}
			if got := p.MessageAuthenticatorFirst(); got != tt.maFirst {
				t.Errorf("MessageAuthenticatorFirst = %v", got)
			}
			if p.HasEAP() != tt.eap || p.HasProxyState() != tt.proxy {
				t.Errorf("HasEAP %v HasProxyState %v", p.HasEAP(), p.HasProxyState())
			}
			if l := int(binary.BigEndian.Uint16(tt.in[2:4])); len(p.Bytes()) != l || p.Code() != lradius.Code(tt.in[0]) || p.Identifier() != tt.in[1] {
				t.Errorf("view: %d octets code %d id %d", len(p.Bytes()), p.Code(), p.Identifier())
			}
		})
	}
}

// tamper returns a copy of b changed by f.
func tamper(b []byte, f func([]byte)) []byte {
	b = bytes.Clone(b)
	f(b)
	return b
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte(katKey))
	enc := func(code lradius.Code, attrs ...*lradius.AVP) []byte {
		b, err := s.EncodeRequest(code, 1, attrs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// unsigned lays out a request without Message-Authenticator.
	unsigned := func(code lradius.Code, attrs ...*lradius.AVP) []byte {
		b, err := (&lradius.Packet{Code: code, Identifier: 3, Attributes: attrs}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	user := &lradius.AVP{Type: 1, Attribute: []byte("u")}
	eap := &lradius.AVP{Type: 79, Attribute: []byte{2, 1, 0, 4}}
	proxy := &lradius.AVP{Type: 33, Attribute: []byte("p")}
	acctNoMA := func() []byte {
		b, err := (&lradius.Packet{Code: lradius.CodeAccountingRequest, Identifier: 4, Attributes: lradius.Attributes{user}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SignRequest(b); err != nil {
			t.Fatal(err)
		}
		return b
	}()
	strict := Policy{RequireMessageAuthenticator: true}
	lax := Policy{}
	limit := Policy{LimitProxyState: true}
	tests := []struct {
		name string
		key  string
		pkt  []byte
		pol  Policy
		want error
	}{
		{"ok/access_request", katKey, katAccessRequest, strict, nil},
		{"ok/access_request_message_authenticator_not_first", katKey, katAccessRequestMALast, strict, nil},
		{"ok/access_request_encoded", katKey, enc(lradius.CodeAccessRequest, user, eap, proxy), strict, nil},
		{"ok/status_server", katKey, katStatusServer, lax, nil},
		{"ok/accounting_request", katKey, katAccountingRequest, strict, nil},
		{"ok/accounting_request_without_message_authenticator", katKey, acctNoMA, lax, nil},
		{"ok/disconnect_request", katKey, katDisconnectRequest, strict, nil},
		{"ok/coa_request", katKey, enc(lradius.CodeCoARequest, user), strict, nil},
		{"ok/access_request_without_ma_lax", katKey, unsigned(lradius.CodeAccessRequest, user), lax, nil},
		{"ok/access_request_proxy_state_without_ma_unlimited", katKey, unsigned(lradius.CodeAccessRequest, user, proxy), lax, nil},
		{"ok/access_request_without_ma_or_proxy_state_limited", katKey, unsigned(lradius.CodeAccessRequest, user), limit, nil},
		{"fail/access_request_without_ma_strict", katKey, unsigned(lradius.CodeAccessRequest, user), strict, ErrNoMessageAuthenticator},
		{"fail/eap_without_ma_even_lax", katKey, unsigned(lradius.CodeAccessRequest, user, eap), lax, ErrNoMessageAuthenticator},
		{"fail/proxy_state_without_ma_limited", katKey, unsigned(lradius.CodeAccessRequest, user, proxy), limit, ErrProxyStateWithoutMessageAuthenticator},
		{"fail/status_server_without_ma_even_lax", katKey, unsigned(lradius.CodeStatusServer), lax, ErrNoMessageAuthenticator},
		{"fail/wrong_secret", "other", katAccessRequest, strict, ErrBadMessageAuthenticator},
		{"fail/attribute_changed", katKey, tamper(katAccessRequest, func(b []byte) { b[len(b)-1] ^= 1 }), strict, ErrBadMessageAuthenticator},
		{"fail/authenticator_changed", katKey, tamper(katAccessRequest, func(b []byte) { b[4] ^= 1 }), strict, ErrBadMessageAuthenticator},
		{"fail/message_authenticator_changed", katKey, tamper(katAccessRequestMALast, func(b []byte) { b[len(b)-16] ^= 1 }), strict, ErrBadMessageAuthenticator},
		{"fail/accounting_wrong_secret_ma_checked_first", "other", katAccountingRequest, strict, ErrBadMessageAuthenticator},
		{"fail/accounting_authenticator_changed", katKey, tamper(katAccountingRequest, func(b []byte) { b[4] ^= 1 }), strict, ErrBadAuthenticator},
		{"fail/accounting_without_ma_wrong_secret", "other", acctNoMA, lax, ErrBadAuthenticator},
		{"fail/accounting_without_ma_strict", katKey, acctNoMA, strict, ErrNoMessageAuthenticator},
		{"fail/disconnect_attribute_changed", katKey, tamper(katDisconnectRequest, func(b []byte) { b[len(b)-1] ^= 1 }), strict, ErrBadMessageAuthenticator},
		{"fail/response_code", katKey, katAccessChallenge, lax, ErrNotRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tt.pkt)
			if err := NewSecret([]byte(tt.key)).VerifyRequest(&p, tt.pol); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyResponse(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte(katKey))
	req := mustParse(t, katAccessRequest)
	reqAuth := req.Authenticator()
	// resign recomputes only the Response Authenticator after tampering,
	// so that only the Message-Authenticator check can catch it.
	resign := func(b []byte) []byte {
		ra := s.ResponseAuthenticator(b, reqAuth)
		copy(b[4:20], ra[:])
		return b
	}
	enc := func(code lradius.Code, withMA bool, attrs ...*lradius.AVP) []byte {
		b, err := s.EncodeResponse(&req, code, withMA, attrs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// maLast is an Access-Accept with Message-Authenticator last, signed.
	maLast := func() []byte {
		b, err := (&lradius.Packet{Code: lradius.CodeAccessAccept, Identifier: req.Identifier(), Attributes: lradius.Attributes{
			{Type: 79, Attribute: []byte{3, 0x2a, 0, 4}}, {Type: 80, Attribute: make([]byte, 16)},
		}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SignResponse(b, reqAuth); err != nil {
			t.Fatal(err)
		}
		return b
	}()
	noMA := func(code lradius.Code) []byte {
		b, err := (&lradius.Packet{Code: code, Identifier: req.Identifier()}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return resign(b)
	}
	tests := []struct {
		name    string
		key     string
		pkt     []byte
		reqAuth []byte
		pol     Policy
		want    error
	}{
		{"ok/access_challenge", katKey, katAccessChallenge, reqAuth, Policy{}, nil},
		{"ok/access_accept_encoded", katKey, enc(lradius.CodeAccessAccept, false), reqAuth, Policy{}, nil},
		{"ok/message_authenticator_not_first", katKey, maLast, reqAuth, Policy{}, nil},
		{"ok/accounting_response_without_ma", katKey, enc(lradius.CodeAccountingResponse, false), reqAuth, Policy{}, nil},
		{"ok/disconnect_ack_with_ma", katKey, enc(lradius.CodeDisconnectACK, true), reqAuth, Policy{RequireMessageAuthenticator: true}, nil},
		{"fail/access_accept_without_ma", katKey, noMA(lradius.CodeAccessAccept), reqAuth, Policy{}, ErrNoMessageAuthenticator},
		{"fail/access_reject_without_ma", katKey, noMA(lradius.CodeAccessReject), reqAuth, Policy{}, ErrNoMessageAuthenticator},
		{"fail/access_challenge_without_ma", katKey, noMA(lradius.CodeAccessChallenge), reqAuth, Policy{}, ErrNoMessageAuthenticator},
		{"fail/accounting_response_without_ma_required", katKey, noMA(lradius.CodeAccountingResponse), reqAuth, Policy{RequireMessageAuthenticator: true}, ErrNoMessageAuthenticator},
		{"fail/wrong_secret", "other", katAccessChallenge, reqAuth, Policy{}, ErrBadMessageAuthenticator},
		{"fail/other_request", katKey, katAccessChallenge, make([]byte, 16), Policy{}, ErrBadMessageAuthenticator},
		{"fail/request_authenticator_wrong_size", katKey, katAccessChallenge, reqAuth[:15], Policy{}, ErrBadAuthenticator},
		{"fail/message_authenticator_changed", katKey, resign(tamper(katAccessChallenge, func(b []byte) { b[22] ^= 1 })), reqAuth, Policy{}, ErrBadMessageAuthenticator},
		{"fail/code_changed", katKey, resign(tamper(katAccessChallenge, func(b []byte) { b[0] = byte(lradius.CodeAccessAccept) })), reqAuth, Policy{}, ErrBadMessageAuthenticator},
		{"fail/response_authenticator_changed", katKey, tamper(katAccessChallenge, func(b []byte) { b[5] ^= 1 }), reqAuth, Policy{}, ErrBadAuthenticator},
		{"fail/response_authenticator_without_ma_changed", katKey, tamper(katAccountingResponse, func(b []byte) { b[5] ^= 1 }), katAccountingRequest[4:20], Policy{}, ErrBadAuthenticator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tt.pkt)
			if err := NewSecret([]byte(tt.key)).VerifyResponse(&p, tt.reqAuth, tt.pol); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRoundTrip encodes every request and response code and checks the
// result against the codec's own verification and against
// layeh.com/radius's independent Authenticator checks.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	key := []byte("round-trip")
	s := NewSecret(key)
	attrs := lradius.Attributes{
		{Type: 1, Attribute: []byte("user")},
		{Type: 80, Attribute: make([]byte, 16)}, // ignored: the codec places its own
		{Type: 33, Attribute: []byte("proxy")},
		{Type: 300, Attribute: []byte("no such type")}, // ignored
	}
	requests := []lradius.Code{lradius.CodeAccessRequest, lradius.CodeStatusServer, lradius.CodeAccountingRequest, lradius.CodeDisconnectRequest, lradius.CodeCoARequest}
	responses := map[lradius.Code][]lradius.Code{
		lradius.CodeAccessRequest:     {lradius.CodeAccessAccept, lradius.CodeAccessReject, lradius.CodeAccessChallenge},
		lradius.CodeStatusServer:      {lradius.CodeAccessAccept, lradius.CodeAccountingResponse},
		lradius.CodeAccountingRequest: {lradius.CodeAccountingResponse},
		lradius.CodeDisconnectRequest: {lradius.CodeDisconnectACK, lradius.CodeDisconnectNAK},
		lradius.CodeCoARequest:        {lradius.CodeCoAACK, lradius.CodeCoANAK},
	}
	for _, code := range requests {
		t.Run(code.String(), func(t *testing.T) {
			t.Parallel()
			b, err := s.EncodeRequest(code, 77, attrs)
			if err != nil {
				t.Fatal(err)
			}
			req := mustParse(t, b)
			if !req.MessageAuthenticatorFirst() || req.Code() != code || req.Identifier() != 77 {
				t.Fatalf("encoded %x", b)
			}
			if n := len(attrsOf(t, b)); n != 2 {
				t.Fatalf("%d attributes besides Message-Authenticator, want 2", n)
			}
			if err := s.VerifyRequest(&req, Policy{RequireMessageAuthenticator: true}); err != nil {
				t.Fatal(err)
			}
			if hashedRequest(code) && !lradius.IsAuthenticRequest(b, key) {
				t.Fatal("layeh rejects the Request Authenticator")
			}
			if randomRequest(code) {
				again, err := s.EncodeRequest(code, 77, attrs)
				if err != nil || bytes.Equal(again[4:20], b[4:20]) {
					t.Fatalf("Request Authenticator repeated (%v)", err)
				}
			}
			for _, rc := range responses[code] {
				for _, withMA := range []bool{false, true} {
					r, err := s.EncodeResponse(&req, rc, withMA, attrs)
					if err != nil {
						t.Fatal(err)
					}
					p := mustParse(t, r)
					if want := withMA || accessReply(rc); p.HasMessageAuthenticator() != want || (want && !p.MessageAuthenticatorFirst()) {
						t.Fatalf("%v withMA=%v: Message-Authenticator present %v first %v", rc, withMA, p.HasMessageAuthenticator(), p.MessageAuthenticatorFirst())
					}
					if err := s.VerifyResponse(&p, req.Authenticator(), Policy{RequireMessageAuthenticator: withMA}); err != nil {
						t.Fatalf("%v: %v", rc, err)
					}
					if !lradius.IsAuthenticResponse(r, b, key) {
						t.Fatalf("%v: layeh rejects the Response Authenticator", rc)
					}
				}
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte("x"))
	req := mustParse(t, katAccessRequest)
	tests := []struct {
		name string
		enc  func() ([]byte, error)
		want error
	}{
		{"request/response_code", func() ([]byte, error) { return s.EncodeRequest(lradius.CodeAccessAccept, 1, nil) }, ErrNotRequest},
		{"request/oversize", func() ([]byte, error) {
			return s.EncodeRequest(lradius.CodeAccessRequest, 1, AppendEAP(nil, make([]byte, 4100)))
		}, ErrTooLarge},
		{"response/oversize", func() ([]byte, error) {
			return s.EncodeResponse(&req, lradius.CodeAccessChallenge, true, AppendEAP(nil, make([]byte, 4100)))
		}, ErrTooLarge},
		{"response/value_above_253", func() ([]byte, error) {
			return s.EncodeResponse(&req, lradius.CodeAccessReject, true, lradius.Attributes{{Type: 18, Attribute: make([]byte, 254)}})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := tt.enc()
			if err == nil || b != nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %x, %v; want an error matching %v", b, err, tt.want)
			}
		})
	}
}

// TestSignRequestAfterIdentifierChange is how radius/dynauth moves an
// encoded request to the Identifier its socket gave it.
func TestSignRequestAfterIdentifierChange(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte(katKey))
	for _, code := range []lradius.Code{lradius.CodeAccessRequest, lradius.CodeDisconnectRequest} {
		b, err := s.EncodeRequest(code, 0, lradius.Attributes{{Type: 44, Attribute: []byte("S-1")}})
		if err != nil {
			t.Fatal(err)
		}
		b[1] = 200
		if p := mustParse(t, b); s.VerifyRequest(&p, Policy{}) == nil {
			t.Fatalf("%v: changed Identifier still verifies", code)
		}
		if err := s.SignRequest(b); err != nil {
			t.Fatal(err)
		}
		if p := mustParse(t, b); s.VerifyRequest(&p, Policy{RequireMessageAuthenticator: true}) != nil {
			t.Fatalf("%v: re-signed request does not verify", code)
		}
	}
	if err := s.SignRequest(bytes.Clone(katAccessChallenge)); !errors.Is(err, ErrNotRequest) {
		t.Fatalf("signing a response as a request: %v", err)
	}
	if err := s.SignRequest(katAccessRequest[:19]); !errors.Is(err, ErrShort) {
		t.Fatalf("signing a short packet: %v", err)
	}
}

func TestAppendEAPSplitsAt253(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		size  int
		attrs int
		last  int
	}{
		{"empty", 0, 0, 0},
		{"one-short", 4, 1, 4},
		{"exactly-253", 253, 1, 253},
		{"254", 254, 2, 1},
		{"1400-bytes-six-attrs", 1400, 6, 135},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eap := make([]byte, tt.size)
			for i := range eap {
				eap[i] = byte(i)
			}
			attrs := AppendEAP(nil, eap)
			if len(attrs) != tt.attrs {
				t.Fatalf("attrs = %d, want %d", len(attrs), tt.attrs)
			}
			var joined []byte
			for i, a := range attrs {
				if a.Type != 79 || len(a.Attribute) > 253 {
					t.Fatalf("attr %d: type %d len %d", i, a.Type, len(a.Attribute))
				}
				joined = append(joined, a.Attribute...)
			}
			if !bytes.Equal(joined, eap) {
				t.Fatal("reassembly differs")
			}
			if tt.attrs > 0 && len(attrs[len(attrs)-1].Attribute) != tt.last {
				t.Fatalf("last = %d, want %d", len(attrs[len(attrs)-1].Attribute), tt.last)
			}
		})
	}
}

func TestEAPMessage(t *testing.T) {
	t.Parallel()
	s := NewSecret([]byte("s"))
	eap := make([]byte, 700)
	eap[0], eap[1] = 2, 5
	binary.BigEndian.PutUint16(eap[2:4], 700)
	wrong := bytes.Clone(eap)
	binary.BigEndian.PutUint16(wrong[2:4], 699)
	tests := []struct {
		name    string
		attrs   lradius.Attributes
		want    []byte
		ok      bool
		wantErr bool
	}{
		{"none", nil, nil, false, false},
		{"ok/split", AppendEAP(nil, eap), eap, true, false},
		{"ok/split-around-other-attributes", append(AppendEAP(lradius.Attributes{{Type: 1, Attribute: []byte("u")}}, eap[:253]), append(lradius.Attributes{{Type: 24, Attribute: []byte("s")}}, AppendEAP(nil, eap[253:])...)...), eap, true, false},
		{"ok/eap-start-empty", lradius.Attributes{{Type: 79}}, []byte{}, true, false},
		{"fail/length-mismatch", AppendEAP(nil, wrong), wrong, true, true},
		{"fail/shorter-than-header", lradius.Attributes{{Type: 79, Attribute: []byte{2, 1, 0}}}, []byte{2, 1, 0}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := s.EncodeRequest(lradius.CodeAccessRequest, 1, tt.attrs)
			if err != nil {
				t.Fatal(err)
			}
			p := mustParse(t, b)
			got, ok, err := p.EAPMessage()
			if ok != tt.ok || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrEAPLength)) {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			// On a length mismatch the octets still come back, for the
			// Identifier of the EAP-Failure.
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("eap differs")
			}
		})
	}
}

func TestAttributes(t *testing.T) {
	t.Parallel()
	p := mustParse(t, katAccessChallenge)
	if v, ok := p.Lookup(24); !ok || !bytes.Equal(v, bytes.Repeat([]byte{0xaa}, 16)) {
		t.Fatalf("State = %x %v", v, ok)
	}
	if _, ok := p.Lookup(1); ok {
		t.Fatal("found an absent User-Name")
	}
	if _, ok := p.Lookup(-1); ok {
		t.Fatal("found an impossible type")
	}
	var types []lradius.Type
	for typ := range p.All() {
		types = append(types, typ)
	}
	if want := []lradius.Type{80, 33, 79, 24}; !slices.Equal(types, want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	acct := mustParse(t, katAccountingRequest)
	if v, ok := acct.Uint32(40); !ok || v != 1 {
		t.Fatalf("Acct-Status-Type = %d %v", v, ok)
	}
	if _, ok := acct.Uint32(44); ok {
		t.Fatal("a 3-octet Acct-Session-Id read as an integer")
	}
	// Proxy-State echoes are copies, in order.
	two, err := NewSecret([]byte("s")).EncodeRequest(lradius.CodeAccessRequest, 1, lradius.Attributes{{Type: 33, Attribute: []byte("a")}, {Type: 1, Attribute: []byte("u")}, {Type: 33, Attribute: []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	tp := mustParse(t, two)
	ps := tp.AppendProxyStates(lradius.Attributes{{Type: 18}})
	if len(ps) != 3 || string(ps[1].Attribute) != "a" || string(ps[2].Attribute) != "b" {
		t.Fatalf("proxy states %v", ps)
	}
	two[len(two)-1] = 'x'
	if string(ps[2].Attribute) != "b" {
		t.Fatal("Proxy-State aliases the datagram")
	}
	if none := mustParse(t, katAccessRequest); none.AppendProxyStates(nil) != nil {
		t.Fatal("proxy states of a packet without")
	}
}
