// Package statuslist keeps Google's Android attestation status list
// (revoked and suspended attestation keys and intermediates) current for
// enroll/attest, which does no I/O: it reads the list from a file or an
// HTTPS URL, refreshes it on an interval, keeps the last good copy in a
// cache file (so a restart while the URL is down still has it), and says
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
	"hardbound/store/atomicfile"
)

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
	// CacheFile keeps the last good document (mode 0600); empty: none.
	CacheFile  string
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// List is an attest.AndroidStatus and attest.AndroidStatusAvailability.
type List struct {
	cfg Config
	log *slog.Logger

	mu      sync.RWMutex
	entries attest.AndroidStatusList
	fetched time.Time // when entries were last read from the source
	lastErr error
}

// New checks cfg and loads the cache file if there is one; it does not
// read the source (Refresh or Run does).
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
	l := &List{cfg: cfg, log: cfg.Logger.With("component", "enroll", "statuslist", cfg.Source)}
	if cfg.FailOpen {
		l.log.Warn("WARNING: Android attestations are accepted while the attestation status list is unavailable (fail open)")
	}
	if cfg.CacheFile != "" {
		if err := l.loadCache(); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("attestation status list cache unreadable; waiting for the source", "file", cfg.CacheFile, "err", err)
		}
	}
	return l, nil
}

func (l *List) isURL() bool { return strings.HasPrefix(l.cfg.Source, "https://") }

// loadCache reads the cache file; its age is its modification time.
func (l *List) loadCache() error {
	fi, err := os.Stat(l.cfg.CacheFile)
	if err != nil {
		return err
	}
	b, err := readBounded(l.cfg.CacheFile)
	if err != nil {
		return err
	}
	entries, err := attest.ParseAndroidStatusList(b)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.entries, l.fetched = entries, fi.ModTime()
	l.mu.Unlock()
	l.log.Info("attestation status list loaded from cache", "entries", len(entries), "age", l.cfg.Now().Sub(fi.ModTime()).Round(time.Second))
	return nil
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

// Refresh reads the source once. On failure the previous list stays (and
// ages); the error is returned and remembered for Unavailable.
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
		return fmt.Errorf("statuslist: %s: %w", l.cfg.Source, err)
	}
	now := l.cfg.Now()
	l.mu.Lock()
	l.entries, l.fetched, l.lastErr = entries, now, nil
	l.mu.Unlock()
	if l.cfg.CacheFile != "" {
		if err := atomicfile.Write(l.cfg.CacheFile, b, 0o600); err != nil {
			l.log.Warn("attestation status list cache not written", "file", l.cfg.CacheFile, "err", err)
		} else {
			_ = os.Chtimes(l.cfg.CacheFile, now, now)
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

// Run refreshes now and then every Refresh until ctx ends. While the list
// is missing or failing it retries sooner (a minute, doubling up to
// Refresh), so an outage at start-up heals quickly.
func (l *List) Run(ctx context.Context) error {
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
	if l.cfg.FailOpen {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.entries == nil && l.lastErr != nil:
		return fmt.Errorf("%w: never read: %v", ErrUnavailable, l.lastErr)
	case l.entries == nil:
		return fmt.Errorf("%w: not read yet", ErrUnavailable)
	}
	if age := l.cfg.Now().Sub(l.fetched); age > l.cfg.MaxAge {
		return fmt.Errorf("%w: the last good list is %s old (max %s)", ErrUnavailable, age.Round(time.Second), l.cfg.MaxAge)
	}
	return nil
}

// Entries is the number of listed serials (for logs and tests).
func (l *List) Entries() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.entries)
}
