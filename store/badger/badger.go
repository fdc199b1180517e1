// Package badger is the Badger v4 implementation of store.Store.
//
// Layout: one key space, prefixed by record kind (see keys.go); values are
// JSON with a version field (store.RecordVersion). Every multi-record write
// is one Badger transaction, retried a few times on badger.ErrConflict, and
// SyncWrites is on so a write is on disk before the method returns.
// Concurrent AppendAudit calls share one transaction and one fsync (group
// commit, audit.go); each still returns only once its own event is durable.
// Writes that change a device, a binding or an attestation are announced to
// watchers in commit order before they return (feed.go).
//
// File permissions: Badger creates its data files with mode 0666 minus the
// process umask (ristretto's mmap helper), and offers no option to change
// that. Rather than change the process-wide umask (global state shared with
// every other package), Open creates the directory 0700 (and tightens an
// existing one), and the store chmods every regular file in it to 0600 at
// open, on every GC tick and after close. The 0700 directory is what keeps
// other users out in between: a file created 0644 inside it is unreachable.
//
// Memory: Badger memory-maps its table files, and a table it writes (flush,
// compaction) is resident in full. On Linux the store hands those pages
// back to the kernel whenever it finds new tables (every 10 s), and on demand
// (ReleaseTablePages, after a scan of the whole store); see pages.go.
package badger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"hardbound/store"
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned (wrapped) by writes on a closed store, including
// audit appends that were queued when Close was called.
var ErrClosed = errors.New("store/badger: closed")

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600

	defaultGCInterval = 5 * time.Minute
	// gcDiscardRatio: rewrite a value log file when half of it is garbage.
	gcDiscardRatio = 0.5
	// defaultCompression of new table blocks. Records are small JSON and
	// DER: uncompressed tables are about twice snappy's size, but a read
	// that misses the block cache no longer decodes a block (cold GetCert
	// 37 -> 23 us, GetDevice 21 -> 16 us, half the bytes allocated; see
	// BenchmarkColdReads). Tables written compressed by an older version
	// keep their setting in the manifest and stay readable.
	defaultCompression = options.None
	// maxTxnAttempts bounds retries on badger.ErrConflict.
	maxTxnAttempts = 8
)

// Option configures Open.
type Option func(*config)

type config struct {
	logger     *slog.Logger
	inMemory   bool
	clock      func() time.Time
	gcInterval time.Duration
	// compression of new table blocks; set by tests to compare.
	compression options.CompressionType
	// pageInterval: see WithPageReleaseInterval (pages.go).
	pageInterval time.Duration
}

// WithLogger sets the logger; Badger's own messages go to it as well
// (info-level chatter is demoted to debug).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithInMemory keeps everything in memory and ignores dir. For tests only:
// nothing survives Close.
func WithInMemory() Option { return func(c *config) { c.inMemory = true } }

// WithClock sets the time source used for timestamps the store fills in
// (UpdatedAt, audit Time, challenge expiry during RecordIssuance).
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithGCInterval sets how often the value-log GC runs (default 5m).
func WithGCInterval(d time.Duration) Option { return func(c *config) { c.gcInterval = d } }

// Store is a Badger-backed store.Store. It is safe for concurrent use.
type Store struct {
	db    *bdb.DB
	dir   string // "" in memory
	log   *slog.Logger
	clock func() time.Time

	// auditMu serialises every transaction that appends to the audit chain,
	// so the head (last seq + hash) is read and advanced by one writer at a
	// time and concurrent appends form a single chain.
	auditMu sync.Mutex
	// auditQ batches AppendAudit calls (group commit, see audit.go).
	auditQ auditQueue
	// feed announces committed changes to watchers (feed.go).
	feed feed

	// closeMu orders writes with Close: writes hold it shared and fail
	// with ErrClosed once closed is set, and Close takes it exclusively,
	// so Badger is never closed under a commit in flight (its writer
	// channel is closed then, and a racing send would panic).
	closeMu sync.RWMutex
	closed  bool

	// beforeAuditCommit, if set (by tests, before any use), runs before an
	// AppendAudit batch commits, with the number of events in the
	// transaction; an error fails the transaction as a commit error would.
	beforeAuditCommit func(events int) error

	// mapsDir is dir as /proc/self/maps prints it ("" in memory), and
	// released the table files mapped at the last release or check (pages.go);
	// settle asks the next check for one more release; pageMu serialises
	// releases.
	mapsDir  string
	pageMu   sync.Mutex
	released map[string]struct{}
	settle   bool

	closeOnce sync.Once
	stop      chan struct{}
	gcDone    sync.WaitGroup
}

// Open opens (creating if needed) the store in dir.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	cfg := config{gcInterval: defaultGCInterval, compression: defaultCompression, pageInterval: defaultPageReleaseInterval}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store/badger: open: %w", err)
	}
	log := cfg.logger.With("component", "store")

	var bo bdb.Options
	if cfg.inMemory {
		dir = ""
		bo = bdb.DefaultOptions("").WithInMemory(true).
			// Small tables keep many parallel test stores cheap.
			WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
	} else {
		if dir == "" {
			return nil, errors.New("store/badger: open: empty directory")
		}
		if err := prepareDir(dir, log); err != nil {
			return nil, err
		}
		// hardbound's data set is small (devices, certs, sessions): Badger's
		// defaults (64 MiB memtables x5, 256 MiB block cache) size for far
		// larger ones and would dominate the server's memory.
		bo = bdb.DefaultOptions(dir).WithMemTableSize(16 << 20).WithBlockCacheSize(32 << 20)
	}
	bo = bo.WithSyncWrites(true).
		WithCompression(cfg.compression).
		WithLogger(badgerLogger{log}).
		// One version per key: history lives in the audit chain, not in MVCC.
		WithNumVersionsToKeep(1)

	db, err := bdb.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store/badger: open %q: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, log: log, clock: cfg.clock, stop: make(chan struct{}), released: map[string]struct{}{}}
	s.tightenFiles()
	if !cfg.inMemory && cfg.gcInterval > 0 {
		s.gcDone.Add(1)
		go s.gcLoop(cfg.gcInterval)
	}
	if !cfg.inMemory && pageReleaseSupported {
		if s.mapsDir, err = mapsDirOf(dir); err != nil {
			// Releasing pages is an optimisation: without it the store
			// works, with more of its tables resident.
			log.Warn("table page release off", "err", err)
			s.mapsDir = ""
		}
		s.seedReleased()
		if s.mapsDir != "" && cfg.pageInterval > 0 {
			s.gcDone.Add(1)
			go s.pageLoop(cfg.pageInterval)
		}
	}
	return s, nil
}

// prepareDir creates dir 0700, or narrows an existing one to 0700.
func prepareDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("store/badger: create %q: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("store/badger: stat %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store/badger: %q is not a directory", dir)
	}
	if fi.Mode().Perm() != dirMode {
		log.Warn("narrowing data directory permissions", "dir", dir, "was", fi.Mode().Perm().String())
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("store/badger: chmod %q: %w", dir, err)
		}
	}
	return nil
}

// tightenFiles chmods every regular file directly in the data dir to 0600.
// Badger creates files honouring the umask (see the package comment).
func (s *Store) tightenFiles() {
	if s.dir == "" {
		return
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("list data directory", "err", err)
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm() == fileMode {
			continue // vanished (compaction) or already tight
		}
		if err := os.Chmod(filepath.Join(s.dir, e.Name()), fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("chmod data file", "file", e.Name(), "err", err)
		}
	}
}

func (s *Store) gcLoop(every time.Duration) {
	defer s.gcDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.runGC()
		s.tightenFiles()
	}
}

// runGC rewrites value-log files until Badger finds nothing worth doing.
func (s *Store) runGC() {
	for range 16 { // bounded: a busy store must not monopolise the loop
		select {
		case <-s.stop:
			return
		default:
		}
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if err == nil {
			continue
		}
		if !errors.Is(err, bdb.ErrNoRewrite) && !errors.Is(err, bdb.ErrRejected) {
			s.log.Warn("value log gc", "err", err)
		}
		return
	}
}

// Close stops the GC loop, flushes and closes the database. It is safe to
// call more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.gcDone.Wait()
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		if e := s.db.Close(); e != nil {
			err = fmt.Errorf("store/badger: close: %w", e)
		}
		// Close flushes memtables into new table files.
		s.tightenFiles()
	})
	return err
}

func (s *Store) now() time.Time { return s.clock().UTC() }

// badgerLogger routes Badger's printf-style logging into slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(trim(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(trim(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(trim(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(trim(fmt.Sprintf(f, a...)), "src", "badger")
}

func trim(s string) string { return strings.TrimRight(s, "\n ") }
