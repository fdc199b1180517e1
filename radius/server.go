package radius

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/radius/packet"
	"hardbound/store"
	"hardbound/store/auditbudget"
	"hardbound/store/auditgroup"
)

// Decider is the authorization decision (posture.Decide). It runs inside
// the TLS handshake, after the client chain verified, so that a rejected
// device gets a TLS alert and never the TLS 1.2 Finished / TLS 1.3 success
// indication (RFC 9190 §2.5).
type Decider interface {
	Decide(ctx context.Context, leaf *x509.Certificate) posture.Verdict
}

// cachedDecider is a Decider that can also answer from memory alone
// (posture.Service): ok is false when Decide would read the store. A
// packet answered on the reading goroutine tries it first.
type cachedDecider interface {
	DecideCached(leaf *x509.Certificate) (v posture.Verdict, ok bool)
}

// Sessions stores accounting sessions; store.Store satisfies it.
type Sessions interface {
	PutSession(ctx context.Context, s *store.Session) error
	GetSession(ctx context.Context, nas, acctSessionID string) (*store.Session, error)
	// CloseNASSessions stops every live session of one NAS (scope) started
	// at or before at (Accounting-On/Off) and reports how many it closed.
	CloseNASSessions(ctx context.Context, scope store.NASScope, at time.Time, cause uint32) (int, error)
}

// Auditor appends to the audit chain; store.Store satisfies it. Decisions
// are appended in groups (AppendAudits), other events one by one.
type Auditor interface {
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}

// certBindings finds a certificate's binding; store.Store satisfies it.
type certBindings interface {
	GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error)
}

// SessionStarts learns of every session whose Class verified, with the
// time its Access-Accept was built (the enforcer: a standing change
// between the Accept and the Accounting-Start found no session to act on).
type SessionStarts interface {
	SessionStarted(ctx context.Context, s *store.Session, admitted time.Time)
}

// WithSessionStarts sets the SessionStarts hook.
func WithSessionStarts(x SessionStarts) Option { return func(s *Server) { s.starts = x } }

// Option customizes a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMetrics sets the metrics sink (default NopMetrics).
func WithMetrics(m Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// ErrServing is returned by a second concurrent Serve.
var ErrServing = errors.New("radius: server already serving")

// storeTimeout bounds every store call made while a NAS waits.
const storeTimeout = 5 * time.Second

// Server is the RADIUS authentication and accounting server.
type Server struct {
	cfg      Config
	clients  *clientTable
	dec      Decider
	cached   cachedDecider // dec, when it can answer from memory; else nil
	sessions Sessions
	audit    Auditor
	groups   *auditgroup.Writer
	log      *slog.Logger
	metrics  Metrics
	now      func() time.Time
	class    classKey
	// bindings resolves a Class that left a long device id out (the
	// certificate's binding); sessions, when it has GetCertBinding.
	bindings certBindings
	starts   SessionStarts // optional
	refusals *refusalLog
	budget   *auditbudget.Budget
	onoff    onOffTracker

	eap        *eaptls.Server
	tk         ticketKeys // resume.go
	newSession func(ctx context.Context, o eaptls.SessionOptions) eapSession
	convs      *convTable
	streams    streamClients // NAS clients of RADIUS/TLS, by name (stream.go)
	dups       *dupCache
	bufs       sync.Pool // *[]byte of maxPacket+1: one more detects oversize datagrams
	serving    atomic.Bool
	inflight   atomic.Int64 // packets being processed, by workers or inline
	reliefs    atomic.Int64 // relief readers started (see reader)

	// authorize decides the packets workers answer (authorizer(nil)); a
	// reader answering a packet itself uses its own.
	authorize eaptls.Authorizer[posture.Verdict]
}

// New validates cfg and builds a Server. eap runs the EAP-TLS sessions, dec
// authorizes devices, sessions and audit persist accounting and decisions.
func New(cfg Config, eap *eaptls.Server, dec Decider, sessions Sessions, audit Auditor, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case eap == nil:
		return nil, errors.New("radius: eaptls server is required")
	case dec == nil:
		return nil, errors.New("radius: decider is required")
	case sessions == nil:
		return nil, errors.New("radius: sessions store is required")
	case audit == nil:
		return nil, errors.New("radius: auditor is required")
	}
	if len(cfg.Resumption.SharedKey) > 0 {
		if _, ok := sessions.(ticketKeyStore); !ok {
			return nil, errors.New("radius: resumption.shared_key_file needs a store that holds ticket keys")
		}
	}
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		clients:  newClientTable(cfg.Clients),
		dec:      dec,
		sessions: sessions,
		audit:    audit,
		log:      slog.Default(),
		metrics:  NopMetrics{},
		now:      time.Now,
		convs:    newConvTable(cfg.MaxConversations, cfg.MaxConversationsPerNAS, cfg.MaxConversationBytes, cfg.ConversationIdle, cfg.EarlyIdle),
		dups:     newDupCache(cfg.DuplicateTTL, cfg.DuplicateEntries),
		refusals: newRefusalLog(),
		budget:   auditbudget.New(cfg.AuditBudgetWindow, 0),
	}
	s.cached, _ = dec.(cachedDecider)
	s.bindings, _ = sessions.(certBindings)
	s.class.key = append([]byte(nil), cfg.ClassKey...)
	randomClassKey := len(s.class.key) == 0
	if randomClassKey {
		s.class.key = make([]byte, ClassKeyLen)
		_, _ = rand.Read(s.class.key) // never fails (Go 1.24+)
	}
	s.eap = eap
	tickets := s.ticketPolicy()
	s.newSession = func(ctx context.Context, o eaptls.SessionOptions) eapSession {
		sess := eaptls.NewSession[posture.Verdict](ctx, eap, o)
		sess.SetTicketPolicy(tickets)
		return sess
	}
	s.authorize = s.authorizer(nil)
	s.bufs.New = func() any { b := make([]byte, maxPacket+1); return &b }
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("component", "radius")
	// Decisions reach the chain in groups: per decision, a synced append of
	// its own cost as much CPU as the handshake's signature checks
	// (BENCHMARKS.md).
	s.groups = auditgroup.New(audit, auditgroup.Options{
		Window: cfg.AuditFlush, Sync: cfg.AuditSync, Timeout: storeTimeout,
		Failed: func(n int, err error) {
			for range n {
				s.metrics.AuditError()
			}
			s.log.Error("audit append failed", "decisions", n, "err", err)
		},
	})
	if randomClassKey {
		s.log.Warn("no Class key configured: a random one for this process; sessions admitted before a restart will not map to their devices")
	}
	for _, c := range cfg.Clients {
		if !c.RequireMessageAuthenticator {
			s.log.Warn("WARNING: Message-Authenticator not required for NAS client; Access-Requests without it are accepted (BlastRADIUS exposure)",
				"nas", c.Name, "limit_proxy_state", c.LimitProxyState)
		}
	}
	return s, nil
}

// Clients returns the configured NAS clients with defaults applied (CoA port
// and secret), for the Disconnect/CoA sender.
func (s *Server) Clients() []Client {
	out := make([]Client, 0, len(s.cfg.Clients))
	for _, c := range s.cfg.Clients {
		out = append(out, s.clients.byName[c.Name].public())
	}
	return out
}

// Client looks a NAS client up by name.
func (s *Server) Client(name string) (Client, bool) {
	n, ok := s.clients.byName[name]
	if !ok {
		return Client{}, false
	}
	return n.public(), true
}

// public returns a copy the caller may keep and modify.
func (n *nas) public() Client {
	c := n.Client
	c.Secret = append([]byte(nil), n.Secret...)
	c.CoASecret = append([]byte(nil), n.CoASecret...)
	return c
}

// Ports identify the receiving socket (part of the duplicate key).
const (
	portAuth byte = 1
	portAcct byte = 2
)

type job struct {
	buf  *[]byte
	n    int
	from netip.AddrPort
	port byte
	conn net.PacketConn
}

// Serve answers on auth (1812) and accounting (1813) until ctx is done; either
// conn may be nil. It owns the conns and closes them. Packets are read into
// pooled buffers and handled by a fixed pool of workers behind a bounded
// queue, so a flood costs drops, not goroutines or memory; an idle server
// answers a lone authentication packet on the reading goroutine (see
// reader).
func (s *Server) Serve(ctx context.Context, auth, acct net.PacketConn) error {
	if auth == nil && acct == nil {
		return errors.New("radius: serve: no listener")
	}
	if !s.serving.CompareAndSwap(false, true) {
		return ErrServing
	}
	defer s.serving.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, s.cfg.Queue)
	var workers, readers, bg sync.WaitGroup
	for range s.cfg.Workers {
		workers.Go(func() {
			for j := range jobs {
				s.process(ctx, j, nil)
				s.inflight.Add(-1)
			}
		})
	}
	errc := make(chan error, 2)
	var spawnMu sync.Mutex
	stopping := false
	// spawn starts a relief reader; after stopping is set, readers.Wait may
	// run, so no reader may be added.
	spawn := func(f func()) bool {
		spawnMu.Lock()
		defer spawnMu.Unlock()
		if stopping {
			return false
		}
		readers.Go(f)
		return true
	}
	conns := []struct {
		c    net.PacketConn
		port byte
	}{{auth, portAuth}, {acct, portAcct}}
	for _, pc := range conns {
		if pc.c == nil {
			continue
		}
		r := s.newReader(pc.c, pc.port, jobs, spawn)
		readers.Go(func() {
			if err := r.run(ctx); err != nil {
				errc <- err
			}
		})
	}
	bg.Go(func() { s.janitor(ctx) })
	bg.Go(func() { s.rotateTicketKeys(ctx) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	spawnMu.Lock()
	stopping = true
	spawnMu.Unlock()
	for _, pc := range conns {
		if pc.c != nil {
			_ = pc.c.Close() // unblocks the readers
		}
	}
	readers.Wait()
	close(jobs)
	workers.Wait()
	s.groups.Flush() // decisions already answered reach the chain before Serve returns
	bg.Wait()
	for _, c := range s.convs.drain() {
		c.close()
	}
	s.metrics.Conversations(0)
	return err
}

// socketBuffer is the receive buffer asked for on listeners we open: bursts
// of EAP rounds from many NASes should queue in the kernel, not be dropped.
const socketBuffer = 4 << 20

// ListenAndServe opens UDP listeners on authAddr and acctAddr (either may
// be empty to skip it) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, authAddr, acctAddr string) error {
	auth, acct, err := s.Listen(ctx, authAddr, acctAddr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, auth, acct)
}

// Listen opens the UDP listeners Serve takes, with the receive buffer a
// burst of EAP rounds needs; an empty address yields a nil conn. Callers
// that must know the bound addresses (port 0) before serving use it instead
// of ListenAndServe.
func (s *Server) Listen(ctx context.Context, authAddr, acctAddr string) (auth, acct net.PacketConn, err error) {
	var conns [2]net.PacketConn
	for i, addr := range []string{authAddr, acctAddr} {
		if addr == "" {
			continue
		}
		var lc net.ListenConfig
		c, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, o := range conns {
				if o != nil {
					_ = o.Close()
				}
			}
			return nil, nil, fmt.Errorf("radius: listen %s: %w", addr, err)
		}
		if uc, ok := c.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(socketBuffer) // best effort; capped by net.core.rmem_max
		}
		conns[i] = c
		s.log.Info("listening", "addr", c.LocalAddr().String(), "port", []string{"auth", "acct"}[i])
	}
	return conns[0], conns[1], nil
}

func (s *Server) process(ctx context.Context, j job, inline *reader) {
	defer s.bufs.Put(j.buf)
	resp := s.handle(ctx, inline, j.port, j.from, (*j.buf)[:j.n])
	if resp == nil {
		return
	}
	var err error
	if uc, ok := j.conn.(*net.UDPConn); ok {
		_, err = uc.WriteToUDPAddrPort(resp, j.from)
	} else {
		_, err = j.conn.WriteTo(resp, net.UDPAddrFromAddrPort(j.from))
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("write failed", "to", j.from, "err", err)
	}
}

// janitor expires idle conversations (ending their TLS coroutines).
func (s *Server) janitor(ctx context.Context) {
	every := min(max(s.cfg.ConversationIdle/4, 100*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			gone, live := s.convs.expire(s.now())
			for _, c := range gone {
				c.close()
				s.log.Debug("conversation expired", "nas", c.nas.Name)
			}
			s.metrics.Conversations(live)
			// Expired responses are otherwise dropped only when the next
			// packet arrives: after a storm an idle server would keep
			// the whole cache (~64 MiB at its cap) until traffic resumes.
			s.dups.expire(s.now())
			s.flushBudget(ctx)
		}
	}
}

// handle runs one datagram through the pipeline and returns the encoded
// response, or nil to stay silent. Order matters (docs/radius.md): client
// lookup, framing, authenticity (Message-Authenticator / Request
// Authenticator) BEFORE the duplicate cache, so forged packets can neither
// fill nor poison it; then the cache; then EAP or accounting. inline is the
// reader answering b itself, nil for a worker.
func (s *Server) handle(ctx context.Context, inline *reader, port byte, from netip.AddrPort, b []byte) []byte {
	n := s.clients.lookup(from.Addr())
	if n == nil {
		s.metrics.Drop(DropUnknownClient)
		s.log.Debug("packet from unknown client", "from", from)
		return nil
	}
	return s.handleNAS(ctx, inline, n, port, from, b)
}

// handleNAS is handle once the client is known: by source address (UDP) or
// by certificate (stream.go).
func (s *Server) handleNAS(ctx context.Context, inline *reader, n *nas, port byte, from netip.AddrPort, b []byte) []byte {
	p, err := packet.Parse(b)
	if err != nil {
		cause := DropMalformed
		if errors.Is(err, ErrTooLarge) {
			cause = DropTooLarge
		}
		s.metrics.Drop(cause)
		s.log.Debug("packet dropped", "nas", n.Name, "cause", cause, "err", err)
		return nil
	}
	kind := ""
	switch code := p.Code(); {
	case code == lradius.CodeStatusServer:
		return s.statusServer(n, port, &p)
	case port == portAuth && code == lradius.CodeAccessRequest:
		kind = "access_request"
		if !s.checkAccessAuth(n, &p) {
			return nil
		}
	case port == portAcct && code == lradius.CodeAccountingRequest:
		// The Request Authenticator is mandatory, Message-Authenticator
		// optional (RFC 2866 §3).
		kind = "accounting_request"
		if err := n.sec.VerifyRequest(&p, packet.Policy{}); err != nil {
			s.drop(n, kind, authDrop(err))
			return nil
		}
	default:
		s.drop(n, "other", DropUnexpectedCode)
		return nil
	}

	key := dupKey{port: port, from: from, id: p.Identifier()}
	auth := p.Authenticator()
	switch res, cached := s.dups.begin(s.now(), key, auth); res {
	case dupCached:
		s.metrics.Request(kind, "cached")
		return cached
	case dupInProgress:
		s.drop(n, kind, DropDuplicate)
		return nil
	}
	var resp []byte
	if port == portAuth {
		resp = s.access(ctx, inline, n, from, &p)
	} else {
		resp = s.accounting(ctx, n, from, &p)
	}
	if resp == nil {
		s.dups.abort(key, auth)
		return nil
	}
	s.dups.finish(key, auth, resp)
	return resp
}

func (s *Server) drop(n *nas, kind, cause string) {
	s.metrics.Request(kind, "dropped")
	s.metrics.Drop(cause)
	s.log.Debug("packet dropped", "nas", n.Name, "packet", kind, "cause", cause)
}

// authDrop is the drop cause for an authenticity failure of the codec.
func authDrop(err error) string {
	switch {
	case errors.Is(err, packet.ErrBadMessageAuthenticator):
		return DropBadMsgAuth
	case errors.Is(err, packet.ErrNoMessageAuthenticator):
		return DropMissingMsgAuth
	case errors.Is(err, packet.ErrProxyStateWithoutMessageAuthenticator):
		return DropProxyStateNoMsgAuth
	case errors.Is(err, packet.ErrBadAuthenticator):
		return DropBadAuthenticator
	default:
		return DropMalformed
	}
}

// checkAccessAuth applies the NAS's BlastRADIUS policy (the codec requires
// Message-Authenticator whenever EAP-Message is present, RFC 3579 §3.2) to
// an Access-Request; false means silently discard.
func (s *Server) checkAccessAuth(n *nas, p *packet.Packet) bool {
	const kind = "access_request"
	err := n.sec.VerifyRequest(p, n.policy)
	if err == nil {
		return true
	}
	cause := authDrop(err)
	s.drop(n, kind, cause)
	switch cause {
	case DropBadMsgAuth:
		s.log.Info("Access-Request with bad Message-Authenticator discarded (wrong secret?)", "nas", n.Name)
	case DropMissingMsgAuth:
		s.log.Info("Access-Request without Message-Authenticator discarded", "nas", n.Name)
	}
	return false
}

// statusServer answers RFC 5997 Status-Server: MA required (the codec's
// rule), no side effects, no duplicate entry (clients use a new Identifier
// each time).
func (s *Server) statusServer(n *nas, port byte, p *packet.Packet) []byte {
	const kind = "status_server"
	if err := n.sec.VerifyRequest(p, packet.Policy{}); err != nil {
		s.drop(n, kind, authDrop(err))
		return nil
	}
	// After the MA check, so spoofed floods cannot starve the real watchdog.
	if !n.status.Allow() {
		s.drop(n, kind, DropRateLimited)
		return nil
	}
	code := lradius.CodeAccessAccept
	if port == portAcct {
		code = lradius.CodeAccountingResponse
	}
	resp, err := n.sec.EncodeResponse(p, code, true, nil)
	if err != nil {
		s.drop(n, kind, DropInternal)
		return nil
	}
	s.metrics.Request(kind, "response")
	return resp
}
