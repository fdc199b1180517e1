package eaptls

import (
	"net"
	"sync"
	"time"
)

// memConn is the in-memory net.Conn under one tls.Conn. The EAP driver
// (Session.Step / Peer.Step) feeds a whole reassembled peer message and then
// waits until the TLS goroutine either blocks in Read with nothing left to
// read (its flight is complete) or finishes. No polling: both sides wait on
// one sync.Cond.
type memConn struct {
	pool *bufPool

	mu       sync.Mutex
	cond     sync.Cond
	in       []byte // unread inbound bytes; aliases the driver's buffer
	out      []byte // bytes written by TLS since the last drain
	reading  bool   // TLS goroutine is blocked in Read on an empty inbound
	closed   bool
	closeErr error
	done     bool  // TLS goroutine returned
	err      error // its result
}

// connStatus is what the driver learns after one exchange.
type connStatus struct {
	done     bool
	err      error
	closed   bool
	closeErr error
}

func (c *memConn) init(pool *bufPool) {
	c.pool = pool
	c.cond.L = &c.mu
}

// Read blocks until inbound data arrives or the conn is closed. Returning
// (0, nil) would make crypto/tls spin.
func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.in) == 0 {
		if c.closed {
			return 0, net.ErrClosed
		}
		if !c.reading {
			c.reading = true
			c.cond.Broadcast()
		}
		c.cond.Wait()
	}
	c.reading = false
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// Write appends to the outbound flight.
func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.out == nil {
		c.out = c.pool.get()
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

// Close wakes a blocked Read (which then fails) and a waiting driver.
func (c *memConn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

func (c *memConn) closeWith(err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.closeErr = err
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// finish records the TLS goroutine's result and wakes the driver.
func (c *memConn) finish(err error) {
	c.mu.Lock()
	c.done = true
	c.err = err
	c.cond.Broadcast()
	c.mu.Unlock()
}

// exchange hands in to TLS (nil just waits for the first flight) and returns
// everything TLS wrote until its flight was complete. in must stay valid
// until exchange returns; leftovers are dropped, never retained.
func (c *memConn) exchange(in []byte) ([]byte, connStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(in) > 0 {
		c.in = in
		c.reading = false
		c.cond.Broadcast()
	}
	// After Close the driver still waits for the goroutine to return (its
	// Read fails at once; only an Authorizer ignoring its ctx can delay
	// it), so everything the goroutine wrote is visible to the driver.
	for !c.done && !(c.reading && len(c.in) == 0 && !c.closed) {
		c.cond.Wait()
	}
	out := c.out
	c.out = nil
	c.in = nil
	return out, connStatus{done: c.done, err: c.err, closed: c.closed, closeErr: c.closeErr}
}

type eapAddr struct{}

func (eapAddr) Network() string { return "eap" }
func (eapAddr) String() string  { return "eap" }

func (c *memConn) LocalAddr() net.Addr              { return eapAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return eapAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
