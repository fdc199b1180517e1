package dynauth

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"layeh.com/radius"

	"hardbound/radius/packet"
)

// muxer shares connected UDP sockets per NAS address. Identifiers are the
// demultiplexing key, so one socket carries at most 256 outstanding
// Identifiers; more concurrent requests open more sockets.
type muxer struct {
	m     Metrics
	mu    sync.Mutex
	pools map[string][]*muxConn
	// onAcquire, if set (tests), sees +1 per lease taken and -1 per release.
	onAcquire func(delta int32)
}

type muxConn struct {
	addr    string
	conn    *net.UDPConn
	waiters [256]chan []byte // guarded by muxer.mu; nil = Identifier free
	used    int
	next    byte
}

// lease is one request's hold on a socket and its Identifiers.
type lease struct {
	mc  *muxConn
	ids []byte
	ch  chan []byte
}

func newMuxer(m Metrics) *muxer {
	return &muxer{m: m, pools: make(map[string][]*muxConn)}
}

// acquire reserves one Identifier on a socket to addr, opening one if all
// are full.
func (x *muxer) acquire(addr string) (*lease, error) {
	l := &lease{ch: make(chan []byte, 4)}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.onAcquire != nil {
		x.onAcquire(1)
	}
	for _, mc := range x.pools[addr] {
		if id, ok := mc.take(l.ch); ok {
			l.mc, l.ids = mc, append(l.ids, id)
			return l, nil
		}
	}
	// Rare (first request, or 256 outstanding): dialing a UDP socket does
	// not touch the network, so holding the lock is fine.
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dynauth: resolve %s: %w", addr, err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("dynauth: dial %s: %w", addr, err)
	}
	mc := &muxConn{addr: addr, conn: conn}
	x.pools[addr] = append(x.pools[addr], mc)
	go x.read(mc)
	id, _ := mc.take(l.ch)
	l.mc, l.ids = mc, []byte{id}
	return l, nil
}

// take reserves the next free Identifier (round robin, so a late answer to
// a finished request rarely meets a new request with the same Identifier;
// if it does, the authenticator check discards it).
func (mc *muxConn) take(ch chan []byte) (byte, bool) {
	if mc.used >= len(mc.waiters) {
		return 0, false
	}
	for range len(mc.waiters) {
		id := mc.next
		mc.next++
		if mc.waiters[id] == nil {
			mc.waiters[id] = ch
			mc.used++
			return id, true
		}
	}
	return 0, false
}

// nextID gives a retransmission a fresh Identifier on the same socket, or
// the last one if the socket has none free.
func (x *muxer) nextID(l *lease) byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	if id, ok := l.mc.take(l.ch); ok {
		l.ids = append(l.ids, id)
		return id
	}
	return l.ids[len(l.ids)-1]
}

// release frees the lease's Identifiers and closes the socket when it
// carries no request any more.
func (x *muxer) release(l *lease) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.onAcquire != nil {
		x.onAcquire(-1)
	}
	mc := l.mc
	for _, id := range l.ids {
		if mc.waiters[id] == l.ch {
			mc.waiters[id] = nil
			mc.used--
		}
	}
	if mc.used > 0 {
		return
	}
	pool := x.pools[mc.addr]
	for i, c := range pool {
		if c == mc {
			pool = append(pool[:i], pool[i+1:]...)
			break
		}
	}
	if len(pool) == 0 {
		delete(x.pools, mc.addr)
	} else {
		x.pools[mc.addr] = pool
	}
	mc.conn.Close() // ends read
}

// read delivers datagrams to the request holding their Identifier. It does
// not authenticate: the waiting request does, against its own bytes.
func (x *muxer) read(mc *muxConn) {
	buf := make([]byte, radius.MaxPacketLength+1)
	for {
		n, err := mc.conn.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // ICMP port unreachable for an earlier datagram
			}
			return // closed (or broken: waiting requests time out)
		}
		if n < packet.HeaderLen {
			x.m.InvalidResponse("short")
			continue
		}
		x.mu.Lock()
		ch := mc.waiters[buf[1]]
		x.mu.Unlock()
		if ch == nil {
			x.m.InvalidResponse("identifier")
			continue
		}
		select {
		case ch <- append([]byte(nil), buf[:n]...):
		default: // the request already has answers queued; it retransmits if they were bad
		}
	}
}
