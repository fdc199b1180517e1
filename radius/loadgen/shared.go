package loadgen

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"hardbound/radius/packet"
)

// shared is one RADIUS/TLS connection carrying every worker's requests
// (RadSec.Shared), as a NAS with one connection to its server does. Each
// worker gets a view (sharedConn) that eapclient uses as its Stream:
// writes go to the connection, and a reader goroutine hands each reply to
// the view whose request has its Identifier. Two views never have the same
// Identifier outstanding: a write waits until it is free.
type shared struct {
	conn *tls.Conn
	wmu  sync.Mutex

	mu      sync.Mutex
	cond    *sync.Cond
	waiting map[byte]*sharedConn // outstanding Identifier -> view
	err     error                // the reader's end
}

func newShared(conn *tls.Conn) *shared {
	s := &shared{conn: conn, waiting: map[byte]*sharedConn{}}
	s.cond = sync.NewCond(&s.mu)
	go s.read()
	return s
}

func (s *shared) read() {
	buf := make([]byte, packet.MaxLen)
	for {
		b, err := packet.ReadStream(s.conn, buf, nil)
		s.mu.Lock()
		if err != nil {
			s.err = err
			for _, v := range s.waiting {
				v.deliver(nil)
			}
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		v := s.waiting[b[1]]
		if v != nil {
			delete(s.waiting, b[1])
			s.cond.Broadcast()
		}
		s.mu.Unlock()
		if v != nil {
			v.deliver(append([]byte(nil), b...))
		}
	}
}

func (s *shared) view() *sharedConn { return &sharedConn{s: s, in: make(chan []byte, 1)} }

// sharedConn is one worker's view of the shared connection: a net.Conn
// whose reads return the replies to its own requests.
type sharedConn struct {
	s        *shared
	in       chan []byte
	pending  []byte // the reply being read
	id       byte   // Identifier of the request last written
	deadline time.Time
	mu       sync.Mutex
}

func (v *sharedConn) deliver(b []byte) {
	select {
	case v.in <- b:
	default:
	}
}

// Write sends one request, once its Identifier is free on the connection.
func (v *sharedConn) Write(b []byte) (int, error) {
	if len(b) < packet.HeaderLen {
		return 0, errors.New("loadgen: short packet")
	}
	s := v.s
	s.mu.Lock()
	for s.waiting[b[1]] != nil && s.err == nil {
		s.cond.Wait()
	}
	if s.err != nil {
		s.mu.Unlock()
		return 0, s.err
	}
	s.waiting[b[1]] = v
	v.id = b[1]
	s.mu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(v.readDeadline())
	return s.conn.Write(b)
}

// Read returns the bytes of this view's next reply.
func (v *sharedConn) Read(p []byte) (int, error) {
	if len(v.pending) == 0 {
		var timeout <-chan time.Time
		if d := v.readDeadline(); !d.IsZero() {
			t := time.NewTimer(time.Until(d))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case b := <-v.in:
			if b == nil {
				return 0, net.ErrClosed
			}
			v.pending = b
		case <-timeout:
			// Free the Identifier for the other views: no reply is coming.
			s := v.s
			s.mu.Lock()
			if s.waiting[v.id] == v {
				delete(s.waiting, v.id)
				s.cond.Broadcast()
			}
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, v.pending)
	v.pending = v.pending[n:]
	return n, nil
}

func (v *sharedConn) readDeadline() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.deadline
}

func (v *sharedConn) SetDeadline(t time.Time) error {
	v.mu.Lock()
	v.deadline = t
	v.mu.Unlock()
	return nil
}
func (v *sharedConn) SetReadDeadline(t time.Time) error { return v.SetDeadline(t) }
func (v *sharedConn) SetWriteDeadline(time.Time) error  { return nil }
func (v *sharedConn) Close() error                      { return nil }
func (v *sharedConn) LocalAddr() net.Addr               { return v.s.conn.LocalAddr() }
func (v *sharedConn) RemoteAddr() net.Addr              { return v.s.conn.RemoteAddr() }
