package eaptls

import (
	"iter"
	"net"
	"sync"
	"time"
)

// memConn is the in-memory net.Conn under one tls.Conn. crypto/tls only
// offers a blocking API, so the handshake runs on its own stack, but as a
// coroutine (iter.Pull) rather than a goroutine: the EAP driver (Session.Step
// / Peer.Step) hands in a whole reassembled peer message and switches to the
// handshake, which runs on the driver's thread until it blocks in Read with
// nothing left to read (its flight is complete) or finishes, and switches
// back. No scheduler round trip, no wake-up of another thread, no lock
// hand-off per EAP round: on a 2-core machine those cost more than the
// RADIUS layer around them.
type memConn struct {
	pool *bufPool

	// drive is held by whoever runs the coroutine (exchange, or closeWith
	// stopping it); it guards everything below it. The coroutine itself
	// never takes it: it only runs while its driver holds it.
	drive sync.Mutex
	next  func() (struct{}, bool)
	stop  func()
	yield func(struct{}) bool
	in    []byte // unread inbound bytes; aliases the driver's buffer
	out   []byte // bytes written by TLS since the last drain
	done  bool   // the handshake function returned
	err   error  // its result

	// mu guards closed and closeErr: Close may come from any goroutine
	// while the coroutine runs (its Read checks them).
	mu       sync.Mutex
	closed   bool
	closeErr error
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
}

// start prepares the handshake coroutine; it first runs at the next
// exchange. run must call finish before it returns.
func (c *memConn) start(run func()) {
	c.drive.Lock()
	defer c.drive.Unlock()
	if c.next != nil {
		return
	}
	c.next, c.stop = iter.Pull(func(yield func(struct{}) bool) {
		c.yield = yield
		growStack()
		run()
	})
}

func (c *memConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Read returns inbound data; with none left it yields to the driver (the
// flight is complete) and continues once the driver brings more. Returning
// (0, nil) would make crypto/tls spin.
func (c *memConn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		if c.isClosed() {
			return 0, net.ErrClosed
		}
		if !c.yield(struct{}{}) { // stopped by closeWith
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// Write appends to the outbound flight.
func (c *memConn) Write(p []byte) (int, error) {
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	if c.out == nil {
		c.out = c.pool.get()
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

// Close fails the handshake's next Read and ends the coroutine.
func (c *memConn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

// closeWith may be called from any goroutine. A handshake suspended in
// Read is resumed with an error and runs to its end here, so no coroutine
// outlives its session; one running on a driver ends there first (its
// next Read fails), and closeWith waits for that.
func (c *memConn) closeWith(err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.closeErr = err
	}
	c.mu.Unlock()
	c.drive.Lock()
	defer c.drive.Unlock()
	c.stopLocked()
}

// stopLocked ends the coroutine (iter.Pull's stop is idempotent, and next
// after it returns at once).
func (c *memConn) stopLocked() {
	if c.stop != nil {
		c.in = nil
		c.stop()
		// Whatever TLS wrote while unwinding (an alert) has no reader.
		c.pool.put(c.out)
		c.out = nil
	}
}

// finish records the handshake function's result; called on the coroutine
// as its last step.
func (c *memConn) finish(err error) {
	c.done = true
	c.err = err
}

// result is the handshake function's outcome so far.
func (c *memConn) result() (done bool, err error) {
	c.drive.Lock()
	defer c.drive.Unlock()
	return c.done, c.err
}

// exchange hands in to TLS (nil just runs it to its first flight) and
// returns everything TLS wrote until its flight was complete. in must stay
// valid until exchange returns; leftovers are dropped, never retained.
func (c *memConn) exchange(in []byte) ([]byte, connStatus) {
	c.drive.Lock()
	defer c.drive.Unlock()
	if c.next != nil && !c.done {
		c.in = in
		c.next()
	}
	out := c.out
	c.out = nil
	c.in = nil
	c.mu.Lock()
	closed, closeErr := c.closed, c.closeErr
	c.mu.Unlock()
	if closed {
		// A close during the run: the coroutine may still be suspended in
		// Read if the close came after that Read's check.
		c.stopLocked()
	}
	return out, connStatus{done: c.done, err: c.err, closed: closed, closeErr: closeErr}
}

type eapAddr struct{}

func (eapAddr) Network() string { return "eap" }
func (eapAddr) String() string  { return "eap" }

func (c *memConn) LocalAddr() net.Addr              { return eapAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return eapAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
