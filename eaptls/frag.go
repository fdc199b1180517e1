package eaptls

import (
	"encoding/binary"
	"fmt"
	"sync"
)

const (
	defaultMTU = 1020
	minMTU     = 100
	// fragOverhead is EAP header (4) + type (1) + flags (1) + TLS Message
	// Length (4): the worst case per fragment (RFC 3579 §2.4 sizing).
	fragOverhead = 14
	// maxFragment keeps one EAP packet, split into 253-byte EAP-Message
	// attributes, well inside a 4096-byte RADIUS packet with room for
	// State, Message-Authenticator and Proxy-State.
	maxFragment = 3000
	// minFragment is the smallest accepted ServerConfig.MaxFragment; it
	// matches what Framed-MTU 100 (the smallest honoured) yields.
	minFragment = minMTU - fragOverhead
)

// fragmentSize returns the TLS bytes per EAP-TLS fragment for a Framed-MTU
// and an optional configured cap.
func fragmentSize(mtu, capBytes int) int {
	if mtu < minMTU {
		mtu = defaultMTU
	}
	n := mtu - fragOverhead
	if capBytes > 0 && capBytes < n {
		n = capBytes
	}
	if n > maxFragment {
		n = maxFragment
	}
	return n
}

// bufPool recycles TLS flight and reassembly buffers. It lives in Server
// (not a package variable) so nothing global is mutable.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() []byte {
	if bp == nil {
		return nil // unpooled (Peer): let append size it
	}
	if b, ok := bp.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4096)
}

func (bp *bufPool) put(b []byte) {
	// Oversized buffers (a 64 KiB reassembly) are left to the GC so the
	// pool does not pin them.
	if bp == nil || b == nil || cap(b) > 16<<10 {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}

// reassembler collects EAP-TLS fragments into one TLS message (RFC 5216
// §2.1.5). L is accepted on every fragment and on unfragmented messages
// (RFC 9190 §2.1.5); a later L that disagrees with the first is rejected.
type reassembler struct {
	pool   *bufPool
	max    int
	active bool
	total  int // declared TLS Message Length, -1 if none seen yet
	buf    []byte
}

// add takes one fragment's flags and the bytes after the flags octet. It
// returns the whole message once the last fragment arrived. For an
// unfragmented message the result aliases rest (no copy).
func (r *reassembler) add(flags byte, rest []byte) (msg []byte, complete bool, err error) {
	declared := -1
	data := rest
	if flags&flagLength != 0 {
		if len(rest) < 4 {
			return nil, false, fmt.Errorf("%w: L flag without TLS Message Length", ErrMalformed)
		}
		v := binary.BigEndian.Uint32(rest[:4])
		if v > uint32(r.max) {
			return nil, false, fmt.Errorf("%w: declared %d bytes, limit %d", ErrTooLarge, v, r.max)
		}
		declared = int(v)
		data = rest[4:]
	}
	more := flags&flagMore != 0
	if more && len(data) == 0 {
		return nil, false, fmt.Errorf("%w: empty fragment with M flag", ErrMalformed)
	}
	if !r.active {
		if !more {
			if len(data) == 0 {
				return nil, false, fmt.Errorf("%w: no TLS data", ErrMalformed)
			}
			if declared >= 0 && declared != len(data) {
				return nil, false, fmt.Errorf("%w: TLS Message Length %d but %d bytes", ErrMalformed, declared, len(data))
			}
			if len(data) > r.max {
				return nil, false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), r.max)
			}
			return data, true, nil
		}
		if declared >= 0 && len(data) >= declared {
			return nil, false, fmt.Errorf("%w: first fragment already holds the declared %d bytes", ErrMalformed, declared)
		}
		r.active = true
		r.total = declared
		r.buf = append(r.pool.get(), data...)
	} else {
		if declared >= 0 {
			if r.total >= 0 && declared != r.total {
				return nil, false, fmt.Errorf("%w: TLS Message Length changed from %d to %d", ErrMalformed, r.total, declared)
			}
			r.total = declared
		}
		if len(r.buf)+len(data) > r.max {
			return nil, false, fmt.Errorf("%w: reassembly beyond %d bytes", ErrTooLarge, r.max)
		}
		r.buf = append(r.buf, data...)
	}
	if len(r.buf) > r.max {
		return nil, false, fmt.Errorf("%w: reassembly beyond %d bytes", ErrTooLarge, r.max)
	}
	if r.total >= 0 && len(r.buf) > r.total {
		return nil, false, fmt.Errorf("%w: %d bytes exceed TLS Message Length %d", ErrMalformed, len(r.buf), r.total)
	}
	if more {
		return nil, false, nil
	}
	if r.total >= 0 && len(r.buf) != r.total {
		return nil, false, fmt.Errorf("%w: got %d bytes, TLS Message Length %d", ErrMalformed, len(r.buf), r.total)
	}
	r.active = false
	return r.buf, true, nil
}

// release returns the reassembly buffer once TLS consumed it.
func (r *reassembler) release() {
	if r.buf != nil {
		r.pool.put(r.buf)
		r.buf = nil
	}
	r.active = false
	r.total = -1
}

// fragmenter slices one outbound TLS flight into EAP-TLS packets. L is set
// only on the first fragment of a fragmented message, never on an
// unfragmented one (RFC 9190 §2.1.5).
type fragmenter struct {
	pool *bufPool
	size int
	buf  []byte
	off  int
}

func (f *fragmenter) load(b []byte) {
	f.buf, f.off = b, 0
}

func (f *fragmenter) pending() bool { return f.off < len(f.buf) }

// next builds the next fragment; after the last one the buffer goes back to
// the pool.
func (f *fragmenter) next(code, id byte) []byte {
	rem := len(f.buf) - f.off
	n := min(rem, f.size)
	var flags byte
	if n < rem {
		flags = flagMore
		if f.off == 0 {
			flags |= flagLength
		}
	}
	pkt := tlsPacket(code, id, flags, len(f.buf), f.buf[f.off:f.off+n])
	f.off += n
	if f.off >= len(f.buf) {
		f.reset()
	}
	return pkt
}

func (f *fragmenter) reset() {
	if f.buf != nil {
		f.pool.put(f.buf)
	}
	f.buf, f.off = nil, 0
}
