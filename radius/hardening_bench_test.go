package radius

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"hardbound/store"
)

// BenchmarkClass is the authenticated Class: built once per Accept,
// checked once per accounting packet.
func BenchmarkClass(b *testing.B) {
	k := classKey{key: make([]byte, ClassKeyLen)}
	from := netip.MustParseAddr("10.20.0.7")
	at := time.Now()
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = k.encode("access-switches", from, at, store.Hash{1}, "d-000001")
		}
	})
	v := k.encode("access-switches", from, at, store.Hash{1}, "d-000001")
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.decode(v, "access-switches", from, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConversationCreate: a new conversation with room in the table,
// and one that must evict an early conversation at the per-NAS cap (the
// flood case). Compare the two within one run.
func BenchmarkConversationCreate(b *testing.B) {
	n := newNAS(Client{Name: "wlc", Secret: []byte("x")})
	for _, tc := range []struct {
		name string
		cap  int
	}{{"room", 1 << 30}, {"evict_at_cap", 5000}} {
		b.Run(tc.name, func(b *testing.B) {
			t := newConvTable(1<<30, tc.cap, 1<<40, time.Minute, time.Minute)
			now := time.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c, _, _, err := t.create(now, n, fmt.Sprint("st-", i))
				if err != nil {
					b.Fatal(err)
				}
				t.release(now, c)
				i++
				if tc.cap > 5000 && i%5000 == 0 {
					// Keep the "room" table from growing without bound.
					t.drain()
				}
			}
		})
	}
}
