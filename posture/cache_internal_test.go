package posture

import (
	"math"
	"testing"
	"time"
)

func TestCacheFillKeepsLiveEntriesAndSkipsInvalidated(t *testing.T) {
	c := newCache[string, int](cacheShards) // one entry per shard
	gens := c.gens()
	c.del("invalidated") // a write while the page was being read
	if !c.fill("invalidated", 1, &gens) {
		t.Fatal("fill reported a full shard")
	}
	if _, _, ok := c.get("invalidated"); ok {
		t.Error("fill cached an entry invalidated after the snapshot")
	}
	_, g, _ := c.get("live")
	c.put("live", 2, g)
	gens = c.gens()
	if !c.fill("live", 3, &gens) {
		t.Fatal("fill reported a full shard")
	}
	if v, _, _ := c.get("live"); v != 2 {
		t.Errorf("fill replaced a cached entry: %d", v)
	}
	// Another key of the full shard of "live" is refused, not evicted.
	other := ""
	for i := 0; other == ""; i++ {
		if k := string(rune('a'+i%26)) + string(rune('0'+i/26)); c.shardOf(k) == c.shardOf("live") && k != "live" {
			other = k
		}
	}
	if c.fill(other, 4, &gens) {
		t.Error("fill into a full shard reported success")
	}
	if v, _, ok := c.get("live"); !ok || v != 2 {
		t.Error("fill evicted a live entry")
	}
}

func TestUnixNanoClampsOutOfRangeTimes(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 5, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want int64
	}{
		{"zero-is-min", time.Time{}, math.MinInt64},
		{"no-expiry-is-max", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), math.MaxInt64},
		{"present-is-exact", now, now.UnixNano()},
	}
	for _, tc := range tests {
		if got := unixNano(tc.in); got != tc.want {
			t.Errorf("%s: unixNano = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSessionTimeoutOfNoExpiryCertSaturates(t *testing.T) {
	s := &Service{}
	p := &Profile{}
	b := binding{notAfter: math.MaxInt64}
	d := standing{updatedAt: math.MinInt64}
	if got := s.sessionTimeout(p, unixNano(time.Now()), b, d); got <= 100*365*24*time.Hour {
		t.Errorf("sessionTimeout = %v, want about 236 years", got)
	}
}
