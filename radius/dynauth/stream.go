package dynauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hardbound/radius/packet"
)

// Stream is a connection a NAS opened to us (RADIUS/TLS, radius/radsec) on
// which requests may travel the other way (draft-ietf-radext-reverse-coa):
// Exchange reserves an Identifier of the connection's own space for
// requests we send, calls encode with it, writes the packet and returns the
// answer with that Identifier (a response code; the caller authenticates
// it) or an error when ctx ends or the connection closes.
// Secret is the connection's RADIUS secret (RADIUS/TLS: "radsec"), which
// keys requests down it whatever the NAS's UDP CoA secret is.
type Stream interface {
	Exchange(ctx context.Context, encode func(id byte) ([]byte, error)) ([]byte, error)
	Secret() []byte
}

// StreamLookup finds a live stream held by the NAS client named name.
type StreamLookup func(name string) (Stream, bool)

// ErrStreamClosed is wrapped by a Stream's Exchange when its connection
// closed before an answer came; the request is then retried by UDP.
var ErrStreamClosed = errors.New("dynauth: stream closed")

// Via is an Exchanger that sends to a NAS over the stream it holds to us
// when there is one, and by UDP (s.Send) otherwise: a NAS behind NAT is
// reachable only down its own connection, and UDP stays the path for UDP
// NASes.
func (s *Sender) Via(streams StreamLookup) Exchanger {
	return &via{s: s, streams: streams}
}

type via struct {
	s       *Sender
	streams StreamLookup
}

func (v *via) Send(ctx context.Context, nas NAS, req Request) (Outcome, error) {
	if st, ok := v.streams(nas.Name); ok {
		out, err := v.s.SendStream(ctx, st, nas, req)
		if !errors.Is(err, ErrStreamClosed) {
			return out, err
		}
		v.s.log.Info("stream closed during a request; retrying by UDP", "nas", nas.Name, "kind", req.Kind.String())
	}
	return v.s.Send(ctx, nas, req)
}

// SendStream is Send over a stream, keyed with the stream's secret: one transmission (a reliable transport
// is never retransmitted on, RFC 6613 §2.6.1), waited for as long as all of
// Send's tries together, with the same slots, metrics and answer checks.
func (s *Sender) SendStream(ctx context.Context, st Stream, nas NAS, req Request) (Outcome, error) {
	out := Outcome{Result: ResultError, Addr: "stream:" + nas.Name}
	secret := st.Secret()
	if len(secret) == 0 {
		s.m.Answered(req.Kind, ResultError)
		return out, fmt.Errorf("%w: empty secret", ErrBadRequest)
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		s.m.Answered(req.Kind, ResultError)
		return out, fmt.Errorf("dynauth: waiting for a send slot: %w", ctx.Err())
	}
	sec := packet.NewSecret(secret)
	wait := s.cfg.Timeout * time.Duration(1<<s.cfg.Tries-1)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var sent []byte
	start := time.Now()
	raw, err := st.Exchange(wctx, func(id byte) ([]byte, error) {
		b, err := encodeRequest(req, id, sec, s.cfg.Now())
		sent = b
		if err == nil {
			out.Attempts = 1
			s.m.Sent(req.Kind)
		}
		return b, err
	})
	out.Elapsed = time.Since(start)
	if err == nil {
		var resp *Response
		if resp, err = parseResponse(raw, sent, sec, s.cfg.RequireResponseMA); err != nil {
			// One answer per request on a stream: a bad one is final.
			s.m.InvalidResponse(invalidWhy(err))
		} else if resp.ACK {
			out.Result = ResultACK
		} else {
			out.Result, out.ErrorCause = ResultNAK, resp.ErrorCause
			err = &NAKError{Kind: req.Kind, Cause: resp.ErrorCause}
		}
	}
	switch {
	case err == nil, out.Result == ResultNAK:
	case errors.Is(err, ErrStreamClosed):
		return out, err // Via retries by UDP and counts the outcome there
	case wctx.Err() != nil && ctx.Err() == nil:
		out.Result = ResultTimeout
		err = fmt.Errorf("%w: %s to %s over its stream after %s", ErrTimeout, req.Kind, nas.Name, wait)
	}
	s.m.Answered(req.Kind, out.Result)
	return out, err
}
