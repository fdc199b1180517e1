// Package postgres is the PostgreSQL implementation of store.Store, for
// several hardbound nodes sharing one database.
//
// Layout: one table per record kind (migrations/), each record kept whole
// as the JSON the Badger backend stores, beside the columns lookups and
// listings need. Every multi-record write is one transaction at READ
// COMMITTED with explicit row locks; a serialization failure or deadlock
// retries the whole transaction. Writes are durable when they return (the
// database's synchronous_commit decides what durable means: on, the
// default, is a flushed WAL).
//
// Changes reach every node (feed.go): each transaction that changes a
// device, a binding or an attestation writes its change to the changes
// table with the next seq, under one row lock, and NOTIFYs; every Store
// delivers the changes in seq order to its watchers, its own writes before
// they return and other nodes' writes from a listener goroutine woken by
// LISTEN or, failing that, by polling.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"hardbound/store"
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned (wrapped) by calls on a closed store.
var ErrClosed = errors.New("store/postgres: closed")

const (
	defaultLimit = 100
	maxLimit     = 1000
	// maxTxnAttempts bounds retries on serialization failures and deadlocks.
	maxTxnAttempts = 8

	defaultPollInterval = time.Second
	// defaultMaxReplay: a node that is further behind than this many
	// changes drops its caches (store.ChangeReset) instead of replaying.
	defaultMaxReplay = 10000
	// defaultRetention is how long the changes table keeps a change; a
	// node away longer than that resets when it comes back.
	defaultRetention = 24 * time.Hour
)

// Option configures Open.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	clock        func() time.Time
	maxConns     int32
	stmtTimeout  time.Duration
	pollInterval time.Duration
	listen       bool
	maxReplay    int
	retention    time.Duration
	// noFollow leaves the follower goroutine off (tests drive catchUp).
	noFollow bool
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the time source for the timestamps the store fills in.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithMaxConns bounds the connection pool (the listener's connection is
// one more).
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = int32(n) } }

// WithStatementTimeout sets the server-side statement_timeout of every
// pooled connection; 0 keeps the server's.
func WithStatementTimeout(d time.Duration) Option { return func(o *options) { o.stmtTimeout = d } }

// WithPollInterval sets how often the store looks for other nodes'
// changes when no notification woke it (default 1s).
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithListen turns LISTEN/NOTIFY on (the default) or off. Off, other
// nodes' changes are found by polling alone, for engines that speak the
// PostgreSQL protocol without LISTEN.
func WithListen(on bool) Option { return func(o *options) { o.listen = on } }

// WithMaxReplay sets how many missed changes a node replays before it
// resets instead (default 10000).
func WithMaxReplay(n int) Option { return func(o *options) { o.maxReplay = n } }

// WithRetention sets how long changes are kept for nodes that were away
// (default 24h).
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// Store is a PostgreSQL-backed store.Store, safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	clock func() time.Time
	opts  options
	dsn   string

	feed  feed
	avail availability

	closeMu sync.RWMutex
	closed  bool
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
}

// Open connects to the database at dsn (a libpq connection string or URL),
// applies the migrations this binary carries (Migrate) and starts following
// the change feed from its current head.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{pollInterval: defaultPollInterval, listen: true, maxReplay: defaultMaxReplay, retention: defaultRetention}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.pollInterval <= 0 {
		o.pollInterval = defaultPollInterval
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store/postgres: open: %w", err)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: open: %w", err)
	}
	if o.maxConns > 0 {
		pc.MaxConns = o.maxConns
	}
	if o.stmtTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.stmtTimeout.Milliseconds(), 10)
	}
	if _, err := Migrate(ctx, dsn); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: open: %w", err)
	}
	s := &Store{pool: pool, log: o.logger.With("component", "store", "backend", "postgres"), clock: o.clock, opts: o, dsn: dsn, stop: make(chan struct{})}
	s.avail.log = s.log
	// Changes committed before Open are not announced: Watch is "from now on".
	if err := pool.QueryRow(ctx, "SELECT seq FROM feed_head").Scan(&s.feed.applied); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: open: read feed head: %w", err)
	}
	if !o.noFollow {
		s.done.Add(1)
		go s.follow()
	}
	return s, nil
}

// Close stops the listener and closes the pool. It is safe to call more
// than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.done.Wait()
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		s.pool.Close()
	})
	return nil
}

func (s *Store) now() time.Time { return s.clock().UTC() }

// Pool is the store's connection pool, for tests and tools that inspect
// the database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// retryable reports whether the transaction may simply run again: a
// serialization failure or deadlock, or a connection that failed before
// anything was sent on it (pgconn.SafeToRetry: a pooled connection the
// server closed, as after a restart or failover of the database).
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return pgconn.SafeToRetry(err)
}

// uniqueViolation reports whether err is a unique or primary key conflict.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// tx runs fn in a read-write transaction and commits it, retrying on
// conflicts. fn may run more than once and must reset its outputs.
func (s *Store) tx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("store/postgres: %s: %w", op, ErrClosed)
	}
	var err error
	start := time.Now()
	for i := range maxTxnAttempts {
		if err = ctx.Err(); err != nil {
			if i == 0 {
				// The caller's context ended before anything was sent:
				// says nothing of the database.
				return fmt.Errorf("store/postgres: %s: %w", op, err)
			}
			break
		}
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			break
		}
	}
	s.avail.observe(start, err)
	if err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// read runs fn against the pool (one statement or a few independent ones).
func (s *Store) read(ctx context.Context, op string, fn func(q querier) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("store/postgres: %s: %w", op, ErrClosed)
	}
	var err error
	start := time.Now()
	for i := range maxTxnAttempts {
		if err = ctx.Err(); err != nil {
			if i == 0 {
				// The caller's context ended before anything was sent:
				// says nothing of the database.
				return fmt.Errorf("store/postgres: %s: %w", op, err)
			}
			break
		}
		if err = fn(s.pool); err == nil || !pgconn.SafeToRetry(err) {
			break
		}
	}
	s.avail.observe(start, err)
	if err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// readTx runs fn in a read-only REPEATABLE READ transaction: one snapshot
// for reads that must agree with each other (a scan, a verify, a backup).
func (s *Store) readTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("store/postgres: %s: %w", op, ErrClosed)
	}
	var err error
	start := time.Now()
	for i := range maxTxnAttempts {
		if err = ctx.Err(); err != nil {
			if i == 0 {
				// The caller's context ended before anything was sent:
				// says nothing of the database.
				return fmt.Errorf("store/postgres: %s: %w", op, err)
			}
			break
		}
		// Retried only when BEGIN itself failed: fn may have handed rows
		// to a caller's callback (ScanAudit, Backup) already.
		called := false
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			called = true
			return fn(tx)
		})
		if err == nil || called || !pgconn.SafeToRetry(err) {
			break
		}
	}
	s.avail.observe(start, err)
	if err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// querier is what pool and transactions share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// notFound maps pgx.ErrNoRows onto store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// limit clamps a page size into [1, maxLimit], 0 meaning the default.
func limit(p store.Page) int {
	switch {
	case p.Limit <= 0:
		return defaultLimit
	case p.Limit > maxLimit:
		return maxLimit
	}
	return p.Limit
}
