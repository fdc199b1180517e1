package radius

import (
	"context"
	"errors"
	"net/netip"

	lradius "layeh.com/radius"
)

// StreamClient is a NAS client met on a stream transport (RADIUS/TLS,
// package radius/radsec): identified by its certificate, not by a source
// address, with authentication, accounting and Status-Server on one
// connection. Its packets go through the same pipeline as a UDP client's
// (authenticity, duplicate cache, EAP conversations, accounting, audit).
type StreamClient struct{ n *nas }

// Name is the client's name (sessions, audit actor nas:<Name>).
func (c *StreamClient) Name() string { return c.n.Name }

// NewStreamClient builds the client for c. Name and Secret are required
// (RFC 6614 §2.3 fixes the secret to "radsec"); Prefix is ignored. The
// caller keeps one per NAS identity, shared by its connections, so that
// conversation caps and the Status-Server rate apply per NAS.
func (s *Server) NewStreamClient(c Client) (*StreamClient, error) {
	if c.Name == "" || len(c.Secret) == 0 {
		return nil, errors.New("radius: stream client: name and secret are required")
	}
	c.Prefix = netip.Prefix{}
	return &StreamClient{n: newNAS(c)}, nil
}

// HandleStream answers one framed packet b that c sent from the connection
// at from, and returns the encoded response, or nil to send nothing
// (silently discarded, as on UDP; the reason is counted and logged).
// Access-Request and Status-Server are handled as on the authentication
// port, Accounting-Request as on the accounting port (RFC 6614 §2.2: one
// port for both). Server.Serve must be running: its janitor expires the
// conversations and its audit writer records the decisions.
func (s *Server) HandleStream(ctx context.Context, c *StreamClient, from netip.AddrPort, b []byte) []byte {
	port := portAuth
	if len(b) > 0 && lradius.Code(b[0]) == lradius.CodeAccountingRequest {
		port = portAcct
	}
	return s.handleNAS(ctx, nil, c.n, port, from, b)
}
