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
	"hardbound/store"
	"hardbound/store/badger/badgertest"
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

// statusServer serves body, or 503 while fail is set.
func statusServer(t *testing.T, body string, fail *atomic.Bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestURLRefreshAgeAndStore: an HTTPS source; a failing refresh keeps the
// last good list until it is MaxAge old, then Android is refused (fail
// closed) unless FailOpen; a new List started while the source is down
// uses the store's copy, with the time it was fetched.
func TestURLRefreshAgeAndStore(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	srv := statusServer(t, listOf("abcdef01"), &fail)
	clk := newClock()
	st := badgertest.Memory(t)
	cfg := statuslist.Config{Source: srv.URL + "/attestation/status", MaxAge: 2 * time.Hour, Store: st, HTTPClient: srv.Client(), Now: clk.now}
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
	fetched := clk.now()
	if d, err := st.GetDocument(t.Context(), statuslist.DocumentName); err != nil || !d.Fetched.Equal(fetched.UTC().Truncate(time.Microsecond)) || d.Source != cfg.Source {
		t.Fatalf("stored list: %+v, %v", d, err)
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
	// A reload: a longer max age makes the 3h-old list good again, a
	// shorter one stale again; fail open at run time, and back.
	l.SetPolicy(4*time.Hour, false)
	if err := l.Unavailable(); err != nil {
		t.Fatalf("3h-old list with max age 4h: %v", err)
	}
	l.SetPolicy(time.Hour, true)
	if err := l.Unavailable(); err != nil {
		t.Fatalf("failing open after a reload: %v", err)
	}
	l.SetPolicy(time.Hour, false)
	if err := l.Unavailable(); !errors.Is(err, statuslist.ErrUnavailable) {
		t.Fatalf("3h-old list with max age 1h: %v", err)
	}
	// A restart while the source is down: the store's list is the list,
	// and is stale by now.
	l2, err := statuslist.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l2.Entries() != 1 || !l2.Fetched().Equal(fetched.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("store not loaded: %d entries fetched %v", l2.Entries(), l2.Fetched())
	}
	if err := l2.Unavailable(); !errors.Is(err, statuslist.ErrUnavailable) {
		t.Fatalf("stale stored list: %v", err)
	}
	fail.Store(false)
	if err := l2.Refresh(t.Context()); err != nil || l2.Unavailable() != nil {
		t.Fatalf("recovered: %v / %v", err, l2.Unavailable())
	}
}

// TestTwoNodesOneStore: two Lists (two nodes) over one store. The one whose
// source answers fetches and stores; the other, whose source is down,
// starts with nothing, and its failing refresh takes the stored list with
// the first one's fetch time, so it refuses the listed intermediate. Once
// that list is older than MaxAge both fail closed.
func TestTwoNodesOneStore(t *testing.T) {
	t.Parallel()
	a := authority(t)
	inter := a.AndroidIntermediate().SerialNumber.Text(16)
	var up, down atomic.Bool
	down.Store(true)
	srvA := statusServer(t, listOf(inter), &up)
	srvB := statusServer(t, listOf(), &down)
	clk := newClock()
	st := badgertest.Memory(t)
	nodeA, err := statuslist.New(statuslist.Config{Source: srvA.URL + "/status", MaxAge: 2 * time.Hour, Store: st, HTTPClient: srvA.Client(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := statuslist.New(statuslist.Config{Source: srvB.URL + "/status", MaxAge: 2 * time.Hour, Store: st, HTTPClient: srvB.Client(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeB.Load(t.Context()); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if err := nodeB.Refresh(t.Context()); err == nil {
		t.Fatal("node B's source is down, yet its refresh succeeded")
	}
	if err := verify(t, nodeB); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "never read") {
		t.Fatalf("node B before any node fetched: %v, want unavailable", err)
	}
	if err := nodeA.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	fetchedA := nodeA.Fetched()
	clk.add(30 * time.Minute)
	if err := nodeB.Refresh(t.Context()); err == nil {
		t.Fatal("node B's refresh succeeded")
	}
	if nodeB.Entries() != 1 || !nodeB.Fetched().Equal(fetchedA.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("node B did not take the stored list: %d entries, fetched %v (A fetched %v)", nodeB.Entries(), nodeB.Fetched(), fetchedA)
	}
	if err := verify(t, nodeB); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "REVOKED/KEY_COMPROMISE") {
		t.Fatalf("node B with the stored list: %v, want the intermediate revoked", err)
	}
	// Node A's source goes down too; nobody refreshes for longer than
	// MaxAge: the shared list is stale everywhere.
	up.Store(true)
	clk.add(2 * time.Hour)
	for name, l := range map[string]*statuslist.List{"A": nodeA, "B": nodeB} {
		if err := l.Refresh(t.Context()); err == nil {
			t.Fatalf("node %s refreshed from a failing source", name)
		}
		if err := l.Unavailable(); !errors.Is(err, statuslist.ErrUnavailable) {
			t.Fatalf("node %s with a stale shared list: %v, want unavailable", name, err)
		}
	}
}

// TestImportOldCacheFile: the cache file an earlier version kept in the
// data dir is put into the store once, with its modification time as the
// fetch time, and left where it was; a store that holds a later list is
// not overwritten by it.
func TestImportOldCacheFile(t *testing.T) {
	t.Parallel()
	clk := newClock()
	old := filepath.Join(t.TempDir(), "android-status.json")
	if err := os.WriteFile(old, []byte(listOf("feed01")), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := clk.now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(old, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	st := badgertest.Memory(t)
	cfg := statuslist.Config{Source: "/nonexistent/status.json", MaxAge: 2 * time.Hour, Store: st, ImportFile: old, Now: clk.now}
	l, err := statuslist.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Revoked("FEED01"); !ok || !l.Fetched().Equal(mtime) || l.Unavailable() != nil {
		t.Fatalf("imported list: fetched %v, unavailable %v", l.Fetched(), l.Unavailable())
	}
	d, err := st.GetDocument(t.Context(), statuslist.DocumentName)
	if err != nil || !d.Fetched.Equal(mtime) || d.Source != "file:"+old {
		t.Fatalf("stored after import: %+v, %v", d, err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the old file was not left: %v", err)
	}
	// A later list in the store (another node fetched): a second start
	// with the old file still there keeps it.
	later := clk.now().UTC().Truncate(time.Microsecond)
	if err := st.PutDocument(t.Context(), &store.Document{Name: statuslist.DocumentName, Body: []byte(listOf("beef02")), Fetched: later}); err != nil {
		t.Fatal(err)
	}
	l2, err := statuslist.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.Revoked("BEEF02"); !ok || !l2.Fetched().Equal(later) {
		t.Fatalf("second start: fetched %v, want the store's later list", l2.Fetched())
	}
	if d, _ := st.GetDocument(t.Context(), statuslist.DocumentName); d == nil || !d.Fetched.Equal(later) {
		t.Fatalf("the old file replaced a later stored list: %+v", d)
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
