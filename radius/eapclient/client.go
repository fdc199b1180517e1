// Package eapclient is a RADIUS client that acts as a NAS (an 802.1X
// authenticator) and drives EAP-TLS conversations with an eaptls.Peer
// against any RFC 2865/3579-conformant RADIUS server: hardbound, FreeRADIUS,
// or anything else.
//
// It is the engine of `hardbound bench eaptls` and of integration tests. It
// does what a careful NAS does: EAP split into 253-byte EAP-Message
// attributes, Message-Authenticator on every Access-Request, State echoed,
// the identical packet retransmitted on timeout (same Identifier and Request
// Authenticator, RFC 5080 §2.2.1), the Response Authenticator and the
// Message-Authenticator of every reply verified (replies without a valid one
// are discarded, as BlastRADIUS mitigations require), and on Access-Accept the
// MS-MPPE keys decrypted and compared with the peer's own MSK.
//
// It depends on no hardbound-specific attribute.
package eapclient

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/vendors/microsoft"

	"hardbound/eaptls"
	"hardbound/radius/packet"
)

// RADIUS attribute types used here (RFC 2865, 2868, 2869).
const (
	attrUserName         = 1
	attrNASIPAddress     = 4
	attrFramedMTU        = 12
	attrReplyMessage     = 18
	attrState            = 24
	attrClass            = 25
	attrSessionTimeout   = 27
	attrCallingStationID = 31
	attrNASIdentifier    = 32
	attrAcctStatusType   = 40
	attrNASPortType      = 61
	attrEAPMessage       = 79
	attrMessageAuth      = 80
	attrTunnelPrivateGID = 81

	maxAttrValue = packet.MaxValue
)

// NAS-Port-Type values (RFC 2865, RFC 3580).
const (
	PortTypeEthernet = 15
	PortTypeWireless = 19 // Wireless - IEEE 802.11
)

// Accounting status types (RFC 2866 Acct-Status-Type).
const (
	AcctStart         AcctStatus = 1
	AcctStop          AcctStatus = 2
	AcctInterimUpdate AcctStatus = 3
)

// AcctStatus is an Acct-Status-Type value.
type AcctStatus uint32

// Sentinel errors; match with errors.Is.
var (
	// ErrTimeout: no valid reply after all retransmissions.
	ErrTimeout = errors.New("eapclient: no reply from server")
	// ErrBadReply: replies arrived but none verified (wrong Response
	// Authenticator, missing or wrong Message-Authenticator: usually a
	// wrong shared secret).
	ErrBadReply = errors.New("eapclient: replies failed verification")
	// ErrProtocol: the server's answer made no sense for an EAP
	// conversation (unexpected code, no EAP-Message, too many rounds,
	// Accept without EAP-Success).
	ErrProtocol = errors.New("eapclient: protocol error")
	// ErrPeer: the supplicant failed on a challenge (e.g. the server's
	// certificate did not verify).
	ErrPeer = errors.New("eapclient: peer failed")
)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// Server is the authentication server, host:port (port default 1812).
	Server string
	// AcctServer is the accounting server; default the Server host, port 1813.
	AcctServer string
	// Secret is the RADIUS shared secret. Required.
	Secret []byte
	// NASIdentifier is sent as NAS-Identifier; default "hardbound-eapclient".
	NASIdentifier string
	// NASIPAddress is sent as NAS-IP-Address; default the local address
	// the socket uses to reach Server (IPv4 only).
	NASIPAddress netip.Addr
	// CallingStationID is the supplicant's MAC; default a random
	// locally administered one per Client.
	CallingStationID string
	// FramedMTU is sent as Framed-MTU; 0 means 1400 (eapol_test and
	// hostapd send 1400), negative means "don't send".
	FramedMTU int
	// PortType is NAS-Port-Type; 0 means PortTypeEthernet.
	PortType uint32
	// Timeout is the wait for one reply before retransmitting; default 2s.
	Timeout time.Duration
	// Retries is the number of retransmissions of one request; default 2.
	// Negative means none.
	Retries int
	// MaxRounds bounds the Access-Request/Challenge rounds of one
	// conversation; default 50.
	MaxRounds int
	// Stream, if set, carries every request and reply instead of UDP:
	// RADIUS/TLS (RFC 6614), a *tls.Conn to a radsec listener, with Secret
	// "radsec". Server is then unused. Requests are never retransmitted on
	// a stream (RFC 6613 §2.6.1): the reply is waited for Timeout times
	// (Retries+1). The Client does not close it.
	Stream net.Conn
}

// Result describes one conversation.
type Result struct {
	// Accepted is true on Access-Accept.
	Accepted bool
	// Reply is the final Access-Accept or Access-Reject, Request the
	// Access-Request it answered (its Authenticator decrypts MPPE keys).
	Reply, Request *radius.Packet
	// Convenience views of Reply.
	Class          []byte
	SessionTimeout time.Duration
	VLAN           string // Tunnel-Private-Group-ID without its tag
	ReplyMessage   string
	// RoundTrips counts request/reply exchanges (retransmissions excluded);
	// Retransmits counts retransmitted packets; Discarded counts replies
	// that failed verification.
	RoundTrips, Retransmits, Discarded int
	// KeysPresent: the Accept carried both MS-MPPE keys. KeysMatch: they
	// equal the peer's MSK[0:32] (Recv) and MSK[32:64] (Send).
	KeysPresent, KeysMatch bool
	// Resumed: the peer's TLS handshake resumed a session from a ticket
	// (set on Access-Accept).
	Resumed  bool
	Duration time.Duration
}

// Client is one simulated NAS with one UDP socket. A Client runs one
// exchange at a time (calls are serialized); use one Client per worker for
// concurrency.
type Client struct {
	cfg        Config
	sec        *packet.Secret
	auth, acct netip.AddrPort
	nasIP      netip.Addr

	mu   sync.Mutex
	conn *net.UDPConn
	id   byte
	buf  []byte
}

// New validates cfg, resolves the servers and opens the socket.
func New(cfg Config) (*Client, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("eapclient: secret is required")
	}
	if cfg.Server == "" && cfg.Stream == nil {
		return nil, errors.New("eapclient: server address is required")
	}
	if cfg.NASIdentifier == "" {
		cfg.NASIdentifier = "hardbound-eapclient"
	}
	if cfg.FramedMTU == 0 {
		cfg.FramedMTU = 1400
	}
	if cfg.PortType == 0 {
		cfg.PortType = PortTypeEthernet
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 2
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = 50
	}
	if cfg.Stream != nil {
		return &Client{cfg: cfg, sec: packet.NewSecret(cfg.Secret), nasIP: cfg.NASIPAddress, id: randomID(), buf: make([]byte, packet.MaxLen+1)}, nil
	}
	auth, err := resolve(cfg.Server, "1812")
	if err != nil {
		return nil, err
	}
	acctAddr := cfg.AcctServer
	if acctAddr == "" {
		acctAddr = net.JoinHostPort(auth.Addr().String(), "1813")
	}
	acct, err := resolve(acctAddr, "1813")
	if err != nil {
		return nil, err
	}
	if cfg.CallingStationID == "" {
		var m [6]byte
		if _, err := rand.Read(m[:]); err != nil {
			return nil, fmt.Errorf("eapclient: %w", err)
		}
		m[0] = m[0]&0xfc | 0x02 // locally administered, unicast
		cfg.CallingStationID = fmt.Sprintf("%02X-%02X-%02X-%02X-%02X-%02X", m[0], m[1], m[2], m[3], m[4], m[5])
	}
	nasIP := cfg.NASIPAddress
	if !nasIP.IsValid() {
		// A connected socket that never sends tells which local address
		// the kernel routes from.
		if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(auth)); err == nil {
			if a, ok := netip.AddrFromSlice(c.LocalAddr().(*net.UDPAddr).IP); ok && a.Unmap().Is4() {
				nasIP = a.Unmap()
			}
			c.Close()
		}
	}
	// Unconnected, so that one socket serves authentication and
	// accounting; replies are filtered by source address.
	lc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("eapclient: socket: %w", err)
	}
	return &Client{cfg: cfg, sec: packet.NewSecret(cfg.Secret), auth: auth, acct: acct, nasIP: nasIP, conn: lc, id: randomID(), buf: make([]byte, packet.MaxLen+1)}, nil
}

func randomID() byte {
	var id [1]byte
	_, _ = rand.Read(id[:])
	return id[0]
}

func resolve(hostport, defPort string) (netip.AddrPort, error) {
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, defPort)
	}
	a, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("eapclient: server %q: %w", hostport, err)
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Close closes the socket (not a Config.Stream, which the caller owns).
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// LocalAddr is the socket's address (tests, proxies).
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Authenticate runs one EAP-TLS conversation for peer, starting with the
// peer's EAP-Response/Identity as a NAS forwards it. An Access-Reject is not
// an error (Accepted is false); errors are transport failures (ErrTimeout,
// ErrBadReply), protocol failures (ErrProtocol) and supplicant failures
// (ErrPeer). The Result is filled as far as the conversation went, also
// with an error. The caller still owns peer and must Close it.
func (c *Client) Authenticate(ctx context.Context, peer *eaptls.Peer) (res Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()

	eap := peer.Identity(0)
	identity := eap[5:] // EAP header 4, type 1
	var state []byte
	for round := 0; round < c.cfg.MaxRounds; round++ {
		req := c.accessRequest(identity, eap, state)
		reqB, err := c.seal(req)
		if err != nil {
			return res, err
		}
		resp, err := c.exchange(ctx, c.auth, reqB, &res)
		res.Request = req
		if err != nil {
			return res, err
		}
		res.RoundTrips++
		msg, err := eapMessage(resp)
		switch resp.Code {
		case radius.CodeAccessChallenge:
			if err != nil {
				return res, err
			}
			out, _, perr := peer.Step(msg)
			if perr != nil {
				return res, fmt.Errorf("%w: %w", ErrPeer, perr)
			}
			eap = out
			state = resp.Get(attrState)
			if state != nil {
				state = append([]byte(nil), state...)
			}
		case radius.CodeAccessAccept:
			res.Accepted = true
			c.final(&res, resp, req)
			if err != nil {
				return res, err
			}
			_, done, perr := peer.Step(msg)
			if !done {
				return res, fmt.Errorf("%w: Access-Accept but the peer did not succeed: %w", ErrProtocol, perr)
			}
			msk, _ := peer.Keys()
			res.KeysPresent, res.KeysMatch = checkKeys(resp, req, msk)
			res.Resumed = peer.Resumed()
			return res, nil
		case radius.CodeAccessReject:
			c.final(&res, resp, req)
			if err == nil {
				_, _, _ = peer.Step(msg) // EAP-Failure; ends the peer
			}
			return res, nil
		default:
			return res, fmt.Errorf("%w: unexpected %v", ErrProtocol, resp.Code)
		}
	}
	return res, fmt.Errorf("%w: no final answer after %d rounds", ErrProtocol, c.cfg.MaxRounds)
}

func (c *Client) accessRequest(identity, eap, state []byte) *radius.Packet {
	c.id++
	// seal draws the Request Authenticator.
	p := &radius.Packet{Code: radius.CodeAccessRequest, Identifier: c.id, Secret: c.cfg.Secret}
	if len(identity) > 0 {
		p.Add(attrUserName, radius.Attribute(clip(identity)))
	}
	c.nasAttrs(p)
	p.Add(attrCallingStationID, radius.Attribute(c.cfg.CallingStationID))
	p.Add(attrNASPortType, u32(c.cfg.PortType))
	if c.cfg.FramedMTU > 0 {
		p.Add(attrFramedMTU, u32(uint32(c.cfg.FramedMTU)))
	}
	p.Attributes = packet.AppendEAP(p.Attributes, eap)
	if state != nil {
		p.Add(attrState, radius.Attribute(state))
	}
	return p
}

func (c *Client) nasAttrs(p *radius.Packet) {
	if c.nasIP.Is4() {
		b := c.nasIP.As4()
		p.Add(attrNASIPAddress, radius.Attribute(b[:]))
	}
	p.Add(attrNASIdentifier, radius.Attribute(clip([]byte(c.cfg.NASIdentifier))))
}

func clip(b []byte) []byte { return b[:min(len(b), maxAttrValue)] }

func u32(v uint32) radius.Attribute {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

// seal encodes p with a Message-Authenticator, first (radius/packet): for
// Access-Request over a fresh random Request Authenticator, for
// Accounting-Request over a zero one with the Request Authenticator
// computed last. p.Authenticator is set to what was sent (the MPPE keys of
// the answer are encrypted with it).
func (c *Client) seal(p *radius.Packet) ([]byte, error) {
	b, err := c.sec.EncodeRequest(p.Code, p.Identifier, p.Attributes)
	if err != nil {
		return nil, fmt.Errorf("eapclient: encode: %w", err)
	}
	copy(p.Authenticator[:], b[4:packet.HeaderLen])
	return b, nil
}

// exchange sends reqB to dst and waits for a reply that verifies,
// retransmitting the identical bytes on timeout.
func (c *Client) exchange(ctx context.Context, dst netip.AddrPort, reqB []byte, res *Result) (*radius.Packet, error) {
	if c.cfg.Stream != nil {
		return c.exchangeStream(ctx, reqB, res)
	}
	discarded := 0
	for try := 0; try <= c.cfg.Retries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("eapclient: %w", err)
		}
		if try > 0 {
			res.Retransmits++
		}
		if _, err := c.conn.WriteToUDPAddrPort(reqB, dst); err != nil {
			return nil, fmt.Errorf("eapclient: send: %w", err)
		}
		deadline := time.Now().Add(c.cfg.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return nil, fmt.Errorf("eapclient: %w", err)
		}
		for {
			n, from, err := c.conn.ReadFromUDPAddrPort(c.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, fmt.Errorf("eapclient: receive: %w", err)
			}
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != dst {
				continue // not from the server
			}
			if n < packet.HeaderLen || c.buf[1] != reqB[1] {
				continue // another exchange's (late) reply
			}
			p, err := c.verifyReply(c.buf[:n], reqB)
			if err != nil {
				discarded++
				res.Discarded++
				continue
			}
			return p, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("eapclient: %w", err)
	}
	if discarded > 0 {
		return nil, fmt.Errorf("%w: %d discarded", ErrBadReply, discarded)
	}
	return nil, ErrTimeout
}

// exchangeStream is exchange on Config.Stream: one write, then packets are
// read until the reply with the request's Identifier verifies. A reply
// that fails verification on a stream is final (the server will not send
// another), as is a broken stream.
func (c *Client) exchangeStream(ctx context.Context, reqB []byte, res *Result) (*radius.Packet, error) {
	st := c.cfg.Stream
	deadline := time.Now().Add(c.cfg.Timeout * time.Duration(c.cfg.Retries+1))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = st.SetDeadline(deadline)
	defer st.SetDeadline(time.Time{})
	if _, err := st.Write(reqB); err != nil {
		return nil, fmt.Errorf("eapclient: send: %w", err)
	}
	for {
		b, err := packet.ReadStream(st, c.buf, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("eapclient: receive: %w", err)
		}
		if b[1] != reqB[1] || radius.Code(b[0]) == radius.CodeDisconnectRequest || radius.Code(b[0]) == radius.CodeCoARequest {
			continue // a late reply, or a request of the server's (reverse CoA)
		}
		p, err := c.verifyReply(b, reqB)
		if err != nil {
			res.Discarded++
			return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
		}
		return p, nil
	}
}

// verifyReply checks, through radius/packet, the framing, the
// Message-Authenticator (required on Access-Accept, Access-Reject and
// Access-Challenge: by RFC 3579 for EAP and by BlastRADIUS mitigations for
// every Access-* reply) and the Response Authenticator. The reply is parsed
// into a copy so the caller may reuse the buffer.
func (c *Client) verifyReply(resp, req []byte) (*radius.Packet, error) {
	v, err := packet.Parse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	if err := c.sec.VerifyResponse(&v, req[4:packet.HeaderLen], packet.Policy{}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	p, err := radius.Parse(v.Bytes(), c.cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	return p, nil
}

// eapMessage joins the EAP-Message attributes and checks the EAP length.
func eapMessage(p *radius.Packet) ([]byte, error) {
	var msg []byte
	for _, a := range p.Attributes {
		if a.Type == attrEAPMessage {
			msg = append(msg, a.Attribute...)
		}
	}
	if len(msg) < 4 {
		return nil, fmt.Errorf("%w: %v without EAP-Message", ErrProtocol, p.Code)
	}
	if int(binary.BigEndian.Uint16(msg[2:4])) != len(msg) {
		return nil, fmt.Errorf("%w: EAP length does not match EAP-Message", ErrProtocol)
	}
	return msg, nil
}

// final fills the Result's views of the final reply.
func (c *Client) final(res *Result, resp, req *radius.Packet) {
	res.Reply, res.Request = resp, req
	if v := resp.Get(attrClass); v != nil {
		res.Class = append([]byte(nil), v...)
	}
	if v := resp.Get(attrSessionTimeout); len(v) == 4 {
		res.SessionTimeout = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
	}
	if v := resp.Get(attrTunnelPrivateGID); len(v) > 0 {
		if v[0] < 0x20 { // RFC 2868 tag
			v = v[1:]
		}
		res.VLAN = string(v)
	}
	res.ReplyMessage = string(resp.Get(attrReplyMessage))
}

// checkKeys decrypts MS-MPPE-Recv-Key and MS-MPPE-Send-Key (RFC 2548, with
// the Access-Request's authenticator) and compares them with MSK halves.
func checkKeys(resp, req *radius.Packet, msk []byte) (present, match bool) {
	recv, err1 := microsoft.MSMPPERecvKey_Lookup(resp, req)
	send, err2 := microsoft.MSMPPESendKey_Lookup(resp, req)
	if err1 != nil || err2 != nil {
		return false, false
	}
	if len(msk) < 64 {
		return true, false
	}
	return true, hmac.Equal(recv, msk[:32]) && hmac.Equal(send, msk[32:64])
}

// Accounting sends one Accounting-Request (status plus attrs, which should
// include Acct-Session-Id and, to tie the session to its authentication,
// the Class of the Access-Accept) to the accounting server and waits for
// the Accounting-Response, retransmitting like Authenticate.
func (c *Client) Accounting(ctx context.Context, status AcctStatus, attrs radius.Attributes) (*radius.Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id++
	p := &radius.Packet{Code: radius.CodeAccountingRequest, Identifier: c.id, Secret: c.cfg.Secret}
	p.Add(attrAcctStatusType, u32(uint32(status)))
	c.nasAttrs(p)
	p.Add(attrCallingStationID, radius.Attribute(c.cfg.CallingStationID))
	p.Add(attrNASPortType, u32(c.cfg.PortType))
	p.Attributes = append(p.Attributes, attrs...)
	b, err := c.seal(p)
	if err != nil {
		return nil, err
	}
	var res Result
	resp, err := c.exchange(ctx, c.acct, b, &res)
	if err != nil {
		return nil, err
	}
	if resp.Code != radius.CodeAccountingResponse {
		return nil, fmt.Errorf("%w: unexpected %v to Accounting-Request", ErrProtocol, resp.Code)
	}
	return resp, nil
}
