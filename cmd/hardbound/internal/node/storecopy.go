package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"hardbound/store"
)

// CopyResult is what CopyStore moved and checked.
type CopyResult struct {
	Records     int
	Devices     int
	AuditEvents uint64
	// Elapsed is the whole copy, the stores' opening and closing included.
	Elapsed time.Duration
}

// String is the result as `hardbound store copy` reports it.
func (r CopyResult) String() string {
	return fmt.Sprintf("copied %d records (%d devices, %d audit events) in %s; audit chain verified",
		r.Records, r.Devices, r.AuditEvents, r.Elapsed.Round(time.Millisecond))
}

// CopyProgress is a CopyStore progress for a person: "copied N records
// (elapsed)" on w, at most once a second.
func CopyProgress(w io.Writer) func(n int) {
	start := time.Now()
	last := start
	return func(n int) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(w, "copied %d records (%s)\n", n, time.Since(start).Round(time.Second))
		}
	}
}

// CopyStore copies every durable record of from's store into to's, which
// must be empty (store.ErrExists otherwise): both offline, no node
// running on either. The source must export (store.Exporter: Badger) and
// the target import (store.Importer: PostgreSQL). progress, if set, sees
// the records written so far. At the end the target's audit chain is
// verified and its devices counted against the source's.
func CopyStore(ctx context.Context, from, to *Config, progress func(n int)) (res CopyResult, err error) {
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start) }() // last: after the stores close
	log := slog.New(slog.DiscardHandler)
	src, err := openStore(ctx, from, log)
	if err != nil {
		return res, fmt.Errorf("open source store: %w", err)
	}
	defer src.Close()
	exp, ok := src.(store.Exporter)
	if !ok {
		return res, fmt.Errorf("source store.backend %q cannot export", from.Store.Backend)
	}
	dst, err := openStore(ctx, to, log)
	if err != nil {
		return res, fmt.Errorf("open target store: %w", err)
	}
	defer dst.Close()
	imp, ok := dst.(store.Importer)
	if !ok {
		return res, fmt.Errorf("target store.backend %q cannot import", to.Store.Backend)
	}
	if err := imp.Import(ctx, exp, func(n int) {
		res.Records = n
		if progress != nil {
			progress(n)
		}
	}); err != nil {
		return res, err
	}
	// Verify: the chain as a whole, and the device count on both sides.
	want, err := src.VerifyAudit(ctx)
	if err != nil {
		return res, fmt.Errorf("verify source audit chain: %w", err)
	}
	got, err := dst.VerifyAudit(ctx)
	if err != nil {
		return res, fmt.Errorf("verify copied audit chain: %w", err)
	}
	if want.OK && (!got.OK || got.Events != want.Events) {
		return res, fmt.Errorf("copied audit chain does not verify: %d events of %d, broken at %d: %s", got.Events, want.Events, got.BrokenSeq, got.Problem)
	}
	res.AuditEvents = got.Events
	ns, err := countDevices(ctx, src)
	if err != nil {
		return res, err
	}
	nd, err := countDevices(ctx, dst)
	if err != nil {
		return res, err
	}
	if ns != nd {
		return res, fmt.Errorf("copied %d devices of %d", nd, ns)
	}
	res.Devices = nd
	return res, nil
}

func countDevices(ctx context.Context, st store.Store) (int, error) {
	n := 0
	var p store.Page
	for {
		page, next, err := st.ListDevices(ctx, store.DeviceFilter{}, p)
		if err != nil {
			return n, fmt.Errorf("count devices: %w", err)
		}
		n += len(page)
		if next == "" || len(page) == 0 {
			return n, nil
		}
		p.After = next
	}
}
