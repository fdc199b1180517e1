package auditexport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"hardbound/store"
)

// Chain is the audit chain as the admin API serves it: verified against
// the trusted keys, and exported for investigations.
type Chain struct {
	st   Store
	keys KeySet
	host string
}

// NewChain serves st's chain; keys verify its checkpoints; host names the
// exporting machine in exported records (default: the machine's name).
func NewChain(st Store, keys KeySet, host string) *Chain {
	if host == "" {
		host, _ = os.Hostname()
	}
	return &Chain{st: st, keys: keys, host: host}
}

// Verify checks the chain against the store's newest checkpoint (full:
// every event and checkpoint), or against external checkpoints when set.
func (c *Chain) Verify(ctx context.Context, full bool, external []store.AuditCheckpoint) (*Report, error) {
	return Verify(ctx, c.st, VerifyOptions{Keys: c.keys, External: external, Full: full})
}

// Export formats.
const (
	FormatJSONL   = "jsonl"   // one record object per line (record.go)
	FormatRFC5424 = "rfc5424" // one RFC 5424 message per line
)

// ExportOptions select what Export writes: events from FromSeq on, or from
// the first event at or after Since, with the checkpoints among them.
type ExportOptions struct {
	FromSeq uint64
	Since   time.Time
	Format  string // jsonl (default) | rfc5424
	// Progress, if set, is called every 10,000 events with the last seq
	// written and the head.
	Progress func(seq, head uint64)
}

// ErrBadFormat is an export format other than jsonl or rfc5424.
var ErrBadFormat = errors.New("auditexport: format must be jsonl or rfc5424")

// Export streams events (and the checkpoints of their seqs) to w in one
// pass and returns how many events it wrote.
func (c *Chain) Export(ctx context.Context, w io.Writer, o ExportOptions) (int, error) {
	if o.Format == "" {
		o.Format = FormatJSONL
	}
	if o.Format != FormatJSONL && o.Format != FormatRFC5424 {
		return 0, fmt.Errorf("%w, not %q", ErrBadFormat, o.Format)
	}
	tail, err := c.st.TailAudit(ctx, 1)
	if err != nil {
		return 0, fmt.Errorf("auditexport: export: %w", err)
	}
	if len(tail) == 0 {
		return 0, nil
	}
	head := tail[0].Seq
	from := max(o.FromSeq, 1)
	if !o.Since.IsZero() {
		if from, err = c.firstSince(ctx, from, head, o.Since); err != nil {
			return 0, err
		}
	}
	f := newSyslogFormat(DefaultFacility, c.host, os.Getpid())
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	write := func(it item) error {
		var err error
		if o.Format == FormatJSONL {
			line, err = it.appendJSON(line[:0], c.host)
		} else {
			line, err = f.appendMessage(line[:0], it)
		}
		if err != nil {
			return err
		}
		line = append(line, '\n')
		_, err = bw.Write(line)
		return err
	}
	// Checkpoints are few (one per thousand events by default): stream
	// them beside the events, each after the event it signs.
	var cps []*store.AuditCheckpoint
	if err := c.st.ScanAuditCheckpoints(ctx, from, func(cp *store.AuditCheckpoint) error {
		cps = append(cps, cp)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("auditexport: export: %w", err)
	}
	n := 0
	err = c.st.ScanAudit(ctx, from, func(e *store.AuditEvent) error {
		if e.Seq > head {
			return errStopScan // what arrived after the export began waits for the next one
		}
		if !o.Since.IsZero() && e.Time.Before(o.Since) {
			return nil
		}
		if err := write(item{ev: e}); err != nil {
			return err
		}
		for len(cps) > 0 && cps[0].Seq <= e.Seq {
			if err := write(item{cp: cps[0]}); err != nil {
				return err
			}
			cps = cps[1:]
		}
		n++
		if o.Progress != nil && n%10000 == 0 {
			o.Progress(e.Seq, head)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return n, fmt.Errorf("auditexport: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("auditexport: export: %w", err)
	}
	if o.Progress != nil {
		o.Progress(head, head)
	}
	return n, nil
}

// firstSince finds, by bisection over seqs, the first event at or after
// since. Event times follow seq order (each is stamped when appended),
// so the search needs log2(head) point reads instead of a scan.
func (c *Chain) firstSince(ctx context.Context, lo, hi uint64, since time.Time) (uint64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		var at *store.AuditEvent
		err := c.st.ScanAudit(ctx, mid, func(e *store.AuditEvent) error { at = e; return errStopScan })
		if err != nil && !errors.Is(err, errStopScan) {
			return 0, fmt.Errorf("auditexport: export: %w", err)
		}
		if at == nil || !at.Time.Before(since) {
			hi = mid
		} else {
			lo = at.Seq + 1
		}
	}
	return lo, nil
}
