package posture

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbound/store"
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
	c := &certInfo{notAfter: math.MaxInt64}
	d := standing{updatedAt: math.MinInt64}
	if got := s.sessionTimeout(p, unixNano(time.Now()), c, d); got <= 100*365*24*time.Hour {
		t.Errorf("sessionTimeout = %v, want about 236 years", got)
	}
}

// hasPointers reports whether values of t contain a pointer the GC must
// scan.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

// The caches' keys and values hold no pointers, so the GC never scans the
// million entries of a large site.
func TestCacheEntriesArePointerFree(t *testing.T) {
	for _, v := range []any{store.Hash{}, binding{}, devKey{}, standing{}} {
		if typ := reflect.TypeOf(v); hasPointers(typ) {
			t.Errorf("%v holds a pointer", typ)
		}
	}
}

func TestKeyOfKeepsShortIDsInlineAndHashesLongOnes(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		wantInline bool
	}{
		{name: "empty-inline", id: "", wantInline: true},
		{name: "longest-plain-inline", id: strings.Repeat("x", inlineID), wantInline: true},
		{name: "longer-plain-hashed", id: strings.Repeat("x", inlineID+1)},
		{name: "ek-sha256-hex-inline", id: strings.Repeat("0f", 32), wantInline: true},
		{name: "longest-hex-inline", id: strings.Repeat("a9", inlineID), wantInline: true},
		{name: "longer-hex-hashed", id: strings.Repeat("a9", inlineID+1)},
		{name: "upper-hex-hashed", id: strings.Repeat("AB", 32)},
		{name: "odd-hex-hashed", id: strings.Repeat("a", 2*inlineID-1)},
	}
	for _, tc := range tests {
		k := keyOf(tc.id)
		got, ok := k.inline()
		if ok != tc.wantInline || (ok && got != tc.id) {
			t.Errorf("%s: inline() = %q, %v", tc.name, got, ok)
		}
		if k != keyOf(tc.id) {
			t.Errorf("%s: keyOf is not deterministic", tc.name)
		}
	}
	// The three forms never collide.
	plain := keyOf(strings.Repeat("a", 32))
	hexed := keyOf(strings.Repeat("61", 32)) // decodes to 32 'a' bytes
	hashed := keyOf(strings.Repeat("61", 40))
	if plain == hexed || plain == hashed || hexed == hashed {
		t.Error("keys of different forms collide")
	}
}

func TestInternerRefusesBeyondItsBound(t *testing.T) {
	in := newInterner("a")
	if i, ok := in.intern("a"); !ok || i != 0 || in.name(i) != "a" {
		t.Fatalf("intern(a) = %d, %v", i, ok)
	}
	for n := 1; n < maxInterned; n++ {
		if _, ok := in.intern(strconv.Itoa(n)); !ok {
			t.Fatalf("intern refused name %d of %d", n, maxInterned)
		}
	}
	if _, ok := in.intern("one-too-many"); ok {
		t.Error("intern accepted a name beyond its bound")
	}
	if i, ok := in.intern("7"); !ok || in.name(i) != "7" {
		t.Error("a full interner forgot a known name")
	}
}

func TestLongIDsRefusesBeyondItsBound(t *testing.T) {
	l := newLongIDs(1)
	a, b := keyOf(strings.Repeat("a", 100)), keyOf(strings.Repeat("b", 100))
	if !l.add(a, "a") || !l.add(a, "a") {
		t.Fatal("add refused a first or known id")
	}
	if l.add(b, "b") {
		t.Error("add accepted an id beyond the bound")
	}
	l.clear()
	if _, ok := l.get(a); ok {
		t.Error("clear kept an id")
	}
}
