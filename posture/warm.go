package posture

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"hardbound/store"
)

// warmPage is the listing page size of Warm (the Badger store's maximum).
const warmPage = 1000

// Warm loads every device and binding into the caches, so that a login
// storm after a restart (the whole population at once) is served from
// memory instead of four store reads per decision. Run it in the background
// at start-up: Decide works meanwhile, loading what it misses. It reads one
// page at a time on one goroutine and yields between pages, so it takes at
// most one core from live traffic; it never evicts or replaces a cached
// entry, and skips what a write invalidated while its page was being read
// (the next Decide reloads it). It stops early when ctx is done (returning
// ctx's error) and logs what it loaded and how long it took.
func (s *Service) Warm(ctx context.Context) error {
	t0 := time.Now()
	devices, dskip, err := s.warmDevices(ctx)
	if err == nil {
		var certs, cskip int
		certs, cskip, err = s.warmCerts(ctx)
		if err == nil {
			s.log.InfoContext(ctx, "posture caches warmed", "devices", devices, "bindings", certs,
				"skipped_full", dskip+cskip, "took", time.Since(t0).Round(time.Millisecond))
			return nil
		}
	}
	if ctx.Err() != nil {
		s.log.InfoContext(ctx, "posture cache warming stopped", "devices", s.devices.len(), "bindings", s.certs.len(),
			"took", time.Since(t0).Round(time.Millisecond))
	} else {
		s.log.ErrorContext(ctx, "posture cache warming failed", "err", err)
	}
	return err
}

// warmDevices returns how many devices it cached and how many found their
// shard full.
func (s *Service) warmDevices(ctx context.Context) (n, full int, err error) {
	return warmPages(ctx, func(ctx context.Context, p store.Page) (int, int, string, error) {
		gens := s.devices.gens()
		page, next, err := s.st.ListDevices(ctx, store.DeviceFilter{}, p)
		if err != nil {
			return 0, 0, "", fmt.Errorf("posture: warm devices: %w", err)
		}
		n, full := 0, 0
		for _, d := range page {
			if s.devices.fill(keyOf(d.ID), compactDevice(d), &gens) {
				n++
			} else {
				full++
			}
		}
		return n, full, next, nil
	})
}

// warmCerts returns how many bindings it cached and how many found their
// shard full. Each attested binding costs one more read, for its
// attestation's format.
func (s *Service) warmCerts(ctx context.Context) (n, full int, err error) {
	return warmPages(ctx, func(ctx context.Context, p store.Page) (int, int, string, error) {
		gens := s.certs.gens()
		page, next, err := s.st.ListCerts(ctx, store.CertFilter{NoDER: true}, p)
		if err != nil {
			return 0, 0, "", fmt.Errorf("posture: warm bindings: %w", err)
		}
		n, full := 0, 0
		for _, c := range page {
			ci := s.loadCert(ctx, c)
			b, ok := s.compact(&ci)
			if !ok {
				continue
			}
			if s.certs.fill(c.SHA256, b, &gens) {
				n++
			} else {
				full++
			}
		}
		return n, full, next, nil
	})
}

// warmPages runs fill over every page of warmPage records until the last
// one or ctx's end, yielding between pages so that authentications running
// meanwhile are not held up. fill takes its cache generations before it
// lists, so a write racing the warm is never overwritten by stale data.
func warmPages(ctx context.Context, fill func(context.Context, store.Page) (n, full int, next string, err error)) (n, full int, err error) {
	p := store.Page{Limit: warmPage}
	for {
		if err := ctx.Err(); err != nil {
			return n, full, err
		}
		pn, pfull, next, err := fill(ctx, p)
		n, full = n+pn, full+pfull
		if err != nil || next == "" {
			return n, full, err
		}
		p.After = next
		runtime.Gosched()
	}
}
