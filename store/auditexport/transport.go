package auditexport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// transport delivers encoded batches to one receiver.
type transport interface {
	// send writes one batch of items. For http a nil error is the
	// collector's acknowledgement; for streams it means the bytes are in
	// the socket.
	send(ctx context.Context, items []item) error
	// unsettled reports whether bytes sent may not have reached the
	// receiver yet (still queued or unacknowledged in the socket), and an
	// error once the connection is known to be dead (the receiver closed
	// it or reset it).
	unsettled() (bool, error)
	close() error
}

// errPeerClosed is a stream receiver that closed the connection.
var errPeerClosed = errors.New("auditexport: receiver closed the connection")

// streamTransport is syslog over TCP or TLS: RFC 6587 octet counting
// ("MSG-LEN SP SYSLOG-MSG"), which RFC 5425 also uses over TLS.
type streamTransport struct {
	conn    net.Conn
	raw     syscall.Conn // the TCP socket under TLS, for SIOCOUTQ
	format  syslogFormat
	timeout time.Duration
	buf     []byte
	msg     []byte

	mu   sync.Mutex
	dead error // set by the reader once the receiver closed or reset
}

func dialStream(ctx context.Context, network, addr string, tc *tls.Config, f syslogFormat, timeout time.Duration) (*streamTransport, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t := &streamTransport{conn: c, format: f, timeout: timeout}
	t.raw, _ = c.(syscall.Conn)
	if tc != nil {
		tlc := tls.Client(c, tc)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tlc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		t.conn = tlc
	}
	go t.watch()
	return t, nil
}

// watch reads the connection, on which a syslog receiver never sends, to
// learn at once when it closes or resets it.
func (t *streamTransport) watch() {
	var b [512]byte
	for {
		_, err := t.conn.Read(b[:])
		if err == nil {
			continue // nothing is expected; discard
		}
		if errors.Is(err, io.EOF) {
			err = errPeerClosed
		}
		t.mu.Lock()
		t.dead = err
		t.mu.Unlock()
		return
	}
}

func (t *streamTransport) send(ctx context.Context, items []item) error {
	if _, err := t.unsettled(); err != nil {
		return err
	}
	t.buf = t.buf[:0]
	for _, it := range items {
		var err error
		t.msg, err = t.format.appendMessage(t.msg[:0], it)
		if err != nil {
			return err
		}
		t.buf = strconv.AppendInt(t.buf, int64(len(t.msg)), 10)
		t.buf = append(t.buf, ' ')
		t.buf = append(t.buf, t.msg...)
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	t.conn.SetWriteDeadline(deadline)
	_, err := t.conn.Write(t.buf)
	if len(t.buf) > 1<<20 {
		t.buf = nil // do not keep a burst's buffer
	}
	return err
}

func (t *streamTransport) unsettled() (bool, error) {
	t.mu.Lock()
	dead := t.dead
	t.mu.Unlock()
	if dead != nil {
		return true, dead
	}
	n, ok := outq(t.raw)
	if !ok {
		return false, nil // no way to tell: ConfirmAfter alone decides
	}
	return n > 0, nil
}

func (t *streamTransport) close() error { return t.conn.Close() }

// udpTransport is RFC 5426: one message per datagram, no acknowledgement
// of any kind, so delivery is best effort.
type udpTransport struct {
	conn   net.Conn
	format syslogFormat
	msg    []byte
}

// maxUDPMessage is the largest datagram sent (IPv4's limit less headers).
const maxUDPMessage = 65507

func dialUDP(ctx context.Context, addr string, f syslogFormat, timeout time.Duration) (*udpTransport, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return &udpTransport{conn: c, format: f}, nil
}

func (t *udpTransport) send(_ context.Context, items []item) error {
	for _, it := range items {
		var err error
		t.msg, err = t.format.appendMessage(t.msg[:0], it)
		if err != nil {
			return err
		}
		if len(t.msg) > maxUDPMessage {
			return fmt.Errorf("auditexport: seq %d: %d bytes do not fit a UDP datagram", it.seq(), len(t.msg))
		}
		if _, err := t.conn.Write(t.msg); err != nil {
			return err
		}
	}
	return nil
}

func (t *udpTransport) unsettled() (bool, error) { return false, nil }
func (t *udpTransport) close() error             { return t.conn.Close() }

// httpTransport POSTs JSON lines; a 2xx answer acknowledges the batch.
type httpTransport struct {
	client *http.Client
	url    string
	token  string // bearer token; empty: none (mutual TLS)
	host   string
	buf    bytes.Buffer
	line   []byte
}

// maxErrorBody bounds what is read of a collector's error answer.
const maxErrorBody = 4 << 10

func (t *httpTransport) send(ctx context.Context, items []item) error {
	t.buf.Reset()
	for _, it := range items {
		var err error
		t.line, err = it.appendJSON(t.line[:0], t.host)
		if err != nil {
			return err
		}
		t.buf.Write(t.line)
		t.buf.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(t.buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // the URL is in the config; the cause is what matters
		}
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s: %q", errRefused, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// errRefused is a collector that answered a batch with a non-2xx status.
var errRefused = errors.New("auditexport: collector refused the batch")

func (t *httpTransport) unsettled() (bool, error) { return false, nil }
func (t *httpTransport) close() error {
	t.client.CloseIdleConnections()
	return nil
}
