package radius

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"hardbound/eaptls"
	"hardbound/posture"
)

// reader is one socket's receive loop.
//
// Packets normally go to the worker pool. When the server is otherwise idle
// (no packet in flight) and nothing more is queued on the socket, the
// reader answers the packet itself: handing a single packet to a parked
// worker costs a thread wake-up and a scheduler round trip on every EAP
// round, more CPU than the RADIUS layer itself at low and moderate load.
// Such a packet only computes (the TLS round, a posture decision from
// memory, encoding); before anything that may block — a posture decision
// that needs the store — the packet's Authorizer (authorize) calls
// takeOver, and a relief goroutine reads (handing everything to the
// workers) until the reader is back, so no traffic waits behind a slow
// packet.
type reader struct {
	s     *Server
	conn  net.PacketConn
	uc    *net.UDPConn
	rc    syscall.RawConn // nil: never answer inline
	port  byte
	jobs  chan<- job
	spawn func(func()) bool // runs a goroutine Serve waits for; false once Serve is stopping
	// authorize decides the packets this reader answers itself
	// (Server.authorizer with this reader).
	authorize eaptls.Authorizer[posture.Verdict]

	busy   atomic.Bool // answering a packet itself
	relief atomic.Bool // a relief goroutine is reading
}

func (s *Server) newReader(conn net.PacketConn, port byte, jobs chan<- job, spawn func(func()) bool) *reader {
	r := &reader{s: s, conn: conn, port: port, jobs: jobs, spawn: spawn}
	r.authorize = s.authorizer(r)
	r.uc, _ = conn.(*net.UDPConn)
	// Only authentication rounds are answered inline: accounting waits for a
	// synced store write, and with audit_sync so does every decision.
	if r.uc != nil && port == portAuth && !s.cfg.AuditSync {
		r.rc, _ = r.uc.SyscallConn()
	}
	return r
}

// run reads until the conn is closed.
func (r *reader) run(ctx context.Context) error {
	for {
		j, err := r.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if j.buf == nil {
			continue
		}
		if r.s.inflight.Add(1) == 1 && r.rc != nil && !pending(r.rc) {
			r.busy.Store(true)
			r.s.process(ctx, j, r)
			r.busy.Store(false)
			r.s.inflight.Add(-1)
			continue
		}
		r.dispatch(j)
	}
}

// takeOver starts a relief reader, called while the reader answers a
// packet itself, before that packet blocks. The relief reads until the
// reader is back (busy cleared) or ctx ends.
func (r *reader) takeOver(ctx context.Context) {
	if !r.relief.CompareAndSwap(false, true) {
		return
	}
	started := r.spawn(func() {
		defer r.relief.Store(false)
		for r.busy.Load() {
			j, err := r.next(ctx)
			if err != nil {
				return
			}
			if j.buf != nil {
				r.s.inflight.Add(1)
				r.dispatch(j)
			}
		}
	})
	if !started {
		r.relief.Store(false)
		return
	}
	r.s.reliefs.Add(1)
}

// dispatch queues j for the workers; a full queue drops it. inflight was
// counted by the caller.
func (r *reader) dispatch(j job) {
	select {
	case r.jobs <- j:
	default:
		r.s.inflight.Add(-1)
		r.s.bufs.Put(j.buf)
		r.s.metrics.Drop(DropQueueFull)
	}
}

// next reads one datagram. A job without buf means "nothing to do" (a
// transient error or a datagram without a usable source); an error ends
// the loop.
func (r *reader) next(ctx context.Context) (job, error) {
	bp := r.s.bufs.Get().(*[]byte)
	var (
		n    int
		from netip.AddrPort
		err  error
	)
	if r.uc != nil {
		n, from, err = r.uc.ReadFromUDPAddrPort(*bp)
	} else {
		var a net.Addr
		n, a, err = r.conn.ReadFrom(*bp)
		if ua, ok := a.(*net.UDPAddr); ok {
			from = ua.AddrPort()
		}
	}
	if err != nil {
		r.s.bufs.Put(bp)
		if ctx.Err() != nil {
			return job{}, ctx.Err()
		}
		if errors.Is(err, net.ErrClosed) {
			return job{}, fmt.Errorf("radius: listener closed: %w", err)
		}
		r.s.log.Warn("read failed", "err", err)
		select {
		case <-ctx.Done():
			return job{}, ctx.Err()
		case <-time.After(10 * time.Millisecond): // avoid spinning on a persistent error
		}
		return job{}, nil
	}
	if !from.IsValid() {
		r.s.bufs.Put(bp)
		r.s.metrics.Drop(DropUnknownClient)
		return job{}, nil
	}
	return job{buf: bp, n: n, from: from, port: r.port, conn: r.conn}, nil
}
