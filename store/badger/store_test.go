package badger

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openMem(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), "", append([]Option{WithInMemory()}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func h(s string) store.Hash { return sha256.Sum256([]byte(s)) }

func issuance(dev string, n int) store.Issuance {
	return store.Issuance{
		Device: &store.Device{ID: dev, Platform: "linux", Aliases: map[string]string{"serial": "S-" + dev}},
		Cert: &store.Cert{
			SHA256: h(fmt.Sprintf("%s/%d", dev, n)), Serial: fmt.Sprintf("1%x", h(fmt.Sprintf("s%s/%d", dev, n)).String()[:12]),
			DeviceID: dev, KeySHA256: h(fmt.Sprintf("k%s/%d", dev, n)), Profile: "corp", Protocol: "scep",
			DER: make([]byte, 1200),
		},
		Audit: &store.AuditEvent{Actor: "device:" + dev, Action: "enroll.issue", Subject: dev, Result: "ok"},
	}
}

func mustIssue(t testing.TB, s *Store, dev string, n int) store.Issuance {
	t.Helper()
	is := issuance(dev, n)
	if err := s.RecordIssuance(context.Background(), is); err != nil {
		t.Fatalf("RecordIssuance: %v", err)
	}
	return is
}

func TestReopenKeepsDataAndContinuesChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	is := mustIssue(t, s, "d1", 1)
	chal := &store.Challenge{SHA256: h("c"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.PutChallenge(ctx, chal); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	c, err := s.GetCert(ctx, is.Cert.SHA256)
	if err != nil || c.DeviceID != "d1" {
		t.Fatalf("GetCert after reopen: %v, %+v", err, c)
	}
	if _, err := s.FindDeviceByAlias(ctx, "serial", "S-d1"); err != nil {
		t.Fatalf("alias after reopen: %v", err)
	}
	if _, err := s.ConsumeChallenge(ctx, h("c"), time.Now()); err != nil {
		t.Fatalf("challenge after reopen: %v", err)
	}
	ev := &store.AuditEvent{Actor: "system", Action: "x", Result: "ok"}
	if err := s.AppendAudit(ctx, ev); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if ev.Seq != 2 || ev.PrevHash != is.Audit.Hash {
		t.Fatalf("chain did not continue across reopen: seq %d", ev.Seq)
	}
	if res, err := s.VerifyAudit(ctx); err != nil || !res.OK || res.Events != 2 {
		t.Fatalf("VerifyAudit: %+v, %v", res, err)
	}
}

func TestDataDirIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s, err := Open(ctx, dir, WithGCInterval(time.Millisecond))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range 20 {
		mustIssue(t, s, fmt.Sprintf("d%d", i), 1)
	}
	check := func(when string) {
		t.Helper()
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: dir mode %v, want 0700", when, fi.Mode().Perm())
		}
		n := 0
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n++
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s mode %v, want 0600", when, filepath.Base(p), fi.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("%s: no files in data dir", when)
		}
	}
	s.tightenFiles() // what the GC tick does; don't wait for one
	check("open")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check("closed")
}

// TestVerifyAuditNamesFirstBrokenLink tampers with the raw database and
// expects VerifyAudit to name the first event that no longer checks out.
func TestVerifyAuditNamesFirstBrokenLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, txn *bdb.Txn)
		broken uint64
	}{
		{"edited_field", func(t *testing.T, txn *bdb.Txn) {
			editEvent(t, txn, 3, func(e *store.AuditEvent) { e.Result = "denied" })
		}, 3},
		{"edited_and_rehashed", func(t *testing.T, txn *bdb.Txn) {
			editEvent(t, txn, 3, func(e *store.AuditEvent) { e.Actor = "admin:mallory"; e.Hash = e.ComputeHash() })
		}, 4},
		{"deleted_event", func(t *testing.T, txn *bdb.Txn) {
			if err := txn.Delete(keyAudit(3)); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"garbage_event", func(t *testing.T, txn *bdb.Txn) {
			if err := txn.Set(keyAudit(2), []byte("{not json")); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"truncated_tail", func(t *testing.T, txn *bdb.Txn) {
			if err := txn.Delete(keyAudit(5)); err != nil {
				t.Fatal(err)
			}
		}, 5},
		{"last_event_edited_and_rehashed", func(t *testing.T, txn *bdb.Txn) {
			editEvent(t, txn, 5, func(e *store.AuditEvent) { e.Reason = "x"; e.Hash = e.ComputeHash() })
		}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openMem(t)
			ctx := t.Context()
			for i := range 5 {
				if err := s.AppendAudit(ctx, &store.AuditEvent{Actor: "system", Action: "a", Subject: fmt.Sprint(i), Result: "ok"}); err != nil {
					t.Fatal(err)
				}
			}
			if res, err := s.VerifyAudit(ctx); err != nil || !res.OK {
				t.Fatalf("before tampering: %+v, %v", res, err)
			}
			if err := s.db.Update(func(txn *bdb.Txn) error { tc.tamper(t, txn); return nil }); err != nil {
				t.Fatal(err)
			}
			res, err := s.VerifyAudit(ctx)
			if err != nil {
				t.Fatalf("VerifyAudit: %v", err)
			}
			if res.OK || res.BrokenSeq != tc.broken || res.Problem == "" {
				t.Fatalf("VerifyAudit = %+v, want broken at %d", res, tc.broken)
			}
		})
	}
}

func editEvent(t *testing.T, txn *bdb.Txn, seq uint64, fn func(*store.AuditEvent)) {
	t.Helper()
	var e store.AuditEvent
	if err := getJSON(txn, keyAudit(seq), &e); err != nil {
		t.Fatal(err)
	}
	fn(&e)
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Set(keyAudit(seq), b); err != nil {
		t.Fatal(err)
	}
}

// TestChallengeExpiryFollowsStoreClock: RecordIssuance judges expiry by the
// injected clock, not by Badger's wall-clock TTL.
func TestChallengeExpiryFollowsStoreClock(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := openMem(t, WithClock(clk.Now))
	ctx := t.Context()
	for _, name := range []string{"fresh", "stale"} {
		c := &store.Challenge{SHA256: h(name), ExpiresAt: clk.Now().Add(10 * time.Minute)}
		if err := s.PutChallenge(ctx, c); err != nil {
			t.Fatalf("PutChallenge: %v", err)
		}
		if !c.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("CreatedAt %v, want store clock %v", c.CreatedAt, clk.Now())
		}
	}
	// Badger's TTL is wall time: ten minutes from now, whatever the store clock says.
	if err := s.db.View(func(txn *bdb.Txn) error {
		item, err := txn.Get(keyChallenge(h("fresh")))
		if err != nil {
			return err
		}
		got := time.Unix(int64(item.ExpiresAt()), 0)
		if lo, hi := time.Now().Add(10*time.Minute), time.Now().Add(10*time.Minute+3*time.Second); got.Before(lo.Truncate(time.Second)) || got.After(hi) {
			t.Errorf("badger ExpiresAt %v, want about %v", got, lo)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	fresh := issuance("d1", 1)
	fresh.Challenge = ptr(h("fresh"))
	if err := s.RecordIssuance(ctx, fresh); err != nil {
		t.Fatalf("RecordIssuance(fresh): %v", err)
	}
	if !fresh.Audit.Time.Equal(clk.Now()) {
		t.Fatalf("audit time %v, want store clock %v", fresh.Audit.Time, clk.Now())
	}

	clk.Advance(11 * time.Minute)
	stale := issuance("d2", 1)
	stale.Challenge = ptr(h("stale"))
	if err := s.RecordIssuance(ctx, stale); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("RecordIssuance(stale): %v, want ErrExpired", err)
	}
	if _, err := s.GetDevice(ctx, "d2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired issuance wrote the device: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestInvalidInputIsRejected(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	ctx := t.Context()
	long := string(make([]byte, store.MaxIDLen+1))
	tests := []struct {
		name string
		call func() error
	}{
		{"device_empty_id", func() error { return s.PutDevice(ctx, &store.Device{}) }},
		{"device_nul_id", func() error { return s.PutDevice(ctx, &store.Device{ID: "a\x00b"}) }},
		{"device_long_id", func() error { return s.PutDevice(ctx, &store.Device{ID: long}) }},
		{"alias_nul_value", func() error {
			return s.PutDevice(ctx, &store.Device{ID: "d", Aliases: map[string]string{"serial": "x\x00"}})
		}},
		{"issuance_no_cert", func() error { return s.RecordIssuance(ctx, store.Issuance{Audit: &store.AuditEvent{}}) }},
		{"issuance_no_audit", func() error { is := issuance("d", 1); is.Audit = nil; return s.RecordIssuance(ctx, is) }},
		{"issuance_upper_serial", func() error { is := issuance("d", 1); is.Cert.Serial = "ABC"; return s.RecordIssuance(ctx, is) }},
		{"issuance_leading_zero_serial", func() error { is := issuance("d", 1); is.Cert.Serial = "0abc"; return s.RecordIssuance(ctx, is) }},
		{"issuance_device_id_mismatch", func() error { is := issuance("d", 1); is.Device.ID = "e"; return s.RecordIssuance(ctx, is) }},
		{"challenge_zero_hash", func() error { return s.PutChallenge(ctx, &store.Challenge{ExpiresAt: time.Now()}) }},
		{"challenge_no_expiry", func() error { return s.PutChallenge(ctx, &store.Challenge{SHA256: h("x")}) }},
		{"session_no_nas", func() error { return s.PutSession(ctx, &store.Session{AcctSessionID: "x"}) }},
		{"attestation_no_key", func() error { return s.PutAttestation(ctx, &store.Attestation{ID: "a"}) }},
		{"session_bad_cursor", func() error { _, _, err := s.ListSessions(ctx, "", false, store.Page{After: "!!"}); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if n := len(mustTail(t, s)); n != 0 {
		t.Fatalf("rejected input wrote %d audit events", n)
	}
}

func mustTail(t *testing.T, s *Store) []*store.AuditEvent {
	t.Helper()
	evs, err := s.TailAudit(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestGetCertBySerialNormalisesSpelling(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	is := issuance("d1", 1)
	is.Cert.Serial = "1abc"
	if err := s.RecordIssuance(t.Context(), is); err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{"1abc", "1ABC", "001abc", "1a:bc"} {
		if _, err := s.GetCertBySerial(t.Context(), spelling); err != nil {
			t.Errorf("GetCertBySerial(%q): %v", spelling, err)
		}
	}
}

func BenchmarkGetCert(b *testing.B) {
	s := openMem(b)
	is := mustIssue(b, s, "d1", 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.GetCert(ctx, is.Cert.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCertParallel(b *testing.B) {
	s := openMem(b)
	is := mustIssue(b, s, "d1", 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetCert(ctx, is.Cert.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetDevice(b *testing.B) {
	s := openMem(b)
	mustIssue(b, s, "d1", 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetDevice(ctx, "d1"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchIssuance(b *testing.B, s *Store) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		is := issuance(fmt.Sprintf("d%d", i%64), i)
		if err := s.RecordIssuance(ctx, is); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordIssuance(b *testing.B) {
	b.Run("in_memory", func(b *testing.B) { benchIssuance(b, openMem(b)) })
	b.Run("on_disk_sync", func(b *testing.B) {
		s, err := Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		benchIssuance(b, s)
	})
}
