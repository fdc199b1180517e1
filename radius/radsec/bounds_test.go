package radsec_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/radius/radsec"
)

// rss is the process's resident set in bytes (Linux), or 0.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestBounds holds 2,000 idle RADIUS/TLS connections of one NAS, then
// checks that the limits hold (the NAS's 2,001st connection and
// connections beyond the total are refused), that a peer trickling a
// packet is cut off, that a peer sending a broken stream or non-TLS bytes
// after the handshake is closed, that memory stays bounded, and that a
// legitimate NAS is still served throughout.
func TestBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 TLS connections")
	}
	const held = 2000
	e := newEnv(t, func(c *radsec.Config) {
		c.MaxPerNAS = held
		c.MaxConns = held + 8
		c.HandshakeTimeout = 20 * time.Second
		c.IdleTimeout = 10 * time.Minute // opening 2,000 takes longer than the default test 30s under -race
	})
	bulk := e.nasCert(t, "bulk")
	good := e.nasCert(t, "good")
	dev := e.device(t, "dev-ok", devbind.Request{})

	runtime.GC()
	before := rss()
	conns := make([]*tls.Conn, held)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, held)
	for i := range held {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := e.dial(t, bulk, 0)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("opening held connections: %v", err)
	}
	// The server finishes its side of a handshake after the client does
	// (TLS 1.3 client certificates): under -race on a loaded machine that
	// lags by seconds.
	eventuallyFor(t, 2*time.Minute, "all held connections registered", func() bool { return e.ls.Connected("bulk") == held })
	runtime.GC()
	grown := rss() - before
	t.Logf("%d idle connections (both ends in this process): RSS +%d MiB, %d KiB per connection", held, grown>>20, grown/held>>10)
	// Both ends of each connection live in this process; a server-side
	// idle connection is a goroutine, a 4 KiB buffer and the TLS state.
	if grown > memFactor*held*128<<10 {
		t.Fatalf("RSS grew by %d MiB for %d connections", grown>>20, held)
	}

	// Per-NAS limit: the 2,001st connection of bulk is refused after its
	// handshake (the server learns who it is only then).
	refused := e.metrics.get("refused/per_nas")
	if c, err := e.dial(t, bulk, 0); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("2,001st connection of one NAS was read from")
		}
	}
	eventually(t, "per-NAS refusal", func() bool { return e.metrics.get("refused/per_nas") == refused+1 })

	// A legitimate NAS is served while the 2,000 are held.
	gc, err := e.dial(t, good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res := authenticate(t, e, gc, dev); !res.Accepted {
		t.Fatal("legitimate NAS not served")
	}

	// A trickling peer: a packet header, then one octet a second; cut off
	// after PacketTimeout (2s).
	slow, err := e.dial(t, good, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := slow.Write([]byte{1, 1, 0, 100}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		time.Sleep(time.Second)
		if _, err := slow.Write([]byte{0}); err != nil {
			break
		}
		_ = slow.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := slow.Read(make([]byte, 1)); err == io.EOF {
			break
		}
	}
	eventually(t, "slow peer cut off", func() bool { return e.metrics.get("closed/slow") == 1 })
	if d := time.Since(start); d > 25*time.Second { // PacketTimeout is 2s; generous for -race under load
		t.Fatalf("slow peer held for %s", d)
	}

	// Garbage after the handshake: an impossible Length inside TLS, and
	// bytes that are not TLS at all.
	bad, err := e.dial(t, good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Write([]byte{1, 1, 0, 5, 'x', 'y', 'z'}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "broken framing closed", func() bool { return e.metrics.get("closed/framing") == 1 })
	raw, err := e.dial(t, good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.NetConn().Write([]byte(strings.Repeat("GET / HTTP/1.1\r\n", 64))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "non-TLS bytes closed", func() bool { return e.metrics.get("closed/tls") == 1 })

	// The total limit: beyond MaxConns, TCP connections are closed at once.
	limit := e.metrics.get("refused/limit")
	var extra []net.Conn
	for range 16 {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, c)
	}
	eventually(t, "total limit", func() bool { return e.metrics.get("refused/limit") > limit })
	if n := e.metrics.conns(); n > held+8 {
		t.Fatalf("%d connections open, limit %d", n, held+8)
	}
	for _, c := range extra {
		c.Close()
	}
	// Still served.
	if res := authenticate(t, e, gc, dev); !res.Accepted {
		t.Fatal("legitimate NAS not served after the abuse")
	}
	for _, c := range conns {
		c.Close()
	}
	eventuallyFor(t, time.Minute, "held connections closed", func() bool { return e.ls.Connected("bulk") == 0 })
	t.Logf("metrics: %s", fmt.Sprint(e.metrics.c))
}

// TestIdleTimeout: a connection on which nothing starts is closed.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *radsec.Config) { c.IdleTimeout = 500 * time.Millisecond })
	c, err := e.dial(t, e.nasCert(t, "quiet"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from an idle connection")
	}
	eventually(t, "idle close", func() bool { return e.metrics.get("closed/idle") == 1 })
}

// TestRevocationCloses: revoking a NAS certificate closes the NAS's live
// connections, and the NAS cannot connect again.
func TestRevocationCloses(t *testing.T) {
	e := newEnv(t, nil)
	cert := e.nasCert(t, "ap9")
	var cs []*tls.Conn
	for range 3 {
		c, err := e.dial(t, cert, 0)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	eventually(t, "registered", func() bool { return e.ls.Connected("ap9") == 3 })
	if _, err := e.posture.RevokeCert(e.ctx, cert.Leaf.SerialNumber.Text(16), 1, "admin:test"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection of a revoked NAS still open")
		}
	}
	eventually(t, "closed as revoked", func() bool { return e.metrics.get("closed/revoked") == 3 && e.ls.Connected("ap9") == 0 })
	before := e.metrics.get("refused/revoked")
	if c, err := e.dial(t, cert, 0); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
	}
	eventually(t, "reconnect refused", func() bool { return e.metrics.get("refused/revoked") == before+1 })
	// The refusal is counted before its event is appended (conn.go).
	eventually(t, "connections and the refusal audited", func() bool {
		return e.audited(t, "radsec.connect", "nas:ap9", "ok", "") == 3 && e.audited(t, "radsec.connect", "nas:ap9", "denied", "revoked") == 1
	})
}
