package dynauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hardbound/radius/packet"
)

// DefaultPort is the RFC 5176 DAS port on the NAS.
const DefaultPort = 3799

// Defaults of SenderConfig, which are also those of hardbound.yaml's
// radius.coa section (FileConfig): the first try and three retransmissions.
const (
	defaultTries   = 4
	defaultTimeout = time.Second
)

// NAS is where and how to reach one NAS's Dynamic Authorization Server.
type NAS struct {
	// Name is the NAS client name from config (logs, audit).
	Name string
	// Addr is "host", "host:port" or "[v6]:port"; without a port DefaultPort
	// (or Port, if set) is used.
	Addr string
	Port int
	// Secret is the NAS's CoA secret (usually its RADIUS secret).
	Secret []byte
}

func (n NAS) address() (string, error) {
	if n.Addr == "" {
		return "", fmt.Errorf("%w: NAS %q has no address", ErrBadRequest, n.Name)
	}
	if host, port, err := net.SplitHostPort(n.Addr); err == nil {
		return net.JoinHostPort(host, port), nil
	}
	port := n.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(strings.Trim(n.Addr, "[]"), strconv.Itoa(port)), nil
}

// SenderConfig configures a Sender. Zero values take the defaults noted.
type SenderConfig struct {
	// Tries is the number of transmissions per request (default 4). Each
	// try is a new packet (new Identifier, fresh Event-Timestamp); a late
	// answer to an earlier try is still accepted.
	Tries int
	// Timeout is the wait after the first try (default 1s); it doubles after
	// every try (1s, 2s, 4s, 8s: about 15 s in all by default).
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests in all; default 512.
	MaxInFlight int
	// MaxPerNAS bounds concurrent requests to one NAS address (default 64):
	// a NAS's DAS is often single-threaded behind a small socket buffer, and
	// a burst it drops only comes back as retransmissions.
	MaxPerNAS int
	// RequireResponseMA discards answers without Message-Authenticator.
	// Off by default: RFC 5176 makes it optional and the Response
	// Authenticator already proves the secret; hostapd does include it.
	RequireResponseMA bool
	Logger            *slog.Logger
	Metrics           Metrics
	// Now is the clock for Event-Timestamp (default time.Now).
	Now func() time.Time
}

// Sender sends RFC 5176 requests. It is safe for concurrent use. Requests to
// one NAS share connected UDP sockets (the kernel drops datagrams from any
// other source), up to 256 outstanding Identifiers per socket; answers are
// demultiplexed by Identifier and then authenticated against the exact
// request bytes. A socket is closed when its last request ends.
type Sender struct {
	cfg SenderConfig
	sem chan struct{}
	log *slog.Logger
	m   Metrics
	mux *muxer

	nasMu  sync.Mutex
	perNAS map[string]chan struct{} // one entry per NAS address ever used
}

// NewSender returns a Sender with cfg's defaults filled in.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Tries <= 0 {
		cfg.Tries = defaultTries
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 512
	}
	if cfg.MaxPerNAS <= 0 {
		cfg.MaxPerNAS = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{
		cfg:    cfg,
		sem:    make(chan struct{}, cfg.MaxInFlight),
		log:    cfg.Logger.With("component", "radius", "sub", "dynauth"),
		m:      cfg.Metrics,
		mux:    newMuxer(cfg.Metrics),
		perNAS: make(map[string]chan struct{}),
	}
}

// Outcome describes what happened to one request.
type Outcome struct {
	Result     Result
	ErrorCause ErrorCause // set on NAK
	Attempts   int        // datagrams sent
	// Elapsed is from the first send to the answer (or giving up).
	Elapsed time.Duration
	// Addr is the NAS address used.
	Addr string
}

// Send transmits req to nas and waits for the matching ACK or NAK. It
// returns the outcome and, unless the NAS ACKed, an error: a *NAKError
// (errors.Is ErrNAK) with the Error-Cause, ErrTimeout after the last try,
// ErrBadRequest for unusable input, or ctx's error.
func (s *Sender) Send(ctx context.Context, nas NAS, req Request) (Outcome, error) {
	out := Outcome{Result: ResultError}
	addr, err := nas.address()
	if err != nil {
		s.m.Answered(req.Kind, ResultError)
		return out, err
	}
	out.Addr = addr
	// Per-NAS slot first, so requests queued for one slow NAS do not hold
	// global slots that other NASes could use.
	nasSem := s.nasSlot(addr)
	for _, sem := range []chan struct{}{nasSem, s.sem} {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			s.m.Answered(req.Kind, ResultError)
			return out, fmt.Errorf("dynauth: waiting for a send slot: %w", ctx.Err())
		}
	}

	out, err = s.exchange(ctx, addr, nas.Secret, req)
	out.Addr = addr
	s.m.Answered(req.Kind, out.Result)
	return out, err
}

func (s *Sender) exchange(ctx context.Context, addr string, secret []byte, req Request) (Outcome, error) {
	out := Outcome{Result: ResultError}
	if len(secret) == 0 {
		return out, fmt.Errorf("%w: empty secret", ErrBadRequest)
	}
	sec := packet.NewSecret(secret)
	// Encode the first try before taking a socket slot: bad input fails fast.
	first, err := encodeRequest(req, 0, sec, s.cfg.Now())
	if err != nil {
		return out, err
	}
	lease, err := s.mux.acquire(addr)
	if err != nil {
		return out, err
	}
	defer s.mux.release(lease)

	sent := make([][]byte, 0, s.cfg.Tries)
	start := time.Now()
	wait := s.cfg.Timeout
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for try := 0; try < s.cfg.Tries; try++ {
		pkt := first
		if try == 0 {
			pkt[1] = lease.ids[0]
			if err := sec.SignRequest(pkt); err != nil {
				return out, fmt.Errorf("dynauth: %w", err)
			}
		} else {
			// A retransmission is a new packet: fresh Event-Timestamp, and a
			// new Identifier while the socket has one free.
			id := s.mux.nextID(lease)
			if pkt, err = encodeRequest(req, id, sec, s.cfg.Now()); err != nil {
				return out, err
			}
		}
		sent = append(sent, pkt)
		if _, err := lease.mc.conn.Write(pkt); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			out.Elapsed = time.Since(start)
			return out, fmt.Errorf("dynauth: send to %s: %w", addr, err)
		}
		out.Attempts++
		s.m.Sent(req.Kind)
		timer.Reset(wait)
		wait *= 2
	recv:
		for {
			select {
			case <-ctx.Done():
				out.Elapsed = time.Since(start)
				return out, fmt.Errorf("dynauth: %s to %s: %w", req.Kind, addr, ctx.Err())
			case <-timer.C:
				break recv
			case raw := <-lease.ch:
				resp, perr := s.match(raw, sent, sec)
				if perr != nil {
					s.log.Debug("discarding invalid answer", "nas_addr", addr, "err", perr)
					continue
				}
				out.Elapsed = time.Since(start)
				if resp.ACK {
					out.Result = ResultACK
					return out, nil
				}
				out.Result = ResultNAK
				out.ErrorCause = resp.ErrorCause
				return out, &NAKError{Kind: req.Kind, Cause: resp.ErrorCause}
			}
		}
	}
	out.Result = ResultTimeout
	out.Elapsed = time.Since(start)
	return out, fmt.Errorf("%w: %s to %s after %d tries", ErrTimeout, req.Kind, addr, out.Attempts)
}

func (s *Sender) nasSlot(addr string) chan struct{} {
	s.nasMu.Lock()
	defer s.nasMu.Unlock()
	sem, ok := s.perNAS[addr]
	if !ok {
		sem = make(chan struct{}, s.cfg.MaxPerNAS)
		s.perNAS[addr] = sem
	}
	return sem
}

// match finds the try an answer belongs to and validates it.
func (s *Sender) match(raw []byte, sent [][]byte, sec *packet.Secret) (*Response, error) {
	if len(raw) < packet.HeaderLen {
		s.m.InvalidResponse("short")
		return nil, badPacket("short", "short packet")
	}
	for _, req := range sent {
		if req[1] != raw[1] {
			continue
		}
		resp, err := parseResponse(raw, req, sec, s.cfg.RequireResponseMA)
		if err != nil {
			s.m.InvalidResponse(invalidWhy(err))
		}
		return resp, err
	}
	s.m.InvalidResponse("identifier")
	return nil, badPacket("identifier", "identifier %d matches no request", raw[1])
}

func invalidWhy(err error) string {
	var pe *packetError
	if errors.As(err, &pe) {
		return pe.why
	}
	return "malformed"
}
