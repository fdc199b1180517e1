package postgres_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/postgres"
	"hardbound/store/postgres/pgtest"
	"hardbound/store/storetest"
)

// One server for the whole package run; each store gets its own database.
var (
	cluster  *pgtest.Cluster
	startErr error
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster, &startErr)) }

// openDSN opens a store on dsn, closed when the test ends.
func openDSN(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, append([]postgres.Option{postgres.WithMaxConns(4), postgres.WithPollInterval(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newDB returns the DSN of a fresh database.
func newDB(t testing.TB) string {
	t.Helper()
	return pgtest.Require(t, cluster, startErr).NewDatabase(t)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), newDB(t), postgres.WithMaxConns(4))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestConformancePollingOnly(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), newDB(t), postgres.WithMaxConns(4), postgres.WithListen(false))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// A Faulty store that injects nothing must still be a conforming store.
func TestFaultyPassThroughConforms(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), newDB(t), postgres.WithMaxConns(4))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return &storetest.Faulty{Store: s}
	})
}

// An injected failure reaches the caller and announces nothing.
func TestFaultyInjectedFailureAnnouncesNothing(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := &storetest.Faulty{Store: openDSN(t, newDB(t)), Fail: storetest.FailOn("PutDevice", 2, boom)}
	var got []store.Change
	stop := f.Watch(func(c store.Change) { got = append(got, c) })
	defer stop()
	ctx := t.Context()
	if err := f.PutDevice(ctx, &store.Device{ID: "d1"}); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	if err := f.PutDevice(ctx, &store.Device{ID: "d2"}); !errors.Is(err, boom) {
		t.Fatalf("PutDevice = %v, want the injected failure", err)
	}
	if len(got) != 1 || got[0].Kind != store.ChangeDevice || got[0].DeviceID != "d1" {
		t.Fatalf("announced %+v, want the one device change of d1", got)
	}
	if _, err := f.GetDevice(ctx, "d2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetDevice(d2) = %v, want ErrNotFound", err)
	}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	ctx := t.Context()
	const n = 4
	applied := make(chan []int, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			v, err := postgres.Migrate(ctx, dsn)
			applied <- v
			errs <- err
		}()
	}
	total := 0
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		total += len(<-applied)
	}
	if total != postgres.SchemaVersion() {
		t.Fatalf("concurrent migrations applied %d versions in all, want each of %d once", total, postgres.SchemaVersion())
	}
	again, err := postgres.Migrate(ctx, dsn)
	if err != nil || len(again) != 0 {
		t.Fatalf("Migrate again = %v, %v; want nothing to do", again, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	s := openDSN(t, dsn)
	if _, err := s.Pool().Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(t.Context(), dsn)
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema = %v, want ErrSchemaTooNew", err)
	}
}
