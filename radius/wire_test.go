package radius

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"layeh.com/radius"

	"hardbound/store"
)

func TestParsePacket(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	good := buildRequest(t, radius.CodeAccessRequest, 7, secret, radius.Attributes{{Type: attrUserName, Attribute: []byte("x")}}, true, false)
	twoMA := buildRequest(t, radius.CodeAccessRequest, 7, secret, radius.Attributes{{Type: attrMessageAuth, Attribute: make([]byte, 16)}}, true, false)
	shortMA := buildRequest(t, radius.CodeAccessRequest, 7, secret, radius.Attributes{{Type: attrMessageAuth, Attribute: make([]byte, 4)}}, false, false)
	withLen := func(b []byte, l int) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(b[2:4], uint16(l))
		return b
	}
	badAttr := append([]byte(nil), good...)
	badAttr[21] = 1 // attribute length below 2
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"ok/with-ma", good, nil},
		{"ok/trailing-padding-ignored", append(append([]byte(nil), good...), 0, 0, 0), nil},
		{"fail/short", good[:19], ErrMalformed},
		{"fail/length-below-20", withLen(good, 19), ErrMalformed},
		{"fail/length-beyond-datagram", withLen(good, len(good)+1), ErrMalformed},
		{"fail/attribute-length-1", badAttr, ErrMalformed},
		{"fail/attribute-overruns", withLen(good, len(good)-1), ErrMalformed},
		{"fail/two-message-authenticators", twoMA, ErrMalformed},
		{"fail/short-message-authenticator", shortMA, ErrMalformed},
		{"fail/too-large", make([]byte, 4097), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parsePacket(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && p.maOff != len(good)-16 {
				t.Fatalf("maOff = %d", p.maOff)
			}
		})
	}
}

func TestVerifyMessageAuthenticator(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	hp := newHasherPool(secret)
	attrs := radius.Attributes{{Type: attrUserName, Attribute: []byte("dev")}}
	tests := []struct {
		name     string
		pkt      []byte
		zeroAuth bool
		want     bool
	}{
		{"ok/access-request", buildRequest(t, radius.CodeAccessRequest, 1, secret, attrs, true, false), false, true},
		{"ok/status-server", buildRequest(t, radius.CodeStatusServer, 1, secret, nil, true, false), false, true},
		{"ok/accounting-zero-authenticator", buildRequest(t, radius.CodeAccountingRequest, 1, secret, attrs, true, false), true, true},
		{"fail/bad-hmac", buildRequest(t, radius.CodeAccessRequest, 1, secret, attrs, true, true), false, false},
		{"fail/missing", buildRequest(t, radius.CodeAccessRequest, 1, secret, attrs, false, false), false, false},
		{"fail/wrong-secret", buildRequest(t, radius.CodeAccessRequest, 1, []byte("other"), attrs, true, false), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parsePacket(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := verifyMessageAuthenticator(hp, &p, tt.zeroAuth); got != tt.want {
				t.Fatalf("verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEncodeResponsePutsMessageAuthenticatorFirst(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	hp := newHasherPool(secret)
	req := buildRequest(t, radius.CodeAccessRequest, 9, secret, nil, true, false)
	attrs := radius.Attributes{
		{Type: attrProxyState, Attribute: []byte("p1")},
		{Type: attrMessageAuth, Attribute: make([]byte, 16)}, // ignored: we add our own
		{Type: attrProxyState, Attribute: []byte("p2")},
	}
	for _, code := range []byte{codeAccessAccept, codeAccessReject, codeAccessChallenge} {
		resp, err := encodeResponse(hp, secret, code, 9, req[4:20], true, attrs)
		if err != nil {
			t.Fatal(err)
		}
		p := checkResponse(t, resp, req, secret)
		if len(p.Attributes) != 3 || string(p.Attributes[1].Attribute) != "p1" || string(p.Attributes[2].Attribute) != "p2" {
			t.Fatalf("code %d: attributes = %v", code, p.Attributes)
		}
	}
}

func TestEncodeResponseRejectsOversize(t *testing.T) {
	t.Parallel()
	hp := newHasherPool([]byte("x"))
	big := appendEAP(nil, make([]byte, 4100))
	if _, err := encodeResponse(hp, []byte("x"), codeAccessChallenge, 1, make([]byte, 16), true, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
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
			attrs := appendEAP(nil, eap)
			if len(attrs) != tt.attrs {
				t.Fatalf("attrs = %d, want %d", len(attrs), tt.attrs)
			}
			var joined []byte
			for i, a := range attrs {
				if a.Type != attrEAPMessage || len(a.Attribute) > 253 {
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

func TestEAPMessageReassembly(t *testing.T) {
	t.Parallel()
	eap := make([]byte, 700)
	eap[0], eap[1] = 2, 5
	binary.BigEndian.PutUint16(eap[2:4], 700)
	wrong := append([]byte(nil), eap...)
	binary.BigEndian.PutUint16(wrong[2:4], 699)
	tests := []struct {
		name    string
		attrs   radius.Attributes
		want    []byte
		ok      bool
		wantErr bool
	}{
		{"none", nil, nil, false, false},
		{"ok/split", appendEAP(nil, eap), eap, true, false},
		{"ok/eap-start-empty", radius.Attributes{{Type: attrEAPMessage}}, []byte{}, true, false},
		{"fail/length-mismatch", appendEAP(nil, wrong), nil, true, true},
		{"fail/shorter-than-header", radius.Attributes{{Type: attrEAPMessage, Attribute: []byte{2, 1, 0}}}, nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := buildRequest(t, radius.CodeAccessRequest, 1, []byte("s"), tt.attrs, true, false)
			p, err := parsePacket(b)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := p.eapMessage()
			if ok != tt.ok || (err != nil) != tt.wantErr {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if !tt.wantErr && !bytes.Equal(got, tt.want) {
				t.Fatalf("eap differs")
			}
		})
	}
}

func TestDupCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	k := dupKey{port: portAuth, from: netip.MustParseAddrPort("10.0.0.1:5000"), id: 3}
	a1, a2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	c := newDupCache(10*time.Second, 4)

	if r, _ := c.begin(now, k, a1); r != dupNew {
		t.Fatalf("first: %v", r)
	}
	if r, _ := c.begin(now, k, a1); r != dupInProgress {
		t.Fatalf("in progress: %v", r)
	}
	c.finish(k, a1, []byte("resp"))
	if r, b := c.begin(now, k, a1); r != dupCached || string(b) != "resp" {
		t.Fatalf("cached: %v %q", r, b)
	}
	// Same id, new authenticator: a new request replaces the entry.
	if r, _ := c.begin(now, k, a2); r != dupNew {
		t.Fatalf("new authenticator: %v", r)
	}
	c.abort(k, a2)
	if r, _ := c.begin(now, k, a2); r != dupNew {
		t.Fatalf("after abort: %v", r)
	}
	c.finish(k, a2, []byte("r2"))
	// Expiry.
	if r, _ := c.begin(now.Add(11*time.Second), k, a2); r != dupNew {
		t.Fatalf("after ttl: %v", r)
	}
	// Bound: many distinct keys never exceed max.
	for i := range 100 {
		kk := k
		kk.id = byte(i)
		c.begin(now.Add(11*time.Second), kk, a1)
	}
	if n := c.len(); n > 4 {
		t.Fatalf("cache holds %d entries, max 4", n)
	}
	// An idle server lets the janitor drop what expired.
	c.expire(now.Add(10 * time.Second))
	if n := c.len(); n == 0 {
		t.Fatal("expire dropped entries still within their ttl")
	}
	c.expire(now.Add(22 * time.Second))
	if n := c.len(); n != 0 {
		t.Fatalf("%d entries left after their ttl", n)
	}
}

func TestClassRoundTrip(t *testing.T) {
	t.Parallel()
	h := store.Hash{1, 2, 3}
	long := string(bytes.Repeat([]byte("é"), 200))
	tests := []struct {
		name   string
		device string
	}{
		{"plain", "dev-123"},
		{"empty-device", ""},
		{"colon-in-device", "a:b:c"},
		{"long-device-truncated-on-rune", long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := encodeClass(h, tt.device)
			if len(v) > 253 {
				t.Fatalf("class is %d bytes", len(v))
			}
			gh, gd, err := parseClass(v)
			if err != nil {
				t.Fatal(err)
			}
			if gh != h || (len(tt.device) <= 253-69 && gd != tt.device) {
				t.Fatalf("got %v %q", gh, gd)
			}
		})
	}
	for _, bad := range []string{"", "hb1:", "hb2:" + h.String() + ":x", "hb1:" + h.String() + "x", "hb1:zz" + h.String()[2:] + ":d", "hb1:" + h.String() + ":\x00"} {
		if _, _, err := parseClass([]byte(bad)); !errors.Is(err, ErrBadClass) {
			t.Errorf("parseClass(%q) err = %v", bad, err)
		}
	}
}

func TestClientLookupMostSpecificWins(t *testing.T) {
	t.Parallel()
	cfg := Config{Clients: []Client{
		{Name: "campus", Prefix: netip.MustParsePrefix("10.0.0.0/8"), Secret: []byte("a")},
		{Name: "building", Prefix: netip.MustParsePrefix("10.1.0.0/16"), Secret: []byte("b")},
		{Name: "switch", Prefix: netip.MustParsePrefix("10.1.2.3/32"), Secret: []byte("c")},
		{Name: "v6", Prefix: netip.MustParsePrefix("2001:db8::/32"), Secret: []byte("d")},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tab := newClientTable(cfg.Clients)
	tests := []struct{ addr, want string }{
		{"10.1.2.3", "switch"},
		{"::ffff:10.1.2.3", "switch"},
		{"10.1.2.4", "building"},
		{"10.9.9.9", "campus"},
		{"2001:db8::1", "v6"},
		{"192.168.1.1", ""},
	}
	for _, tt := range tests {
		n := tab.lookup(netip.MustParseAddr(tt.addr))
		got := ""
		if n != nil {
			got = n.Name
		}
		if got != tt.want {
			t.Errorf("lookup(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	p := netip.MustParsePrefix("127.0.0.1/32")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"fail/no-clients", Config{}, "radius: clients: at least one NAS client is required"},
		{"fail/no-name", Config{Clients: []Client{{Prefix: p, Secret: []byte("s")}}}, "radius: clients[0].name: required"},
		{"fail/no-secret", Config{Clients: []Client{{Name: "a", Prefix: p}}}, "radius: clients[0].secret: required"},
		{"fail/dup-prefix", Config{Clients: []Client{{Name: "a", Prefix: p, Secret: []byte("s")}, {Name: "b", Prefix: p, Secret: []byte("s")}}}, `radius: clients[1].prefix: 127.0.0.1/32 already used by "a"`},
		{"fail/interim", Config{Clients: []Client{{Name: "a", Prefix: p, Secret: []byte("s")}}, AcctInterimInterval: time.Second}, "radius: acct_interim_interval: must be >= 60s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func BenchmarkDecodeVerifyMA(b *testing.B) {
	secret := []byte(testSecret)
	hp := newHasherPool(secret)
	eap := make([]byte, 1000)
	eap[0], eap[1] = 2, 1
	binary.BigEndian.PutUint16(eap[2:4], 1000)
	attrs := append(radius.Attributes{
		{Type: attrUserName, Attribute: []byte("anonymous@example.org")},
		{Type: attrState, Attribute: make([]byte, 16)},
	}, appendEAP(nil, eap)...)
	pkt := buildRequest(b, radius.CodeAccessRequest, 1, secret, attrs, true, false)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := parsePacket(pkt)
		if err != nil || !verifyMessageAuthenticator(hp, &p, false) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkEncodeWithMA(b *testing.B) {
	secret := []byte(testSecret)
	hp := newHasherPool(secret)
	req := buildRequest(b, radius.CodeAccessRequest, 1, secret, nil, true, false)
	eap := make([]byte, 1024)
	attrs := append(appendEAP(nil, eap), &radius.AVP{Type: attrState, Attribute: make([]byte, 16)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeResponse(hp, secret, codeAccessChallenge, 1, req[4:20], true, attrs); err != nil {
			b.Fatal(err)
		}
	}
}
