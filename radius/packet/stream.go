package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFraming is wrapped when a stream's next packet header is impossible
// (Length below 20 or above 4096): on RADIUS over TCP or TLS (RFC 6613
// §2.6.4, RFC 6614) the connection must then be closed, because nothing
// says where the next packet starts.
var ErrFraming = errors.New("packet: broken stream framing")

// ReadStream reads the next packet of a stream transport from r into buf
// (at least MaxLen bytes) and returns it: packets follow each other framed
// by their own Length. first, if not nil, is called once the first octet
// arrived, so the caller can move from an idle deadline to a per-packet
// one. An EOF between packets is io.EOF, inside one io.ErrUnexpectedEOF.
func ReadStream(r io.Reader, buf []byte, first func()) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return nil, err
	}
	if first != nil {
		first()
	}
	if _, err := io.ReadFull(r, buf[1:4]); err != nil {
		return nil, noEOF(err)
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	if n < HeaderLen || n > MaxLen {
		return nil, fmt.Errorf("%w: length %d", ErrFraming, n)
	}
	if _, err := io.ReadFull(r, buf[4:n]); err != nil {
		return nil, noEOF(err)
	}
	return buf[:n], nil
}

// noEOF turns an EOF inside a packet into io.ErrUnexpectedEOF: only an EOF
// between packets is a clean close.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
