package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// notifyChannel is the LISTEN/NOTIFY channel a committed change wakes
// nodes on. The payload is the change's feed seq, for logs only: a node
// reads the changes table, never trusts a notification's content.
const notifyChannel = "hardbound_changes"

// listenerAppName is the application_name of each node's LISTEN connection.
const listenerAppName = "hardbound-listener"

// feed delivers changes to watchers (store.Watcher), this node's and
// every other node's, in feed order.
//
// The database orders the changes: a transaction that may change a
// device, a binding or an attestation locks the single feed_head row
// first (lockFeed) and, if it did change one, writes its change under
// head+1 and moves the head (writeChange). The lock is held to commit, so
// feed seqs have no gaps and follow commit order.
//
// Each Store tracks applied, the last feed seq it delivered. A local
// write, once committed at seq N, delivers whatever of (applied, N) it
// has not delivered yet (other nodes' changes that committed first) and
// then its own, before it returns; the follower goroutine delivers other
// nodes' changes when a notification or the poll timer wakes it. Both hold
// mu while delivering, which is what makes deliveries one at a time and in
// order; fn runs under mu.
type feed struct {
	mu       sync.Mutex
	applied  int64  // last feed seq delivered
	seq      uint64 // store.Change.Seq of the last delivery
	watchers []*watcher
	// listening is true while the LISTEN connection is up (for metrics
	// and tests); atomic, so the listener never waits for a delivery.
	listening atomic.Bool
}

type watcher struct{ fn func(store.Change) }

// Watch implements store.Watcher.
func (s *Store) Watch(fn func(store.Change)) (stop func()) {
	w := &watcher{fn: fn}
	f := &s.feed
	f.mu.Lock()
	f.watchers = append(f.watchers, w)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			// Taking mu waits for a delivery in progress.
			f.mu.Lock()
			f.watchers = slices.DeleteFunc(f.watchers, func(x *watcher) bool { return x == w })
			f.mu.Unlock()
		})
	}
}

// emit delivers one change to every watcher. The caller holds mu.
func (f *feed) emit(c store.Change) {
	f.seq++
	c.Seq = f.seq
	for _, w := range f.watchers {
		w.fn(c)
	}
}

// feedTx is the state of one change-writing transaction.
type feedTx struct {
	head int64 // feed_head when locked
	seq  int64 // the change's feed seq, 0 if it wrote none
}

// lockFeed locks the feed head for the rest of tx (see feed).
func lockFeed(ctx context.Context, tx pgx.Tx) (feedTx, error) {
	var ft feedTx
	if err := tx.QueryRow(ctx, "SELECT seq FROM feed_head FOR UPDATE").Scan(&ft.head); err != nil {
		return ft, fmt.Errorf("lock feed: %w", err)
	}
	return ft, nil
}

// wireChange is a change as the changes table holds it. Seq is not kept:
// each store numbers its own deliveries.
type wireChange struct {
	Kind        store.ChangeKind   `json:"kind"`
	DeviceID    string             `json:"device_id,omitempty"`
	CertSHA256  store.Hash         `json:"cert_sha256,omitzero"`
	Device      *store.Device      `json:"device,omitempty"`
	Prev        *store.Device      `json:"prev,omitempty"`
	Cert        *store.Cert        `json:"cert,omitempty"`
	Certs       []*store.Cert      `json:"certs,omitempty"`
	Attestation *store.Attestation `json:"attestation,omitempty"`
	Actor       string             `json:"actor,omitempty"`
	At          time.Time          `json:"at"`
}

func toWire(c *store.Change) wireChange {
	return wireChange{Kind: c.Kind, DeviceID: c.DeviceID, CertSHA256: c.CertSHA256, Device: c.Device, Prev: c.Prev,
		Cert: c.Cert, Certs: c.Certs, Attestation: c.Attestation, Actor: c.Actor, At: c.At}
}

func (w *wireChange) change() store.Change {
	return store.Change{Kind: w.Kind, DeviceID: w.DeviceID, CertSHA256: w.CertSHA256, Device: w.Device, Prev: w.Prev,
		Cert: w.Cert, Certs: w.Certs, Attestation: w.Attestation, Actor: w.Actor, At: w.At}
}

// writeChange records c as the next change of the feed inside tx and
// wakes the other nodes on commit (a NOTIFY is delivered only then).
func (s *Store) writeChange(ctx context.Context, tx pgx.Tx, ft *feedTx, c *store.Change) error {
	b, err := json.Marshal(toWire(c))
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	seq := ft.head + 1
	// One round trip: the change, the head and (with listen) the
	// notification, which PostgreSQL queues until commit.
	notify := ""
	if s.opts.listen {
		notify = notifyChannel
	}
	if _, err := tx.Exec(ctx, `WITH c AS (INSERT INTO changes (seq, at, change) VALUES ($1, $2, $3)),
		h AS (UPDATE feed_head SET seq = $1)
		SELECT CASE WHEN $4::text <> '' THEN pg_notify($4::text, $1::text) END`, seq, c.At, b, notify); err != nil {
		return fmt.Errorf("write change: %w", err)
	}
	ft.seq = seq
	return nil
}

// changing runs fn in one transaction that holds the feed head and, when
// ev is set, appends ev to the audit chain in the same transaction. fn
// returns the change it made, or nil if it changed nothing. Once
// committed, the change is delivered (after any earlier one this node had
// not delivered yet) before changing returns.
func (s *Store) changing(ctx context.Context, op string, ev *store.AuditEvent, fn func(tx pgx.Tx) (*store.Change, error)) error {
	var (
		ft   feedTx
		ch   *store.Change
		done store.AuditEvent
	)
	err := s.tx(ctx, op, func(tx pgx.Tx) error {
		var err error
		if ft, err = lockFeed(ctx, tx); err != nil {
			return err
		}
		if ch, err = fn(tx); err != nil {
			return err
		}
		if ch != nil {
			if err := s.writeChange(ctx, tx, &ft, ch); err != nil {
				return err
			}
		}
		if ev != nil {
			evs, err := s.appendAuditTx(ctx, tx, []*store.AuditEvent{ev})
			if err != nil {
				return err
			}
			done = evs[0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ev != nil {
		*ev = done
	}
	if ch != nil {
		s.deliverLocal(ft.seq, *ch)
	}
	return nil
}

// deliverLocal delivers this node's change committed at feed seq, after
// the changes before it that this node has not delivered yet.
func (s *Store) deliverLocal(seq int64, c store.Change) {
	f := &s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied >= seq {
		return // a later local write or the follower delivered it already
	}
	if f.applied < seq-1 {
		// Bounded: the write has committed, and a database that stopped
		// answering must not hold its caller (and every writer after it)
		// forever. Missing them, the catch-up resets instead.
		ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
		s.catchUpLocked(ctx, seq-1)
		cancel()
	}
	if f.applied >= seq {
		return
	}
	f.emit(c)
	f.applied = seq
}

// replayBatch is how many changes one read of the changes table fetches.
const replayBatch = 256

// errBadChange marks a row of the changes table that does not decode.
var errBadChange = errors.New("undecodable change")

// catchUpTimeout bounds one catch-up.
const catchUpTimeout = 10 * time.Second

// catchUpLocked delivers the changes after applied up to through (or up
// to the head, when through is 0), in order. If the changes cannot be
// replayed (too many, or pruned), it delivers store.ChangeReset instead
// and moves applied on. If they cannot be read, a local write's catch-up
// (through > 0) resets too, since its own change follows; the follower's
// returns false and tries again soon. The caller holds mu.
func (s *Store) catchUpLocked(ctx context.Context, through int64) bool {
	f := &s.feed
	for {
		var (
			head  int64
			batch []int64
			wires []wireChange
		)
		err := s.readTx(ctx, "read changes", func(tx pgx.Tx) error {
			batch, wires = batch[:0], wires[:0]
			if err := tx.QueryRow(ctx, "SELECT seq FROM feed_head").Scan(&head); err != nil {
				return err
			}
			upTo := head
			if through > 0 && through < head {
				upTo = through
			}
			if upTo <= f.applied || upTo-f.applied > int64(s.opts.maxReplay) {
				return nil
			}
			rows, err := tx.Query(ctx, "SELECT seq, change FROM changes WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
				f.applied, upTo, replayBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					seq int64
					b   []byte
					w   wireChange
				)
				if err := rows.Scan(&seq, &b); err != nil {
					return err
				}
				if err := json.Unmarshal(b, &w); err != nil {
					return fmt.Errorf("%w %d: %w", errBadChange, seq, err)
				}
				batch = append(batch, seq)
				wires = append(wires, w)
			}
			return rows.Err()
		})
		if through > 0 && through < head {
			head = through
		}
		switch {
		case errors.Is(err, ErrClosed):
			return true
		case errors.Is(err, errBadChange) && through == 0:
			// Reading it again will not help: skip past everything
			// committed so far, and have the caches dropped.
			s.log.Error("change feed: undecodable change, resetting caches", "applied", f.applied, "head", head, "err", err)
			s.reset(head)
			return true
		case err != nil && through > 0:
			// A local write's own change follows, so the ones before it
			// are missed: whoever caches records must drop them.
			s.log.Warn("change feed: cannot read changes before a local write's, resetting caches", "applied", f.applied, "err", err)
			s.reset(through)
			return true
		case err != nil:
			// An unreachable database was logged once, when it went away.
			if ctx.Err() == nil && !errors.Is(err, store.ErrUnavailable) {
				s.log.Warn("change feed: cannot read changes, retrying", "applied", f.applied, "err", err)
			}
			return false
		case head <= f.applied:
			return true
		case head-f.applied > int64(s.opts.maxReplay):
			s.log.Warn("change feed: too far behind, resetting caches", "applied", f.applied, "head", head)
			s.reset(head)
			return true
		case len(batch) == 0 || batch[0] != f.applied+1:
			s.log.Warn("change feed: changes pruned before this node read them, resetting caches", "applied", f.applied, "head", head)
			s.reset(head)
			return true
		}
		for i, seq := range batch {
			if seq != f.applied+1 {
				s.reset(head)
				return true
			}
			f.emit(wires[i].change())
			f.applied = seq
		}
		if f.applied >= head {
			return true
		}
	}
}

// reset announces store.ChangeReset and marks everything through seq as
// delivered. The caller holds mu.
func (s *Store) reset(seq int64) {
	f := &s.feed
	f.emit(store.Change{Kind: store.ChangeReset, At: s.now()})
	if seq > f.applied {
		f.applied = seq
	}
}

// catchUp delivers what other nodes committed since the last delivery,
// reporting false when the changes could not be read.
func (s *Store) catchUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.catchUpLocked(ctx, 0)
}

// Applied is the last feed seq this store delivered to its watchers.
func (s *Store) Applied() int64 {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.feed.applied
}

// Listening reports whether the LISTEN connection is up.
func (s *Store) Listening() bool { return s.feed.listening.Load() }

// follow is the follower goroutine: it catches up whenever a notification
// arrives, the LISTEN connection comes (back) up, or the poll interval
// passes without either; and now and then prunes old changes and expired
// challenges.
func (s *Store) follow() {
	defer s.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	wake := make(chan struct{}, 1)
	var listener sync.WaitGroup
	if s.opts.listen {
		listener.Add(1)
		go func() {
			defer listener.Done()
			s.listen(ctx, wake)
		}()
	}
	defer listener.Wait()
	poll := time.NewTimer(s.opts.pollInterval)
	defer poll.Stop()
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	var retry time.Duration // backoff after a failed catch-up
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		case <-prune.C:
			s.prune(ctx)
			continue
		}
		next := s.opts.pollInterval
		if s.catchUp(ctx) {
			retry = 0
		} else {
			// The database is away (or this node's connections to it
			// are stale): try again soon, whatever the poll interval, so
			// that its return is noticed (Unavailable) within a second
			// even when nothing else calls the store.
			retry = min(max(retry*2, 100*time.Millisecond), time.Second)
			next = min(next, retry)
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(next)
	}
}

const pruneInterval = 10 * time.Minute

// listen keeps one connection LISTENing and signals wake on every
// notification and after every (re)connect, since changes may have been
// committed while it was down. It backs off between failed attempts.
func (s *Store) listen(ctx context.Context, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() {
			backoff = 100 * time.Millisecond
			signal()
		})
		s.setListening(false)
		if ctx.Err() != nil {
			return
		}
		// A lost connection is the first sign of a database going away:
		// a catch-up now finds out (and Unavailable says so) instead of
		// at the next poll.
		signal()
		if _, down := s.Unavailable(); !down {
			s.log.Warn("change feed: LISTEN connection lost, polling until it is back", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Store) setListening(on bool) { s.feed.listening.Store(on) }

// listenOnce connects, LISTENs and calls woke after LISTEN and on each
// notification, until the connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, woke func()) error {
	cfg, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return err
	}
	// Named so that an operator (or a test) can tell it in pg_stat_activity.
	cfg.RuntimeParams["application_name"] = listenerAppName
	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	s.avail.answered(start)
	s.setListening(true)
	woke()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		woke()
	}
}

// prune deletes changes older than the retention and challenges an hour
// past their expiry. Any node may do it; doing it twice is harmless.
func (s *Store) prune(ctx context.Context) {
	cutoff := s.now().Add(-s.opts.retention)
	// Keep the head's row whatever its age: it is what tells a node that
	// comes back after a quiet period that it missed nothing.
	if _, err := s.pool.Exec(ctx, "DELETE FROM changes WHERE at < $1 AND seq < (SELECT seq FROM feed_head)", cutoff); err != nil && ctx.Err() == nil {
		s.log.Warn("change feed: prune", "err", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM challenges WHERE expires_at < $1", s.now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
		s.log.Warn("prune challenges", "err", err)
	}
}
