//go:build linux

package badger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// testDevices is how many devices the page tests write: ~1.1 KB each,
// a few MB of tables, enough for many pages per table.
const testDevices = 4000

func testDevice(i int) *store.Device {
	return &store.Device{
		V: store.RecordVersion, ID: fmt.Sprintf("dev-%06d", i), Platform: "linux", Profile: "default",
		Status: store.DeviceActive, Groups: []string{strings.Repeat(strconv.Itoa(i%10), 1024)},
		CreatedAt: time.Unix(int64(i), 0).UTC(), UpdatedAt: time.Unix(int64(i), 0).UTC(),
	}
}

// openWithTables opens a store in a temporary directory whose devices sit
// in table files (written, then flushed by a close and reopened), as after
// a restart. The devices go in with one write batch: a PutDevice each
// would cost testDevices fsyncs.
func openWithTables(t *testing.T, opts ...Option) *Store {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, WithPageReleaseInterval(0))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	wb := s.db.NewWriteBatch()
	for i := range testDevices {
		d := testDevice(i)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if err := wb.Set(keyDevice(d.ID), b); err != nil {
			t.Fatalf("batch set: %v", err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatalf("batch flush: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = Open(t.Context(), dir, append([]Option{WithPageReleaseInterval(0)}, opts...)...)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readAllDevices(ctx context.Context, s *Store) error {
	for i := range testDevices {
		want := testDevice(i)
		got, err := s.GetDevice(ctx, want.ID)
		if err != nil {
			return fmt.Errorf("GetDevice(%s): %w", want.ID, err)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("GetDevice(%s) = %+v, want %+v", want.ID, got, want)
		}
	}
	return nil
}

// tableRSS sums the resident bytes of the store's table mappings, from
// /proc/self/smaps (a maps line per mapping, then its counters).
func tableRSS(t *testing.T, s *Store) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("open smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, maxMapsLine+1)
	for sc.Scan() {
		line := sc.Text()
		if m, err := parseMapsLine(line); err == nil {
			in = strings.HasSuffix(m.path, tableSuffix) && strings.HasPrefix(m.path, s.mapsDir+"/")
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("smaps Rss line %q: %v", line, err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read smaps: %v", err)
	}
	return total
}

func TestReleaseTablePagesDropsResidencyAndKeepsReads(t *testing.T) {
	s := openWithTables(t)
	ctx := t.Context()
	if err := readAllDevices(ctx, s); err != nil {
		t.Fatal(err)
	}
	before := tableRSS(t, s)
	if before == 0 {
		t.Fatal("no table pages resident after reading every device: the test reads nothing through the mappings")
	}
	rel, err := s.ReleaseTablePages(ctx)
	if err != nil {
		t.Fatalf("ReleaseTablePages: %v", err)
	}
	if rel.Tables == 0 || rel.Bytes == 0 {
		t.Fatalf("ReleaseTablePages = %+v, want at least one table advised", rel)
	}
	after := tableRSS(t, s)
	t.Logf("table RSS %d KiB -> %d KiB (%+v)", before>>10, after>>10, rel)
	if after >= before {
		t.Fatalf("table RSS after release = %d bytes, want below %d", after, before)
	}
	// Every read faults its pages back in and returns the same records.
	if err := readAllDevices(ctx, s); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// Writes after a release land, and survive another release.
	d := testDevice(testDevices + 1)
	if err := s.PutDevice(ctx, d); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	if _, err := s.ReleaseTablePages(ctx); err != nil {
		t.Fatalf("second ReleaseTablePages: %v", err)
	}
	if got, err := s.GetDevice(ctx, d.ID); err != nil || got.ID != d.ID {
		t.Fatalf("GetDevice(%s) = %+v, %v", d.ID, got, err)
	}
}

func TestReleaseTablePagesConcurrentWithReadsAndWrites(t *testing.T) {
	s := openWithTables(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for pass := 0; pass < 3 && ctx.Err() == nil; pass++ {
				if err := readAllDevices(ctx, s); err != nil {
					errc <- fmt.Errorf("reader %d pass %d: %w", r, pass, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			d := testDevice(testDevices + 10 + i)
			if err := s.PutDevice(ctx, d); err != nil {
				errc <- fmt.Errorf("PutDevice: %w", err)
				return
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	releases := 0
	for running := true; running; releases++ {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := s.ReleaseTablePages(ctx); err != nil {
			t.Fatalf("ReleaseTablePages: %v", err)
		}
	}
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	t.Logf("%d releases during the reads", releases)
	if err := readAllDevices(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseIfChangedAdvisesAllTablesOnlyWhenOneIsNew(t *testing.T) {
	s := openWithTables(t)
	ctx := t.Context()
	// Tables mapped at open count as seen: opening reads only indexes.
	if rel, err := s.releaseTables(ctx, true); err != nil || rel.Tables != 0 {
		t.Fatalf("releaseTables(ifChanged) right after open = %+v, %v; want nothing advised", rel, err)
	}
	all, err := s.ReleaseTablePages(ctx)
	if err != nil || all.Tables == 0 {
		t.Fatalf("ReleaseTablePages = %+v, %v; want tables advised", all, err)
	}
	// A table the store has not seen yet (as if a compaction wrote it).
	s.pageMu.Lock()
	var forgot string
	for p := range s.released {
		forgot = p
		break
	}
	delete(s.released, forgot)
	s.pageMu.Unlock()
	rel, err := s.releaseTables(ctx, true)
	if err != nil || rel.Tables != all.Tables {
		t.Fatalf("releaseTables(ifChanged) with %s new = %+v, %v; want all %d tables", forgot, rel, err, all.Tables)
	}
	// Once more at the next check (pages read back in just after), then
	// not again until another table appears.
	if rel, err := s.releaseTables(ctx, true); err != nil || rel.Tables != all.Tables {
		t.Fatalf("releaseTables(ifChanged) at the check after = %+v, %v; want all %d tables again", rel, err, all.Tables)
	}
	if rel, err := s.releaseTables(ctx, true); err != nil || rel.Tables != 0 {
		t.Fatalf("releaseTables(ifChanged) a third time = %+v, %v; want nothing advised", rel, err)
	}
}

func TestPageLoopReleasesAllTablesWhenATableIsWritten(t *testing.T) {
	s := openWithTables(t, WithPageReleaseInterval(20*time.Millisecond))
	ctx := t.Context()
	if err := readAllDevices(ctx, s); err != nil {
		t.Fatal(err)
	}
	before := tableRSS(t, s)
	if before == 0 {
		t.Fatal("no table pages resident after reading every device")
	}
	// A device in the memtable, to be flushed below.
	if err := s.PutDevice(ctx, testDevice(testDevices+1)); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	// Dropping a prefix flushes the memtable into a new table, as a full
	// memtable would (Badger skips the flush when no key has the prefix).
	if err := s.db.Update(func(txn *bdb.Txn) error { return txn.Set([]byte("zz-test/x"), []byte("x")) }); err != nil {
		t.Fatalf("set: %v", err)
	}
	if err := s.db.DropPrefix([]byte("zz-test/")); err != nil {
		t.Fatalf("DropPrefix: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	after := tableRSS(t, s)
	for after >= before/2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = tableRSS(t, s)
	}
	t.Logf("table RSS %d KiB -> %d KiB", before>>10, after>>10)
	if after >= before/2 {
		t.Fatalf("table RSS still %d bytes (was %d) after a new table: the loop did not release", after, before)
	}
	if err := readAllDevices(ctx, s); err != nil {
		t.Fatalf("after the loop's release: %v", err)
	}
	if got, err := s.GetDevice(ctx, testDevice(testDevices+1).ID); err != nil || got.ID != testDevice(testDevices+1).ID {
		t.Fatalf("GetDevice of the flushed device = %+v, %v", got, err)
	}
}

func TestReleaseTablePagesOutcomes(t *testing.T) {
	t.Parallel()
	t.Run("in-memory store releases nothing", func(t *testing.T) {
		t.Parallel()
		s := openMem(t)
		rel, err := s.ReleaseTablePages(t.Context())
		if err != nil || rel != (PageRelease{}) {
			t.Fatalf("ReleaseTablePages = %+v, %v; want zero, nil", rel, err)
		}
	})
	t.Run("closed store fails with ErrClosed", func(t *testing.T) {
		t.Parallel()
		s, err := Open(t.Context(), t.TempDir())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := s.ReleaseTablePages(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("ReleaseTablePages after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("cancelled context stops the release", func(t *testing.T) {
		t.Parallel()
		s := openWithTables(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.ReleaseTablePages(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReleaseTablePages(cancelled) = %v, want context.Canceled", err)
		}
	})
	t.Run("range no longer mapped is reported as gone", func(t *testing.T) {
		t.Parallel()
		// The page at address 0 is never mapped in a Go process.
		if err := pageOut(0, 4096); !errors.Is(err, errRangeGone) {
			t.Fatalf("pageOut(unmapped) = %v, want errRangeGone", err)
		}
	})
}
