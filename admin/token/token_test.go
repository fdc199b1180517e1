package token

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestParseReadsOldAndNewLines(t *testing.T) {
	t.Parallel()
	h := Hash("v")
	hx := hex.EncodeToString(h[:])
	tests := []struct {
		name, in string
		want     []Token
		err      bool
	}{
		{"old line is admin", "ops " + hx + "\n", []Token{{Name: "ops", SHA256: h}}, false},
		{"comments and blanks", "# x\n\n ops " + hx + " \n", []Token{{Name: "ops", SHA256: h}}, false},
		{"scoped with expiry", "ro " + hx + " scope=read created=2026-12-01T10:00:00Z expires=2027-01-01T00:00:00Z\n",
			[]Token{{Name: "ro", SHA256: h, Scope: Read, CreatedAt: t0, ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}}, false},
		{"bad hash", "ops abc\n", nil, true},
		{"bad scope", "ops " + hx + " scope=root\n", nil, true},
		{"unknown key", "ops " + hx + " color=red\n", nil, true},
		{"duplicate name", "a " + hx + "\na " + hx + "\n", nil, true},
		{"bad name", "-x " + hx + "\n", nil, true},
		{"name only", "ops\n", nil, true},
	}
	for _, tc := range tests {
		got, err := Parse(strings.NewReader(tc.in))
		if tc.err {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line ") {
				t.Errorf("%s: err = %v, want ErrInvalid naming the line", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %+v", tc.name, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: got %+v, want %+v", tc.name, got[i], tc.want[i])
			}
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	t.Parallel()
	in := []Token{
		{Name: "b", SHA256: Hash("1"), Scope: Enroll, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		{Name: "a", SHA256: Hash("2")},
	}
	out, err := Parse(strings.NewReader(string(Format(in))))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Name != "a" || out[0].Scope != Admin || out[1] != in[0] {
		t.Errorf("round trip = %+v", out)
	}
}

func TestSetCreateCheckRevokeThroughTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "admin.tokens")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check("nothing", t0); !errors.Is(err, ErrUnknown) {
		t.Fatalf("empty set: %v", err)
	}
	v, tok, err := s.Create("ro", Read, t0.Add(24*time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "hb_") || tok.Scope != Read {
		t.Errorf("created %q %+v", v, tok)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), v) {
		t.Fatal("the token file holds the clear value")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := s.Check(v, t0.Add(time.Hour))
	if err != nil || got.Name != "ro" || got.EffectiveScope() != Read {
		t.Fatalf("check = %+v, %v", got, err)
	}
	if _, err := s.Check(v, t0.Add(24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if _, _, err := s.Create("ro", Admin, time.Time{}, t0); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v, want ErrExists", err)
	}

	// Another process (the CLI on the same data dir) adds a token: this
	// set sees it once the recheck interval has passed, and its own next
	// change keeps it.
	other, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v2, _, err := other.Create("ops", Admin, time.Time{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(v2, t0.Add(2*time.Hour)); err != nil {
		t.Errorf("token made by another writer: %v", err)
	}
	if _, _, err := s.Create("ci", Enroll, time.Time{}, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	list, err := other.List(t0.Add(4 * time.Hour))
	if err != nil || len(list) != 3 || list[0].Name != "ci" || list[1].Name != "ops" || list[2].Name != "ro" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := s.Revoke("ro", t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(v, t0.Add(5*time.Hour)); !errors.Is(err, ErrUnknown) {
		t.Errorf("revoked: %v, want ErrUnknown", err)
	}
	if _, err := s.Revoke("ro", t0.Add(5*time.Hour)); !errors.Is(err, ErrUnknown) {
		t.Errorf("revoke twice: %v, want ErrUnknown", err)
	}
}

func TestSetConcurrentCreatesLoseNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "admin.tokens")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenFile(path) // each its own Set, like separate processes
			if err != nil {
				t.Error(err)
				return
			}
			if _, _, err := s.Create("t"+string(rune('a'+i)), Read, time.Time{}, t0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(t0); len(l) != 8 {
		t.Errorf("%d tokens after 8 concurrent creates", len(l))
	}
}

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"90d", 90 * 24 * time.Hour, true}, {"720h", 720 * time.Hour, true},
		{"1.5d", 0, false}, {"-1h", 0, false}, {"d", 0, false}, {"30", 0, false}, {"07d", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseLifetime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLifetime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	h := Hash("v")
	f.Add("ops " + hex.EncodeToString(h[:]) + " scope=read expires=2027-01-01T00:00:00Z\n")
	f.Add("# c\n\nx y\n")
	f.Fuzz(func(t *testing.T, in string) {
		ts, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		// What parses formats back to the same tokens.
		again, err := Parse(strings.NewReader(string(Format(ts))))
		if err != nil || len(again) != len(ts) {
			t.Fatalf("reformat: %v (%d vs %d)", err, len(again), len(ts))
		}
	})
}

// BenchmarkCheck is the cost a request pays for its token: a SHA-256 and
// a constant-time compare with every stored hash.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			s := NewSet(nil)
			var last string
			for i := range n {
				v, _, err := s.Create(fmt.Sprintf("t%d", i), Read, time.Time{}, t0)
				if err != nil {
					b.Fatal(err)
				}
				last = v
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Check(last, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
