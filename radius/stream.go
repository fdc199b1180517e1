package radius

import (
	"context"
	"net/netip"
	"sync"

	lradius "layeh.com/radius"
)

// StreamSecret is the RADIUS shared secret of every RADIUS/TLS connection
// (RFC 6614 §2.3): TLS protects the packets, and the MD5 layer stays only
// because the packet format needs a key.
const StreamSecret = "radsec"

// streamClients are the NAS clients met on a stream transport (RADIUS/TLS,
// package radius/radsec), by name: identified by certificate, not by a
// source address. One per NAS, shared by its connections, so that the
// conversation caps and the Status-Server rate apply per NAS.
type streamClients struct {
	mu sync.Mutex
	m  map[string]*nas
}

func (t *streamClients) get(name string) *nas {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.m[name]; ok {
		return n
	}
	if t.m == nil {
		t.m = map[string]*nas{}
	}
	n := newNAS(Client{Name: name, Secret: []byte(StreamSecret), RequireMessageAuthenticator: true, LimitProxyState: true})
	t.m[name] = n
	return n
}

// HandleStream answers one framed packet b that the NAS named nas (its
// certificate verified by the caller) sent on the connection from from,
// and returns the encoded response, or nil to send nothing (discarded, as
// on UDP; the reason is counted and logged). It runs the UDP pipeline:
// authenticity with StreamSecret, the duplicate cache, EAP conversations,
// accounting and audit. Access-Request and Status-Server are handled as on
// the authentication port, Accounting-Request as on the accounting port
// (RFC 6614 §2.2: one port carries both). Serve must be running: its
// janitor expires the conversations and its audit writer records the
// decisions.
func (s *Server) HandleStream(ctx context.Context, nas string, from netip.AddrPort, b []byte) []byte {
	port := portAuth
	if len(b) > 0 && lradius.Code(b[0]) == lradius.CodeAccountingRequest {
		port = portAcct
	}
	return s.handleNAS(ctx, nil, s.streams.get(nas), port, from, b)
}
