package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"hardbound/store"
)

// unavailable reports whether err says the database could not be reached,
// as opposed to the database refusing the statement: the connection was
// refused or cut, timed out, or the server is shutting down or starting
// up. A constraint violation, a serialization failure or any other answer
// of the server is not unavailability.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		// Class 08 is connection exception; 57P01-57P03 are the server
		// shutting down (admin, crash) or not yet accepting connections,
		// 53300 too many connections (PostgreSQL's SQLSTATE appendix).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// answered reports whether err (possibly nil) came back from the server:
// a result, no rows, or the server's own error. Only such an outcome ends
// an outage; an error raised before anything reached the server does not.
func answered(err error) bool {
	if err == nil || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, store.ErrNotFound) {
		return true
	}
	_, ok := errors.AsType[*pgconn.PgError](err)
	return ok && !unavailable(err)
}

// availability is whether this store reaches its database, learned from
// the outcome of every call (and of the change feed's catch-ups, which
// run at least once per poll interval, and sooner while failing). It logs
// once when an outage begins and once when it ends, never per call.
type availability struct {
	// since is when the current outage began (unix ns), 0 while the
	// database answers. Read on every posture decision: one atomic load.
	since atomic.Int64
	mu    sync.Mutex // orders transitions and their log lines
	log   *slog.Logger
}

// observe records the outcome err of a call that started at start.
func (a *availability) observe(start time.Time, err error) {
	switch {
	case unavailable(err):
		a.failed(err)
	case answered(err):
		a.answered(start)
	}
}

func (a *availability) failed(err error) {
	if a.since.Load() != 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.since.Load() != 0 {
		return
	}
	a.since.Store(time.Now().UnixNano())
	a.log.Warn("database unavailable: writes fail with a retriable error, authentication answers from the caches (store.unavailable)", "err", err)
}

// answered ends an outage, unless the call that succeeded started before
// the outage began (it may have been answered before the failure).
func (a *availability) answered(start time.Time) {
	s := a.since.Load()
	if s == 0 || start.UnixNano() < s {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s = a.since.Load()
	if s == 0 || start.UnixNano() < s {
		return
	}
	a.since.Store(0)
	a.log.Info("database available again", "unavailable_for", time.Since(time.Unix(0, s)).Round(time.Millisecond))
}

// Unavailable reports whether the store currently cannot reach its
// database, and since when: from the first call that failed for that
// reason until one that started later was answered. Cheap enough to ask
// on every decision.
func (s *Store) Unavailable() (since time.Time, down bool) {
	n := s.avail.since.Load()
	if n == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// wrapErr is the error a store call returns: op named, and
// store.ErrUnavailable added when the database could not be reached.
func wrapErr(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("store/postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("store/postgres: %s: %w", op, err)
}
