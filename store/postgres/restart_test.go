package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/postgres"
	"hardbound/store/postgres/pgtest"
)

// The database server goes away (immediate shutdown: every connection
// cut) and comes back on the same port: both nodes' pools and B's
// listener reconnect by themselves, writes fail cleanly while it is down,
// and B delivers what A wrote after the restart, in order, without a
// reset. The test runs its own server, since it stops it.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	pgtest.Require(t, cluster, startErr) // PostgreSQL present
	cl, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	dsn, err := cl.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a := openDSN(t, dsn)
	b := openDSN(t, dsn, postgres.WithPollInterval(time.Hour), postgres.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil))))
	rb := watch(t, b)
	ctx := t.Context()
	waitListening(t, b)
	if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: "before"}); err != nil {
		t.Fatal(err)
	}
	rb.waitN(t, 1)

	if err := cl.Kill(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = a.PutDevice(short, &store.Device{ID: "d", Profile: "while-down"})
	cancel()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a write with the database down = %v, want ErrUnavailable", err)
	}
	if _, err := a.GetDevice(ctx, "d"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a read with the database down = %v, want ErrUnavailable", err)
	}
	if _, down := a.Unavailable(); !down {
		t.Fatal("a.Unavailable() says up after calls failed for it")
	}
	// B made no call: its LISTEN connection's loss and the follower's
	// catch-up find out.
	waitAvailability(t, b, true)
	if err := cl.Restart(); err != nil {
		t.Fatal(err)
	}

	// The pool hands out new connections once the server is back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: "after-0"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes never recovered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 1; i < 5; i++ {
		if err := a.PutDevice(ctx, &store.Device{ID: "d", Profile: "after-" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, down := a.Unavailable(); down {
		t.Fatal("a.Unavailable() says down after a write succeeded")
	}
	waitAvailability(t, b, false)
	// A refusal of the server is not unavailability.
	acct := func(id string) *store.ACMEAccount {
		return &store.ACMEAccount{ID: id, Thumbprint: "tp", JWK: []byte(`{"kty":"EC"}`), Status: "valid"}
	}
	if err := a.PutACMEAccount(ctx, acct("acct-1")); err != nil {
		t.Fatal(err)
	}
	if err := a.PutACMEAccount(ctx, acct("acct-2")); !errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a second account for one key = %v, want ErrExists and not ErrUnavailable", err)
	}
	got := rb.waitN(t, 5)
	for i, c := range got {
		if c.Kind != store.ChangeDevice || c.Device.Profile != "after-"+strconv.Itoa(i) {
			t.Fatalf("change %d after the restart: %v %+v", i, c.Kind, c.Device)
		}
	}
	if got[0].Prev == nil || got[0].Prev.Profile != "before" {
		t.Fatalf("first change after the restart has prev %+v: the failed write must not have landed", got[0].Prev)
	}
	waitListening(t, b)
}

// waitAvailability waits until s.Unavailable says down (or up).
func waitAvailability(t *testing.T, s *postgres.Store, down bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, d := s.Unavailable(); d == down {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Unavailable() never became %v", down)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
