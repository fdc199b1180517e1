package radius

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/radius/packet"
)

// lineCounter is a slog handler that counts WARN lines by message.
type lineCounter struct {
	mu    sync.Mutex
	lines map[string]int
}

func (l *lineCounter) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (l *lineCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		l.mu.Lock()
		l.lines[r.Message]++
		l.mu.Unlock()
	}
	return nil
}
func (l *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lineCounter) WithGroup(string) slog.Handler      { return l }
func (l *lineCounter) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.lines {
		n += v
	}
	return n
}

// rssBytes is this process's resident set (Linux).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestIntegrationIdentityFloodDoesNotLockOutTheNAS: 10,000 Identity-only
// conversations through one NAS (each its own Calling-Station-Id, as
// randomized MACs would be) while one real supplicant authenticates
// through the SAME NAS: it is accepted, the conversations stay within the
// configured caps and memory bound, and the log holds a bounded number of
// lines.
func TestIntegrationIdentityFloodDoesNotLockOutTheNAS(t *testing.T) {
	const (
		flood    = 10000
		perNAS   = 2000
		maxBytes = 32 << 20
	)
	pki := newPKI(t)
	logs := &lineCounter{lines: map[string]int{}}
	sessions, audit, metrics := newMemSessions(), &memAudit{}, newCountMetrics()
	srv, err := New(Config{
		Clients:                []Client{{Name: "wlc", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret), RequireMessageAuthenticator: true}},
		MaxConversationsPerNAS: perNAS, MaxConversationBytes: maxBytes,
	}, pki.eapServer(t), pki.decider(), sessions, audit, WithMetrics(metrics), WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	auth := listenLoopback(t)
	_ = auth.SetReadBuffer(socketBuffer)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, auth, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	server := auth.LocalAddr().(*net.UDPAddr).AddrPort()

	runtime.GC()
	rss0 := rssBytes(t)

	// The flood: one socket (the NAS), Identity responses, no State.
	fc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	var answered atomic.Int64
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := fc.Read(buf); err != nil {
				return
			}
			answered.Add(1)
		}
	}()
	sec := packet.NewSecret([]byte(testSecret))
	var legit eapRun
	var legitDone sync.WaitGroup
	var maxUsage int64
	for i := range flood {
		attrs := lradius.Attributes{
			{Type: attrUserName, Attribute: []byte("flood")},
			{Type: attrCallingStationID, Attribute: []byte(fmt.Sprintf("02-ff-%02x-%02x-%02x-%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)))},
		}
		attrs = append(attrs, packet.AppendEAP(nil, []byte{2, 0, 0, 10, 1, 'f', 'l', 'o', 'o', 'd'})...)
		attrs = append(attrs, &lradius.AVP{Type: attrMessageAuth, Attribute: make([]byte, 16)})
		p := &lradius.Packet{Code: lradius.CodeAccessRequest, Identifier: byte(i), Attributes: attrs}
		copy(p.Authenticator[:], fmt.Sprintf("flood-%010d", i))
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := sec.SignRequest(b); err != nil {
			t.Fatal(err)
		}
		if _, err := fc.WriteToUDPAddrPort(b, server); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			// Pace to what the server answers: the flood must reach the
			// conversation table, not the kernel's drop counter (which
			// would starve the real supplicant for a reason that is not
			// the server's).
			for wait := 0; answered.Load() < int64(i+1)-50 && wait < 200; wait++ {
				time.Sleep(time.Millisecond)
			}
			maxUsage = max(maxUsage, srv.convs.usage())
		}
		if i == flood/2 {
			legitDone.Go(func() {
				nas := newUDPNAS(t, server, []byte(testSecret))
				peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: pki.peerTLS("ok", tls.VersionTLS13), Identity: "anonymous@example.org", MTU: 1400})
				defer peer.Close()
				legit = runEAP(t, nas, peer, 1400)
			})
		}
	}
	legitDone.Wait()
	runtime.GC()
	rss1 := rssBytes(t)
	if legit.final == nil || legit.final.Code != lradius.CodeAccessAccept {
		t.Fatalf("legitimate authentication through the flooded NAS: %+v", legit.final)
	}
	live := srv.convs.len()
	if live > perNAS || maxUsage > maxBytes || srv.convs.usage() > maxBytes {
		t.Fatalf("live %d (cap %d), usage peak %d now %d (bound %d)", live, perNAS, maxUsage, srv.convs.usage(), maxBytes)
	}
	if grew := rss1 - rss0; grew > maxBytes*memFactor {
		t.Fatalf("RSS grew %d MiB, over the %d MiB bound (x%d for the race detector)", grew>>20, maxBytes>>20, memFactor)
	}
	// Evictions are counted, every one; lines are bounded.
	evicted := metrics.get("drop/" + DropEvicted)
	if evicted < flood-perNAS-1000 {
		t.Fatalf("evicted %d of %d flood conversations", evicted, flood)
	}
	if n := logs.total(); n > 100 {
		t.Fatalf("%d WARN lines for a flood: %v", n, logs.lines)
	}
	t.Logf("answered %d of %d flood packets; metrics %v", answered.Load(), flood, metrics)
	t.Logf("flood %d Identity-only conversations: accepted the real one; live %d, usage peak %d KiB (bound %d KiB), RSS %d -> %d MiB, evicted %d, rejects %d, WARN lines %d",
		flood, live, maxUsage>>10, maxBytes>>10, rss0>>20, rss1>>20, evicted, metrics.get("reject/"+RejectOverCapacity), logs.total())
}

// TestRefusalLinesAreRateLimited: 10,000 refusals in a burst write at most
// the limiter's burst of lines, and the next line says how many were left
// out.
func TestRefusalLinesAreRateLimited(t *testing.T) {
	t.Parallel()
	logs := &lineCounter{lines: map[string]int{}}
	l := slog.New(logs)
	r := newRefusalLog()
	for range 10000 {
		r.log(l, "refused")
	}
	if n := logs.total(); n < 1 || n > 25 {
		t.Fatalf("%d lines for 10,000 refusals", n)
	}
	if r.suppressed.Load() < 10000-25 {
		t.Fatalf("suppressed count %d", r.suppressed.Load())
	}
}
