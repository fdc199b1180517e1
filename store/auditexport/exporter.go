package auditexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"hardbound/store"
	"hardbound/store/config"
)

// Store is the part of store.Store the export, the checkpoints and the
// verification use.
type Store interface {
	ScanAudit(ctx context.Context, from uint64, fn func(*store.AuditEvent) error) error
	TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error)
	VerifyAudit(ctx context.Context) (store.VerifyResult, error)
	PutAuditCheckpoint(ctx context.Context, cp *store.AuditCheckpoint) error
	ScanAuditCheckpoints(ctx context.Context, from uint64, fn func(*store.AuditCheckpoint) error) error
	LastAuditCheckpoint(ctx context.Context) (*store.AuditCheckpoint, error)
	GetAuditCursor(ctx context.Context, sink string) (*store.AuditCursor, error)
	PutAuditCursor(ctx context.Context, c *store.AuditCursor) error
}

// Metrics receives each sink's progress (admin/metrics implements it).
type Metrics interface {
	// ExportLag is how many events the sink has not confirmed yet.
	ExportLag(sink string, events uint64)
	// ExportDelivered counts events confirmed delivered; at is when the
	// sink was last known to be caught up or progressing.
	ExportDelivered(sink string, events int, at time.Time)
	// ExportError counts failed dials, writes and POSTs.
	ExportError(sink string)
}

type noMetrics struct{}

func (noMetrics) ExportLag(string, uint64)               {}
func (noMetrics) ExportDelivered(string, int, time.Time) {}
func (noMetrics) ExportError(string)                     {}

// Options of an Exporter.
type Options struct {
	Log     *slog.Logger
	Metrics Metrics
	// Poll is how often an idle sink looks for new events (default 200ms).
	Poll time.Duration
}

// DefaultPoll is how often an idle sink looks for new events.
const DefaultPoll = 200 * time.Millisecond

// Exporter runs one loop per sink. It only reads the chain and writes the
// cursors, so authentication never waits for it: a slow sink lags.
type Exporter struct {
	st    Store
	sinks []*sink
}

// New builds the sinks of cfg (reading their CA, certificate and token
// files). Run starts them.
func New(st Store, cfg FileConfig, o Options) (*Exporter, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	e := &Exporter{st: st}
	for i, sc := range cfg.Sinks {
		p := fmt.Sprintf("audit.sinks[%d]", i)
		if err := sc.validate(p); err != nil {
			return nil, err
		}
		s, err := newSink(st, sc, p, o)
		if err != nil {
			return nil, err
		}
		e.sinks = append(e.sinks, s)
	}
	return e, nil
}

// Run exports until ctx ends, then saves every sink's cursor.
func (e *Exporter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range e.sinks {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Wait()
}

// sink is one configured receiver and its position.
type sink struct {
	name    string
	st      Store
	dial    func(ctx context.Context) (transport, error)
	acked   bool          // a successful send is the receiver's acknowledgement (http)
	confirm time.Duration // streams: how long bytes must sit acknowledged on a live connection
	batch   int
	poll    time.Duration
	log     *slog.Logger
	m       Metrics
}

func newSink(st Store, sc SinkConfig, p string, o Options) (*sink, error) {
	s := &sink{name: sc.Name, st: st, batch: sc.batchSize(), poll: o.Poll,
		log: o.Log.With("sink", sc.Name), m: o.Metrics}
	host := sc.hostname()
	f := newSyslogFormat(sc.facility(), host, os.Getpid())
	timeout := sc.timeout()
	switch sc.Type {
	case "syslog":
		addr := sc.Address
		switch sc.transport() {
		case "tls":
			h, _, _ := net.SplitHostPort(addr)
			tc, err := sc.tlsConfig(p, h)
			if err != nil {
				return nil, err
			}
			s.confirm = sc.confirmAfter()
			s.dial = func(ctx context.Context) (transport, error) { return dialStream(ctx, "tcp", addr, tc, f, timeout) }
		case "tcp":
			s.confirm = sc.confirmAfter()
			s.dial = func(ctx context.Context) (transport, error) { return dialStream(ctx, "tcp", addr, nil, f, timeout) }
		case "udp":
			s.acked = true // nothing better can be known
			s.dial = func(ctx context.Context) (transport, error) { return dialUDP(ctx, addr, f, timeout) }
		}
	case "http":
		u, _ := url.Parse(sc.URL)
		tc, err := sc.tlsConfig(p, u.Hostname())
		if err != nil {
			return nil, err
		}
		var token string
		if sc.TokenFile != "" {
			if token, err = config.ReadSecret(p+".token_file", sc.TokenFile); err != nil {
				return nil, err
			}
		}
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConns: 2, IdleConnTimeout: time.Minute,
			TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout}
		ht := &httpTransport{client: &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			url: sc.URL, token: token, host: host}
		s.acked = true
		s.dial = func(context.Context) (transport, error) { return ht, nil }
	}
	return s, nil
}

// position is how far a sink got: the last event and checkpoint seq.
type position struct{ seq, cp uint64 }

// inflight is a batch sent on the current connection and not yet confirmed.
type inflight struct {
	to      position
	events  int
	ackedAt time.Time // first time the socket had no unacknowledged bytes after the send
}

// maxInflight bounds the unconfirmed batches on one connection: a receiver
// that stops reading holds the sink there instead of growing memory.
const maxInflight = 64

// Backoff between failed attempts.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func (s *sink) run(ctx context.Context) {
	confirmed, err := s.loadCursor(ctx)
	if err != nil {
		return // ctx ended
	}
	var (
		tr        transport
		sent      position
		pending   []inflight
		saved     = confirmed
		lastSave  time.Time
		backoff   = minBackoff
		lastError time.Time
		head      uint64
	)
	save := func(ctx context.Context, force bool) {
		if saved == confirmed || (!force && time.Since(lastSave) < 250*time.Millisecond) {
			return
		}
		c := &store.AuditCursor{Sink: s.name, Seq: confirmed.seq, CheckpointSeq: confirmed.cp}
		if err := s.st.PutAuditCursor(ctx, c); err != nil {
			s.log.WarnContext(ctx, "audit export: saving the cursor failed", "err", err)
			return
		}
		saved, lastSave = confirmed, time.Now()
	}
	defer func() {
		if tr != nil {
			tr.close()
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		save(sctx, true)
		cancel()
	}()
	fail := func(what string, err error) {
		s.m.ExportError(s.name)
		if time.Since(lastError) > 10*time.Second { // one line per outage, not per retry
			s.log.WarnContext(ctx, "audit export: "+what+" failed; will retry", "err", err, "confirmed_seq", confirmed.seq)
			lastError = time.Now()
		}
		if tr != nil {
			tr.close()
			tr = nil
		}
		pending = pending[:0]
		sleep(ctx, backoff)
		backoff = min(backoff*2, maxBackoff)
	}
	for ctx.Err() == nil {
		if t, err := s.st.TailAudit(ctx, 1); err == nil && len(t) == 1 {
			head = t[0].Seq
		}
		if tr == nil {
			t, err := s.dial(ctx)
			if err != nil {
				s.m.ExportLag(s.name, lag(head, confirmed))
				fail("connecting", err)
				continue
			}
			tr, sent = t, confirmed // resend everything not confirmed
			if !lastError.IsZero() {
				s.log.InfoContext(ctx, "audit export: connected; resending from the cursor", "from_seq", confirmed.seq+1)
				lastError = time.Time{}
			}
		}
		// Confirm what the receiver has had long enough.
		uns, err := tr.unsettled()
		if err != nil {
			fail("the connection", err)
			continue
		}
		now := time.Now()
		if !uns {
			for i := range pending {
				if pending[i].ackedAt.IsZero() {
					pending[i].ackedAt = now
				}
			}
		}
		n := 0
		for n < len(pending) && !pending[n].ackedAt.IsZero() && now.Sub(pending[n].ackedAt) >= s.confirm {
			confirmed = pending[n].to
			s.m.ExportDelivered(s.name, pending[n].events, now)
			n++
		}
		pending = append(pending[:0], pending[n:]...)
		if len(pending) == 0 && confirmed.seq >= head {
			s.m.ExportDelivered(s.name, 0, now) // caught up on a live connection
		}
		s.m.ExportLag(s.name, lag(head, confirmed))
		save(ctx, false)

		if len(pending) >= maxInflight {
			sleep(ctx, s.poll)
			continue
		}
		items, to, events, err := s.next(ctx, sent)
		if err != nil {
			if ctx.Err() == nil {
				fail("reading the chain", err)
			}
			continue
		}
		if len(items) == 0 {
			sleep(ctx, s.poll)
			continue
		}
		if err := tr.send(ctx, items); err != nil {
			fail("sending", err)
			continue
		}
		backoff = minBackoff
		sent = to
		if s.acked {
			confirmed = to
			s.m.ExportDelivered(s.name, events, time.Now())
			continue
		}
		pending = append(pending, inflight{to: to, events: events})
	}
}

// loadCursor reads the sink's cursor, retrying until the store answers or
// ctx ends.
func (s *sink) loadCursor(ctx context.Context) (position, error) {
	for {
		c, err := s.st.GetAuditCursor(ctx, s.name)
		switch {
		case err == nil:
			return position{c.Seq, c.CheckpointSeq}, nil
		case errors.Is(err, store.ErrNotFound):
			return position{}, nil
		}
		if ctx.Err() != nil {
			return position{}, ctx.Err()
		}
		s.log.WarnContext(ctx, "audit export: reading the cursor failed", "err", err)
		sleep(ctx, maxBackoff)
	}
}

func lag(head uint64, p position) uint64 {
	if head > p.seq {
		return head - p.seq
	}
	return 0
}

var errBatchFull = errors.New("batch full")

// next reads the items after from: up to batch events, and the
// checkpoints of seqs up to the last of them (or up to from.seq), in seq
// order with a checkpoint after the event it signs.
func (s *sink) next(ctx context.Context, from position) ([]item, position, int, error) {
	var evs []*store.AuditEvent
	err := s.st.ScanAudit(ctx, from.seq+1, func(e *store.AuditEvent) error {
		evs = append(evs, e)
		if len(evs) >= s.batch {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, from, 0, err
	}
	to := from
	if len(evs) > 0 {
		to.seq = evs[len(evs)-1].Seq
	}
	var cps []*store.AuditCheckpoint
	err = s.st.ScanAuditCheckpoints(ctx, from.cp+1, func(cp *store.AuditCheckpoint) error {
		if cp.Seq > to.seq {
			return errBatchFull
		}
		cps = append(cps, cp)
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, from, 0, err
	}
	if len(cps) > 0 {
		to.cp = cps[len(cps)-1].Seq
	}
	items := make([]item, 0, len(evs)+len(cps))
	i := 0
	for _, e := range evs {
		for i < len(cps) && cps[i].Seq < e.Seq {
			items = append(items, item{cp: cps[i]})
			i++
		}
		items = append(items, item{ev: e})
	}
	for ; i < len(cps); i++ {
		items = append(items, item{cp: cps[i]})
	}
	return items, to, len(evs), nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
