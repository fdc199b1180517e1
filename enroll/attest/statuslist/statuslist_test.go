package statuslist_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/attest/statuslist"
)

const keyAuth = "tok-statuslist.aGVsbG8td29ybGQtdGh1bWJwcmludC12YWx1ZQ"

var (
	authOnce sync.Once
	auth     *attesttest.Authority
	authErr  error
)

func authority(t *testing.T) *attesttest.Authority {
	t.Helper()
	authOnce.Do(func() { auth, authErr = attesttest.NewAuthority() })
	if authErr != nil {
		t.Fatal(authErr)
	}
	return auth
}

func listOf(serials ...string) string {
	var b strings.Builder
	b.WriteString(`{"entries":{`)
	for i, s := range serials {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + s + `":{"status":"REVOKED","reason":"KEY_COMPROMISE"}`)
	}
	b.WriteString(`}}`)
	return b.String()
}

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.t.Store(time.Now().UnixNano()); return c }
func verify(t *testing.T, l attest.AndroidStatus) error {
	t.Helper()
	a := authority(t)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := a.Android(k, "R58LIST", keyAuth)
	if err != nil {
		t.Fatal(err)
	}
	_, err = attest.New(a.Roots(), attest.WithAndroidStatus(l)).VerifyACME(context.Background(), obj, keyAuth)
	return err
}

// TestRevokedIntermediateFromFile: the list read from a file revokes the
// intermediate every test chain goes through; an Android attestation is
// then refused, and accepted once the list no longer names it.
func TestRevokedIntermediateFromFile(t *testing.T) {
	t.Parallel()
	a := authority(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "status.json")
	inter := a.AndroidIntermediate().SerialNumber.Text(16)
	if err := os.WriteFile(src, []byte(listOf("00"+strings.ToUpper(inter))), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := statuslist.New(statuslist.Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, l); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "not read yet") {
		t.Fatalf("before the first read: %v, want unavailable", err)
	}
	if err := l.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, l); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "REVOKED/KEY_COMPROMISE") {
		t.Fatalf("revoked intermediate: %v", err)
	}
	if err := os.WriteFile(src, []byte(listOf("1234abcd")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, l); err != nil {
		t.Fatalf("not listed: %v", err)
	}
}

// TestURLRefreshAgeAndCache: an HTTPS source; a failing refresh keeps the
// last good list until it is MaxAge old, then Android is refused (fail
// closed) unless FailOpen; a new List started while the source is down
// uses the cache file.
func TestURLRefreshAgeAndCache(t *testing.T) {
	t.Parallel()
	var (
		fail atomic.Bool
		hits atomic.Int32
	)
	body := listOf("abcdef01")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	clk := newClock()
	cache := filepath.Join(t.TempDir(), "android-status.json")
	cfg := statuslist.Config{Source: srv.URL + "/attestation/status", MaxAge: 2 * time.Hour, CacheFile: cache, HTTPClient: srv.Client(), Now: clk.now}
	l, err := statuslist.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r, ok := l.Revoked("ABCDEF01"); !ok || r != "REVOKED/KEY_COMPROMISE" {
		t.Fatalf("Revoked = %q %v", r, ok)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}
	fail.Store(true)
	clk.add(time.Hour)
	if err := l.Refresh(t.Context()); err == nil {
		t.Fatal("refresh from a failing source succeeded")
	}
	if err := l.Unavailable(); err != nil {
		t.Fatalf("an hour-old list is unavailable: %v", err)
	}
	clk.add(2 * time.Hour)
	if err := l.Unavailable(); !errors.Is(err, statuslist.ErrUnavailable) {
		t.Fatalf("a 3h-old list: %v, want unavailable", err)
	}
	if err := verify(t, l); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("stale list: %v, want refusal", err)
	}
	open := cfg
	open.FailOpen = true
	lo, err := statuslist.New(open)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, lo); err != nil {
		t.Fatalf("fail open: %v", err)
	}
	// A restart while the source is down: the cache (its mtime is the
	// fetch time) is the list, and is stale by now.
	l2, err := statuslist.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Entries() != 1 {
		t.Fatalf("cache not loaded: %d entries", l2.Entries())
	}
	if err := l2.Unavailable(); !errors.Is(err, statuslist.ErrUnavailable) {
		t.Fatalf("stale cache: %v", err)
	}
	fail.Store(false)
	if err := l2.Refresh(t.Context()); err != nil || l2.Unavailable() != nil {
		t.Fatalf("recovered: %v / %v", err, l2.Unavailable())
	}
}

func TestBadSources(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "http://example.com/status", "ftp://x/y", "https://"} {
		if _, err := statuslist.New(statuslist.Config{Source: src}); err == nil {
			t.Errorf("New(%q) accepted", src)
		}
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"not-json": "<html>", "no-entries": `{"x":1}`, "bad-key": `{"entries":{"zz":{}}}`} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := statuslist.New(statuslist.Config{Source: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Refresh(t.Context()); !errors.Is(err, attest.ErrStatusList) {
			t.Errorf("%s: Refresh = %v, want ErrStatusList", name, err)
		}
		if l.Unavailable() == nil {
			t.Errorf("%s: a list that never parsed is available", name)
		}
	}
}
