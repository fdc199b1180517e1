package radius

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/radius/packet"
	"hardbound/store"
)

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

func TestClassIsAuthenticAndWhole(t *testing.T) {
	t.Parallel()
	k := classKey{key: bytes.Repeat([]byte{7}, ClassKeyLen)}
	h := store.Hash{1, 2, 3}
	issued := time.Date(2026, 12, 2, 10, 0, 0, 123, time.UTC)
	nasA := netip.MustParseAddr("127.0.0.1")
	long := strings.Repeat("é", 128) // 256 octets: more than one attribute holds
	bindings := map[store.Hash]string{h: long}
	resolve := func(x store.Hash) (string, error) {
		if id, ok := bindings[x]; ok {
			return id, nil
		}
		return "", store.ErrNotFound
	}
	for _, dev := range []string{"dev-123", "a:b:c", strings.Repeat("x", classRoom), long} {
		v := k.encode("access", nasA, issued, h, dev)
		if len(v) > maxAttr {
			t.Fatalf("%d-octet device id: class is %d octets", len(dev), len(v))
		}
		got, err := k.decode(v, "access", nasA, resolve)
		if err != nil || got.deviceID != dev || got.cert != h || !got.issued.Equal(issued) {
			t.Fatalf("%d-octet device id: %+v, %v", len(dev), got, err)
		}
	}
	good := k.encode("access", nasA, issued, h, "dev-123")
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	tests := []struct {
		name string
		v    []byte
		nas  string
		from netip.Addr
		key  classKey
	}{
		{"another_nas_of_the_client", good, "access", netip.MustParseAddr("127.0.0.2"), k},
		{"another_client", good, "other", nasA, k},
		{"another_server_key", good, "access", nasA, classKey{key: bytes.Repeat([]byte{8}, ClassKeyLen)}},
		{"device_changed", append(bytes.Clone(good[:len(good)-1]), '4'), "access", nasA, k},
		{"issued_changed", flip(6), "access", nasA, k},
		{"cert_changed", flip(20), "access", nasA, k},
		{"mac_changed", flip(classHeader - 1), "access", nasA, k},
		{"unknown_flag", flip(3), "access", nasA, k},
		{"old_unauthenticated_format", []byte("hb1:" + h.String() + ":dev-123"), "access", nasA, k},
		{"short", good[:classHeader-1], "access", nasA, k},
		{"empty", nil, "access", nasA, k},
	}
	for _, tt := range tests {
		if _, err := tt.key.decode(tt.v, tt.nas, tt.from, resolve); !errors.Is(err, ErrBadClass) {
			t.Errorf("%s: err = %v, want ErrBadClass", tt.name, err)
		}
	}
	// A long id left out resolves through the binding, and the MAC covers
	// it: a binding that names another device does not verify.
	v := k.encode("access", nasA, issued, h, long)
	bindings[h] = long[:len(long)-2]
	if _, err := k.decode(v, "access", nasA, resolve); !errors.Is(err, ErrBadClass) {
		t.Errorf("resolved to another device: err = %v", err)
	}
	if _, err := k.decode(v, "access", nasA, nil); !errors.Is(err, ErrBadClass) {
		t.Errorf("no resolver: err = %v", err)
	}
}

func TestLoadClassKeyKeepsItAcrossRestarts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "radius", "class.key")
	a, err := LoadClassKey(path)
	if err != nil || len(a) != ClassKeyLen {
		t.Fatalf("create: %d octets, %v", len(a), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	b, err := LoadClassKey(path)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("reload gave another key (%v)", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadClassKey(path); err == nil {
		t.Fatal("a short key file was accepted")
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

// BenchmarkDecodeVerifyMA is the server's authenticity cost per
// Access-Request: framing and Message-Authenticator, through the codec.
func BenchmarkDecodeVerifyMA(b *testing.B) {
	secret := []byte(testSecret)
	sec := packet.NewSecret(secret)
	pol := packet.Policy{RequireMessageAuthenticator: true}
	eap := make([]byte, 1000)
	eap[0], eap[1] = 2, 1
	binary.BigEndian.PutUint16(eap[2:4], 1000)
	attrs := append(lradius.Attributes{
		{Type: attrUserName, Attribute: []byte("anonymous@example.org")},
		{Type: attrState, Attribute: make([]byte, 16)},
	}, packet.AppendEAP(nil, eap)...)
	pkt := buildRequest(b, lradius.CodeAccessRequest, 1, secret, attrs, true, false)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := packet.Parse(pkt)
		if err != nil || sec.VerifyRequest(&p, pol) != nil {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkEncodeWithMA is the server's cost of one Access-Challenge
// carrying a 1 KiB EAP fragment: layout, Message-Authenticator first,
// Response Authenticator.
func BenchmarkEncodeWithMA(b *testing.B) {
	secret := []byte(testSecret)
	sec := packet.NewSecret(secret)
	req, err := packet.Parse(buildRequest(b, lradius.CodeAccessRequest, 1, secret, nil, true, false))
	if err != nil {
		b.Fatal(err)
	}
	eap := make([]byte, 1024)
	attrs := append(packet.AppendEAP(nil, eap), &lradius.AVP{Type: attrState, Attribute: make([]byte, 16)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sec.EncodeResponse(&req, lradius.CodeAccessChallenge, true, attrs); err != nil {
			b.Fatal(err)
		}
	}
}
