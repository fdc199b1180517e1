// Package statuslist keeps Google's Android attestation status list
// (revoked and suspended attestation keys and intermediates) current for
// enroll/attest, which does no I/O: it reads the list from a file or an
// HTTPS URL, refreshes it on an interval, keeps the last good copy in the
// store (one copy for every node sharing it, so a node that starts while
// the URL is down still has it, with the time it was fetched), and says
// when the list is too old to trust, which refuses Android attestations
// unless the operator chose to fail open (docs/attestation.md).
package statuslist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store"
)

// DocumentName is the list's name among the store's documents.
const DocumentName = "android-attestation-status"

// Store keeps the last good list (store.Store satisfies it).
type Store interface {
	GetDocument(ctx context.Context, name string) (*store.Document, error)
	PutDocument(ctx context.Context, d *store.Document) error
}

// GoogleURL is where Google publishes the list.
const GoogleURL = "https://android.googleapis.com/attestation/status"

// Defaults.
const (
	DefaultRefresh = time.Hour
	DefaultMaxAge  = 48 * time.Hour
)

// ErrUnavailable is wrapped by Unavailable's errors.
var ErrUnavailable = errors.New("statuslist: attestation status list unavailable")

// Config configures a List.
type Config struct {
	// Source is a file path or an https:// URL.
	Source string
	// Refresh is the interval between reads (default 1h).
	Refresh time.Duration
	// MaxAge is how old the last good list may be before the list counts
	// as unavailable (default 48h).
	MaxAge time.Duration
	// FailOpen accepts Android attestations while the list is unavailable.
	// WARNING: a leaked attestation key is then accepted too.
	FailOpen bool
	// Store keeps the last good document for every node; nil: memory only.
	Store Store
	// ImportFile is the cache file an earlier version kept in the data
	// dir; when it exists and the store holds no list as new, Load puts
	// it into the store (its fetch time is the file's modification time).
	// The file is left as it is and no longer written.
	ImportFile string
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// List is an attest.AndroidStatus and attest.AndroidStatusAvailability.
type List struct {
	cfg Config
	log *slog.Logger

	loadOnce sync.Once

	mu       sync.RWMutex
	maxAge   time.Duration // cfg.MaxAge until SetPolicy
	failOpen bool          // cfg.FailOpen until SetPolicy
	entries  attest.AndroidStatusList
	fetched  time.Time // when entries were read from the source (by any node)
	lastErr  error
}

// New checks cfg; it reads neither the store nor the source (Load and
// Refresh do, Run both).
func New(cfg Config) (*List, error) {
	if cfg.Source == "" {
		return nil, errors.New("statuslist: Source is required")
	}
	if u, err := url.Parse(cfg.Source); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		if u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("statuslist: source %q: only https:// URLs or file paths", cfg.Source)
		}
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &List{cfg: cfg, log: cfg.Logger.With("component", "enroll", "statuslist", cfg.Source), maxAge: cfg.MaxAge, failOpen: cfg.FailOpen}
	if cfg.FailOpen {
		l.log.Warn("WARNING: Android attestations are accepted while the attestation status list is unavailable (fail open)")
	}
	return l, nil
}

func (l *List) isURL() bool { return strings.HasPrefix(l.cfg.Source, "https://") }

// Load imports ImportFile into the store if it is newer than the store's
// list, then takes the store's list as the last good one. It runs once
// (Run calls it first); errors are logged and returned (store.ErrNotFound
// when no node stored a list yet), and leave the list waiting for the
// source.
func (l *List) Load(ctx context.Context) error {
	var err error
	l.loadOnce.Do(func() {
		if l.cfg.Store == nil {
			return
		}
		if l.cfg.ImportFile != "" {
			if ierr := l.importFile(ctx); ierr != nil && !errors.Is(ierr, os.ErrNotExist) {
				l.log.Warn("old attestation status list cache not imported", "file", l.cfg.ImportFile, "err", ierr)
			}
		}
		if _, err = l.fromStore(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
			l.log.Warn("attestation status list not read from the store; waiting for the source", "err", err)
		}
	})
	return err
}

// importFile puts the cache file of an earlier version into the store,
// unless the store already holds a list fetched as late (it was imported
// before, or a node fetched since).
func (l *List) importFile(ctx context.Context) error {
	fi, err := os.Stat(l.cfg.ImportFile)
	if err != nil {
		return err
	}
	at := fi.ModTime().UTC().Truncate(time.Microsecond)
	switch cur, err := l.cfg.Store.GetDocument(ctx, DocumentName); {
	case err == nil && !cur.Fetched.Before(at):
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	b, err := readBounded(l.cfg.ImportFile)
	if err != nil {
		return err
	}
	if _, err := attest.ParseAndroidStatusList(b); err != nil {
		return err
	}
	err = l.cfg.Store.PutDocument(ctx, &store.Document{Name: DocumentName, Source: "file:" + l.cfg.ImportFile, Body: b, Fetched: at})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	l.log.Info("old attestation status list cache imported into the store", "file", l.cfg.ImportFile, "fetched", at)
	return nil
}

// fromStore adopts the store's list when it was fetched after the one in
// memory (by this node or another) and reports whether it did.
func (l *List) fromStore(ctx context.Context) (bool, error) {
	d, err := l.cfg.Store.GetDocument(ctx, DocumentName)
	if err != nil {
		return false, err
	}
	l.mu.RLock()
	newer := d.Fetched.After(l.fetched)
	l.mu.RUnlock()
	if !newer {
		return false, nil
	}
	entries, err := attest.ParseAndroidStatusList(d.Body)
	if err != nil {
		return false, fmt.Errorf("the stored list: %w", err)
	}
	l.mu.Lock()
	if !d.Fetched.After(l.fetched) {
		l.mu.Unlock()
		return false, nil
	}
	l.entries, l.fetched = entries, d.Fetched
	l.mu.Unlock()
	l.log.Info("attestation status list taken from the store", "entries", len(entries), "from", d.Source,
		"age", l.cfg.Now().Sub(d.Fetched).Round(time.Second))
	return true, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, attest.MaxAndroidStatusListSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > attest.MaxAndroidStatusListSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", attest.ErrStatusList, path, attest.MaxAndroidStatusListSize)
	}
	return b, nil
}

// Refresh reads the source once and writes what it read to the store. On
// failure it takes the store's list if another node fetched one since;
// otherwise the previous list stays (and ages). The source's error is
// returned and remembered for Unavailable.
func (l *List) Refresh(ctx context.Context) error {
	b, err := l.read(ctx)
	var entries attest.AndroidStatusList
	if err == nil {
		entries, err = attest.ParseAndroidStatusList(b)
	}
	if err != nil {
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		if l.cfg.Store != nil {
			if _, serr := l.fromStore(ctx); serr != nil && !errors.Is(serr, store.ErrNotFound) {
				l.log.Warn("attestation status list not read from the store", "err", serr)
			}
		}
		return fmt.Errorf("statuslist: %s: %w", l.cfg.Source, err)
	}
	now := l.cfg.Now()
	l.mu.Lock()
	l.entries, l.fetched, l.lastErr = entries, now, nil
	l.mu.Unlock()
	if l.cfg.Store != nil {
		err := l.cfg.Store.PutDocument(ctx, &store.Document{Name: DocumentName, Source: l.cfg.Source, Body: b, Fetched: now})
		switch {
		case errors.Is(err, store.ErrConflict):
			// Another node stored a later fetch: both are good lists.
		case err != nil:
			l.log.Warn("attestation status list not written to the store", "err", err)
		}
	}
	l.log.Info("attestation status list refreshed", "entries", len(entries))
	return nil
}

func (l *List) read(ctx context.Context) ([]byte, error) {
	if !l.isURL() {
		return readBounded(l.cfg.Source)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.cfg.Source, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, attest.MaxAndroidStatusListSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > attest.MaxAndroidStatusListSize {
		return nil, fmt.Errorf("%w: body larger than %d bytes", attest.ErrStatusList, attest.MaxAndroidStatusListSize)
	}
	return b, nil
}

// Run loads the store's list (Load), refreshes now and then every Refresh
// until ctx ends. While the list
// is missing or failing it retries sooner (a minute, doubling up to
// Refresh), so an outage at start-up heals quickly.
func (l *List) Run(ctx context.Context) error {
	_ = l.Load(ctx) // logged; the source may still answer
	retry := time.Minute
	for {
		wait := l.cfg.Refresh
		if err := l.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.log.Error("attestation status list refresh failed", "err", err, "next_try", retry)
			wait, retry = retry, min(retry*2, l.cfg.Refresh)
		} else {
			retry = time.Minute
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Revoked implements attest.AndroidStatus.
func (l *List) Revoked(serialHex string) (string, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.entries.Revoked(serialHex)
}

// Unavailable implements attest.AndroidStatusAvailability: nil while the
// last good list is younger than MaxAge, or always when failing open.
func (l *List) Unavailable() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.failOpen {
		return nil
	}
	switch {
	case l.entries == nil && l.lastErr != nil:
		return fmt.Errorf("%w: never read: %v", ErrUnavailable, l.lastErr)
	case l.entries == nil:
		return fmt.Errorf("%w: not read yet", ErrUnavailable)
	}
	if age := l.cfg.Now().Sub(l.fetched); age > l.maxAge {
		return fmt.Errorf("%w: the last good list is %s old (max %s)", ErrUnavailable, age.Round(time.Second), l.maxAge)
	}
	return nil
}

// SetPolicy replaces MaxAge (0: DefaultMaxAge) and FailOpen of a running
// List (a configuration reload); the next Unavailable applies them.
func (l *List) SetPolicy(maxAge time.Duration, failOpen bool) {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	l.mu.Lock()
	changed := l.failOpen != failOpen
	l.maxAge, l.failOpen = maxAge, failOpen
	l.mu.Unlock()
	if changed && failOpen {
		l.log.Warn("WARNING: Android attestations are accepted while the attestation status list is unavailable (fail open)")
	}
}

// Entries is the number of listed serials (for logs and tests).
func (l *List) Entries() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.entries)
}

// Fetched is when the list in use was read from its source (zero: none).
func (l *List) Fetched() time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.fetched
}
