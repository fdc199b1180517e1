package radsec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/radius/dynauth"
	"hardbound/store"
)

// Handler answers RADIUS packets of NASes known by certificate
// (*radius.Server): the NAS's name, the connection's remote address and
// the framed packet in, the encoded response (or nil) out.
type Handler interface {
	HandleStream(ctx context.Context, nas string, from netip.AddrPort, b []byte) []byte
}

// Listener is the RADIUS/TLS server.
type Listener struct {
	cfg  Config
	h    Handler
	id   identifier
	tls  *tls.Config
	log  *slog.Logger
	m    Metrics
	open atomic.Int64 // connections, handshaking ones included
	// epoch counts revoking store changes (guarded by mu): a connection
	// identified before one is refused at register, since the change may
	// have concerned it after identify read the store.
	epoch uint64

	mu     sync.Mutex
	byName map[string]map[*conn]struct{}
	all    map[*conn]struct{}
}

// New checks cfg and builds a Listener answering through h.
func New(cfg Config, h Handler) (*Listener, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("radsec: handler is required")
	}
	cfg.setDefaults()
	l := &Listener{
		cfg: cfg, h: h,
		id:     identifier{own: cfg.OwnCA, bindings: cfg.Bindings, external: cfg.External, outage: cfg.Outage},
		log:    cfg.Logger.With("component", "radsec"),
		m:      cfg.Metrics,
		byName: map[string]map[*conn]struct{}{},
		all:    map[*conn]struct{}{},
	}
	l.tls = &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate},
		MinVersion:   cfg.MinVersion,
		// The chain is verified by identify, against hardbound's CA or an
		// external client's: one pool cannot express "this CA, with
		// that subject".
		ClientAuth: tls.RequireAnyClientCert,
		// No session tickets: FreeRADIUS 3.2's RadSec client loses the
		// first request when a TLS 1.3 NewSessionTicket arrives after the
		// handshake (TestFreeRADIUSHomeServer), and a NAS's connection
		// lives for hours, so resumption saves next to nothing.
		SessionTicketsDisabled: true,
	}
	return l, nil
}

// Listen opens the TCP listener Serve takes.
func (l *Listener) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("radsec: listen %s: %w", addr, err)
	}
	l.log.Info("listening", "addr", ln.Addr().String())
	return ln, nil
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns once their goroutines are done.
func (l *Listener) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.cfg.Bindings != nil {
		stop := l.cfg.Bindings.Watch(l.onChange)
		defer stop()
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	var err error
	for {
		raw, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("radsec: accept: %w", aerr)
				break
			}
			// Out of file descriptors or a connection reset before accept:
			// a flood must cost refused connections, not the server.
			l.log.Warn("accept failed", "err", aerr)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if int(l.open.Load()) >= l.cfg.MaxConns {
			l.m.Refused("limit")
			l.log.Debug("connection refused: limit", "from", raw.RemoteAddr().String(), "max", l.cfg.MaxConns)
			_ = raw.Close()
			continue
		}
		l.m.Connections(int(l.open.Add(1)))
		wg.Go(func() {
			defer func() { l.m.Connections(int(l.open.Add(-1))) }()
			l.serveConn(ctx, raw)
		})
	}
	cancel()
	l.mu.Lock()
	for c := range l.all {
		c.close("shutdown")
	}
	l.mu.Unlock()
	wg.Wait()
	return err
}

// Stream returns the newest live connection of the NAS named name, for
// Disconnect/CoA down it (dynauth.Sender.Via).
func (l *Listener) Stream(name string) (dynauth.Stream, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best *conn
	for c := range l.byName[name] {
		if best == nil || c.seq > best.seq {
			best = c
		}
	}
	if best == nil {
		return nil, false
	}
	return best, true
}

// Connected reports how many live connections the NAS named name holds.
func (l *Listener) Connected(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byName[name])
}

var connSeq atomic.Uint64

// register adds an identified connection unless its NAS is at its limit.
func (l *Listener) register(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.id.source == "hardbound" && c.epoch != l.epoch {
		return false
	}
	set := l.byName[c.id.name]
	if len(set) >= l.cfg.MaxPerNAS {
		return false
	}
	if set == nil {
		set = map[*conn]struct{}{}
		l.byName[c.id.name] = set
	}
	c.seq = connSeq.Add(1)
	set[c] = struct{}{}
	return true
}

func (l *Listener) track(c *conn, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.all[c] = struct{}{}
		c.epoch = l.epoch
		return
	}
	delete(l.all, c)
	if set := l.byName[c.id.name]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(l.byName, c.id.name)
		}
	}
}

// onChange closes the connections a committed store change unauthorizes:
// a revoked NAS certificate, a NAS record no longer active, or (after
// ChangeReset) every connection identified through the store, which
// reconnects and is identified again. It runs while the store holds its
// writers, so it only marks and closes sockets.
func (l *Listener) onChange(ch store.Change) {
	var certs []store.Hash
	nas := ""
	all := false
	switch ch.Kind {
	case store.ChangeCertRevoked:
		certs = append(certs, ch.CertSHA256)
	case store.ChangeDeviceRevoked:
		for _, c := range ch.Certs {
			certs = append(certs, c.SHA256)
		}
		nas = ch.DeviceID
	case store.ChangeDevice:
		if ch.Device != nil && ch.Device.Status != store.DeviceActive {
			nas = ch.DeviceID
		}
	case store.ChangeReset:
		all = true
	default:
		return
	}
	l.id.forget(certs, nas, all)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
	for _, set := range l.byName { // identified connections only: c.id is set
		for c := range set {
			if c.id.source != "hardbound" {
				continue
			}
			l.closeIf(c, ch, certs, nas, all)
		}
	}
}

func (l *Listener) closeIf(c *conn, ch store.Change, certs []store.Hash, nas string, all bool) {
	{
		hit := all || (nas != "" && DeviceID(c.id.name) == nas)
		for _, h := range certs {
			hit = hit || h == c.id.cert
		}
		if hit {
			l.log.Info("closing connection of a revoked NAS", "nas", c.id.name, "from", c.from.String(), "change", ch.Kind.String())
			c.close("revoked")
		}
	}
}
