package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/postgres"
)

// recorder collects what one watcher is told.
type recorder struct {
	mu   sync.Mutex
	got  []store.Change
	wake chan struct{}
}

func watch(t testing.TB, s store.Store) *recorder {
	t.Helper()
	r := &recorder{wake: make(chan struct{}, 1)}
	t.Cleanup(s.Watch(func(c store.Change) {
		r.mu.Lock()
		r.got = append(r.got, c)
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}))
	return r
}

// waitN waits until r holds at least n changes and takes them. The bound
// is generous: it catches a change that never arrives, it is not a
// latency check (BenchmarkChangePropagation measures that).
func (r *recorder) waitN(t testing.TB, n int) []store.Change {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			got := r.got
			r.got = nil
			r.mu.Unlock()
			return got
		}
		have := len(r.got)
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("got %d changes, want %d", have, n)
		}
	}
}

func (r *recorder) take() []store.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func h(s string) store.Hash { return sha256.Sum256([]byte(s)) }

func issuance(dev string, n int) store.Issuance {
	return store.Issuance{
		Device: &store.Device{ID: dev, Platform: "linux", Profile: "corp", Status: store.DeviceActive},
		Cert: &store.Cert{SHA256: h(fmt.Sprintf("%s/%d", dev, n)), Serial: fmt.Sprintf("1%x", h(fmt.Sprintf("s%s/%d", dev, n)).String()[:12]),
			DeviceID: dev, KeySHA256: h(fmt.Sprintf("k%s/%d", dev, n)), Profile: "corp", Protocol: "scep", DER: []byte{0x30, 0x00}},
		Audit: &store.AuditEvent{Actor: "device:" + dev, Action: "enroll.issue", Subject: dev, Result: "ok"},
	}
}

// Two nodes on one database: what node A writes reaches node B's
// watchers, in A's commit order, and B's own writes are ordered with them.
func TestTwoNodesChangesReachTheOtherNode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		listen bool
	}{{"listen", true}, {"polling_only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := newDB(t)
			a := openDSN(t, dsn, postgres.WithListen(tc.listen))
			b := openDSN(t, dsn, postgres.WithListen(tc.listen))
			rb := watch(t, b)
			ctx := t.Context()

			is := issuance("d1", 1)
			if err := a.RecordIssuance(ctx, is); err != nil {
				t.Fatal(err)
			}
			c := rb.waitN(t, 1)[0]
			if c.Kind != store.ChangeIssued || c.DeviceID != "d1" || c.CertSHA256 != is.Cert.SHA256 || c.Actor != "device:d1" || c.Cert.DER != nil {
				t.Fatalf("B got %+v, want the issuance of d1", c)
			}

			_, err := a.UpdateDevice(ctx, "d1", func(d *store.Device) error { d.Status = store.DeviceQuarantined; return nil },
				&store.AuditEvent{Actor: "admin:ops", Action: "device.quarantine", Subject: "d1", Result: "ok"})
			if err != nil {
				t.Fatal(err)
			}
			c = rb.waitN(t, 1)[0]
			if c.Kind != store.ChangeDevice || c.Prev.Status != store.DeviceActive || c.Device.Status != store.DeviceQuarantined || c.Actor != "admin:ops" {
				t.Fatalf("B got %+v, want the quarantine", c)
			}

			if _, _, err := a.RevokeDevice(ctx, "d1", store.Revocation{Reason: 1, Actor: "admin:ops"}, nil); err != nil {
				t.Fatal(err)
			}
			c = rb.waitN(t, 1)[0]
			if c.Kind != store.ChangeDeviceRevoked || len(c.Certs) != 1 || c.Certs[0].Revoked == nil || c.Device.Status != store.DeviceRevoked {
				t.Fatalf("B got %+v, want the device revocation with its cert", c)
			}
			// By the time B is told, B reads the revoked binding.
			got, err := b.GetCertBinding(ctx, is.Cert.SHA256)
			if err != nil || got.Revoked == nil {
				t.Fatalf("B reads %+v, %v; want the revoked binding", got, err)
			}

			// A burst of A's writes, then one of B's: B delivers A's first,
			// in order, then its own, before its write returns.
			const burst = 20
			for i := range burst {
				if err := a.PutDevice(ctx, &store.Device{ID: "burst", Profile: strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.PutAttestation(ctx, &store.Attestation{ID: "att", DeviceID: "d1", Format: "tpm", KeySHA256: h("k")}); err != nil {
				t.Fatal(err)
			}
			all := rb.take()
			if len(all) != burst+1 || all[burst].Kind != store.ChangeAttestation {
				t.Fatalf("B's own write returned with %d changes delivered (last %v), want A's %d then its own", len(all), all[len(all)-1].Kind, burst)
			}
			for i, c := range all[:burst] {
				if c.Device.Profile != strconv.Itoa(i) || (i > 0 && c.Seq <= all[i-1].Seq) {
					t.Fatalf("change %d: profile %q seq %d: not in A's order", i, c.Device.Profile, c.Seq)
				}
			}
		})
	}
}

// writesWithoutNotify opens a node that does not NOTIFY (listen off), so
// the other node learns of its writes only when it looks.
func quietWriter(t *testing.T, dsn string) *postgres.Store {
	return openDSN(t, dsn, postgres.WithListen(false), postgres.WithPollInterval(time.Hour))
}

func TestCatchUpReplaysMissedChangesInOrder(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	a := quietWriter(t, dsn)
	b := openDSN(t, dsn, postgres.WithoutFollower())
	rb := watch(t, b)
	ctx := t.Context()
	for i := range 30 {
		if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := rb.take(); len(got) != 0 {
		t.Fatalf("B delivered %d changes before it looked", len(got))
	}
	b.CatchUp(ctx)
	got := rb.take()
	if len(got) != 30 {
		t.Fatalf("catch-up delivered %d changes, want 30", len(got))
	}
	for i, c := range got {
		if c.Kind != store.ChangeDevice || c.Device.Profile != strconv.Itoa(i) {
			t.Fatalf("change %d: %v profile %q", i, c.Kind, c.Device.Profile)
		}
		if i == 0 && c.Prev != nil || i > 0 && c.Prev.Profile != strconv.Itoa(i-1) {
			t.Fatalf("change %d: prev %+v", i, c.Prev)
		}
	}
	b.CatchUp(ctx)
	if got := rb.take(); len(got) != 0 {
		t.Fatalf("a second catch-up delivered %d changes again", len(got))
	}
}

func TestCatchUpResetsWhenItMissedTooMuch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []postgres.Option
		setup func(t *testing.T, b *postgres.Store)
	}{
		{name: "more_than_max_replay", opts: []postgres.Option{postgres.WithMaxReplay(5)}},
		{name: "changes_pruned", setup: func(t *testing.T, b *postgres.Store) {
			if _, err := b.Pool().Exec(t.Context(), "DELETE FROM changes WHERE seq < 4"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := newDB(t)
			a := quietWriter(t, dsn)
			b := openDSN(t, dsn, append(tc.opts, postgres.WithoutFollower())...)
			rb := watch(t, b)
			ctx := t.Context()
			for i := range 10 {
				if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, b)
			}
			b.CatchUp(ctx)
			got := rb.take()
			if len(got) != 1 || got[0].Kind != store.ChangeReset || got[0].Seq == 0 {
				t.Fatalf("catch-up delivered %v, want one reset", got)
			}
			// Past the reset the feed goes on normally.
			if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: "after"}); err != nil {
				t.Fatal(err)
			}
			b.CatchUp(ctx)
			next := rb.take()
			if len(next) != 1 || next[0].Kind != store.ChangeDevice || next[0].Device.Profile != "after" || next[0].Seq <= got[0].Seq {
				t.Fatalf("after the reset: %v", next)
			}
		})
	}
}

// A node whose LISTEN connection is cut reconnects and replays what it
// missed meanwhile; nothing is lost and nothing resets.
func TestListenerReconnectsAndReplays(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	a := openDSN(t, dsn)
	b := openDSN(t, dsn, postgres.WithPollInterval(time.Hour))
	rb := watch(t, b)
	ctx := t.Context()
	waitListening(t, b)
	pid := listenerPIDs(t, b)
	for round := range 3 {
		if _, err := b.Pool().Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", postgres.ListenerAppName); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: fmt.Sprintf("%d-%d", round, i)}); err != nil {
				t.Fatal(err)
			}
		}
		got := rb.waitN(t, 5)
		for i, c := range got {
			if c.Kind != store.ChangeDevice || c.Device.Profile != fmt.Sprintf("%d-%d", round, i) {
				t.Fatalf("round %d change %d: %v %+v", round, i, c.Kind, c.Device)
			}
		}
	}
	waitListening(t, b)
	if now := listenerPIDs(t, b); slices.Equal(now, pid) {
		t.Fatalf("listener backend %v did not change after being terminated", now)
	}
}

func waitListening(t *testing.T, s *postgres.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(listenerPIDs(t, s)) == 0 || !s.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("listener never connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listenerPIDs(t *testing.T, s *postgres.Store) []int32 {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() ORDER BY pid", postgres.ListenerAppName)
	if err != nil {
		t.Fatal(err)
	}
	var out []int32
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkChangePropagation measures how long a standing change written
// on node A takes to reach a watcher on node B: from the start of A's
// write to B's delivery. It reports p50 and p99 in ms; "local" is the
// same write watched on A itself, the floor.
//
//	go test -run '^$' -bench ChangePropagation -benchtime 200x ./store/postgres/
func BenchmarkChangePropagation(b *testing.B) {
	for _, bc := range []struct {
		name   string
		local  bool
		listen bool
		poll   time.Duration
	}{
		{"local", true, true, time.Second},
		{"listen", false, true, time.Second},
		{"polling_only_250ms", false, false, 250 * time.Millisecond},
		{"polling_only_100ms", false, false, 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dsn := newDB(b)
			a := openDSN(b, dsn, postgres.WithListen(bc.listen), postgres.WithPollInterval(bc.poll))
			other := a
			if !bc.local {
				other = openDSN(b, dsn, postgres.WithListen(bc.listen), postgres.WithPollInterval(bc.poll))
			}
			ctx := context.Background()
			if err := a.PutDevice(ctx, &store.Device{ID: "d1"}); err != nil {
				b.Fatal(err)
			}
			arrived := make(chan time.Time, 1)
			stop := other.Watch(func(c store.Change) {
				if c.Kind == store.ChangeDevice && c.Prev != nil {
					arrived <- time.Now()
				}
			})
			defer stop()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				_, err := a.UpdateDevice(ctx, "d1", func(d *store.Device) error {
					if i%2 == 0 {
						d.Status = store.DeviceQuarantined
					} else {
						d.Status = store.DeviceActive
					}
					return nil
				}, nil)
				if err != nil {
					b.Fatal(err)
				}
				select {
				case at := <-arrived:
					lat = append(lat, at.Sub(start))
				case <-time.After(30 * time.Second):
					b.Fatal("change never arrived")
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
		})
	}
}

// A change row that does not decode (written by something else) cannot
// be replayed: the follower resets past it rather than retry forever.
func TestCatchUpResetsPastAnUndecodableChange(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	a := quietWriter(t, dsn)
	b := openDSN(t, dsn, postgres.WithoutFollower())
	rb := watch(t, b)
	ctx := t.Context()
	for i := range 3 {
		if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Pool().Exec(ctx, `UPDATE changes SET change = '{"kind":"not a number"}' WHERE seq = (SELECT min(seq) FROM changes)`); err != nil {
		t.Fatal(err)
	}
	b.CatchUp(ctx)
	if got := rb.take(); len(got) != 1 || got[0].Kind != store.ChangeReset {
		t.Fatalf("catch-up over a bad change delivered %v, want one reset", got)
	}
	if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: "after"}); err != nil {
		t.Fatal(err)
	}
	b.CatchUp(ctx)
	if got := rb.take(); len(got) != 1 || got[0].Kind != store.ChangeDevice || got[0].Device.Profile != "after" {
		t.Fatalf("after the reset: %v", got)
	}
}
