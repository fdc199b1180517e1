package eaptls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for ServerConfig zero values.
const (
	DefaultMaxMessage       = 64 << 10
	DefaultMaxRounds        = 100
	DefaultHandshakeTimeout = 30 * time.Second
	// maxIgnored bounds answers to stale/duplicate responses per session
	// (RFC 3579 §2.2 suggests about 5).
	maxIgnored = 5
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// TLS is the base configuration: Certificates (leaf + issuing CA, no
	// root) and ClientCAs are required. NewServer copies it once; the
	// caller's value is not modified. If CurvePreferences is empty it
	// defaults to X25519 and P-256 so flights stay small (the Go 1.26
	// hybrid post-quantum groups add KiBs and EAP rounds); set it to
	// opt into other groups.
	TLS *tls.Config
	// MaxFragment caps TLS bytes per EAP-TLS fragment; 0 means derived from
	// the session MTU only (MTU - 14).
	MaxFragment int
	// MaxMessage caps reassembly of one peer TLS message; default 65536.
	MaxMessage int
	// MaxRounds caps EAP round trips per session; default 100.
	MaxRounds int
	// HandshakeTimeout bounds a session from NewSession; default 30s.
	HandshakeTimeout time.Duration
	// AllowNoEMS admits TLS 1.2 peers without Extended Master Secret.
	// WARNING: such sessions are exposed to the triple handshake attack and
	// Go only exports keys for them when the process runs with
	// GODEBUG=tlsunsafeekm=1 (removed in Go 1.27); without it they still
	// fail, after the handshake, with ErrKeys.
	AllowNoEMS bool
	// OmitCANames leaves the certificate_authorities list (the ClientCAs
	// subjects) out of the CertificateRequest and verifies the client chain
	// in VerifyConnection instead, against the same ClientCAs with the
	// clientAuth EKU. It shortens the first server flight so a TLS 1.3
	// authentication fits 4 RADIUS round trips at Framed-MTU 1400 instead
	// of 5. Supplicants that pick among several client certificates by the
	// server's CA hint (some Windows configurations) then choose without it.
	OmitCANames bool
	// ChainCache is how many verified client chains are remembered, keyed
	// by the exact certificates the peer sent, so a device that
	// re-authenticates skips the CA signature check (its validity window
	// is still checked each time). 0 means DefaultChainCache, negative
	// none.
	ChainCache int
	// Resumption turns on session tickets (see Resumption); the zero value
	// keeps every authentication a full handshake. A fresh random ticket
	// key is drawn at NewServer; SetTicketKeys and RotateTicketKey replace
	// it.
	Resumption Resumption
	Logger     *slog.Logger
	Metrics    Metrics
}

// Authorizer decides whether the peer may finish the handshake, and returns
// the decision its caller acts on (for radius, the posture verdict); Step
// hands it back in Result.Decision. It runs from tls.Config.VerifyConnection
// once the client chain verified, so cs.PeerCertificates and
// cs.VerifiedChains are never empty, inside the Step that delivered the
// peer's certificate and with that Step's ctx. A non-nil error aborts the
// handshake with a TLS alert, so a rejected device never gets the TLS 1.2
// Finished / TLS 1.3 0x00.
type Authorizer[D any] func(ctx context.Context, cs tls.ConnectionState) (D, error)

// SessionOptions are per-session (per NAS / per request) settings.
type SessionOptions struct {
	// MTU is the Framed-MTU of the request; 0 or < 100 means 1020.
	MTU int
	// MaxVersion caps the TLS version (e.g. tls.VersionTLS12 for a NAS or
	// realm whose supplicants mishandle TLS 1.3); 0 keeps the base.
	MaxVersion uint16
	// NoResume makes this session neither issue nor accept tickets (a NAS
	// whose sessions must always be full handshakes).
	NoResume bool
}

// Outcome is the kind of packet Step returned.
type Outcome int

// Outcomes.
const (
	Continue Outcome = iota // Reply is an EAP-Request: Access-Challenge
	Success                 // Reply is EAP-Success: Access-Accept, keys valid
	Failure                 // Reply is EAP-Failure: Access-Reject
)

func (o Outcome) String() string {
	switch o {
	case Continue:
		return "continue"
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is Step's answer.
type Result[D any] struct {
	Reply   []byte
	Outcome Outcome
	// Ignored is set when the response was stale (wrong Identifier) and
	// Reply re-carries the outstanding EAP-Request unchanged (RFC 3579
	// §2.2); a RADIUS layer may add Error-Cause 202.
	Ignored bool
	// Decision is what the Authorizer returned and Decided whether it ran.
	// From the Step that ran it on, every Result of the session carries it,
	// up to the final Success or Failure: a rejection ends one round
	// later, when the peer has acknowledged the alert.
	Decision D
	Decided  bool
}

// Server holds the per-process EAP-TLS configuration. It is safe for
// concurrent use; sessions are not.
type Server struct {
	cfg        ServerConfig
	base       *tls.Config
	userVerify func(tls.ConnectionState) error
	// clientCAs verifies client chains (verifyClientChain); chains
	// remembers the ones that did (nil: no cache).
	clientCAs *x509.CertPool
	chains    *chainCache
	inters    interStore // intermediates lean tickets name (ticketchain.go)
	log       *slog.Logger
	metrics   Metrics
	pool      bufPool
}

// NewServer validates cfg and builds the base tls.Config once.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil {
		return nil, errors.New("eaptls: ServerConfig.TLS is required")
	}
	if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("eaptls: ServerConfig.TLS needs a server certificate")
	}
	if cfg.TLS.ClientCAs == nil {
		return nil, errors.New("eaptls: ServerConfig.TLS.ClientCAs is required")
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = DefaultMaxRounds
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxFragment < 0 || (cfg.MaxFragment > 0 && cfg.MaxFragment < minFragment) {
		// Tiny fragments only burn rounds until MaxRounds fails every
		// authentication; refuse the configuration instead.
		return nil, fmt.Errorf("eaptls: MaxFragment %d below %d", cfg.MaxFragment, minFragment)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	base := cfg.TLS.Clone()
	// The client chain is verified in VerifyConnection (verifyClientChain),
	// not by crypto/tls, so that verified chains can be cached and every
	// refusal of the peer's certificate carries an error of this package
	// (ErrNoClientCert, ErrCertExpired, ErrUnknownIssuer). That includes no
	// certificate at all, hence RequestClientCert: with RequireAnyClientCert
	// crypto/tls refuses an empty Certificate message itself, before
	// VerifyConnection, with an error only its text identifies. The price
	// is the alert for that case, bad_certificate instead of
	// certificate_required (TLS 1.3) or handshake_failure (TLS 1.2). Go
	// still checks the CertificateVerify of a peer that sent a certificate,
	// and still sends the ClientCAs subjects as CA names whenever ClientCAs
	// is set: OmitCANames gives it none.
	clientCAs := base.ClientCAs
	base.ClientAuth = tls.RequestClientCert
	if cfg.OmitCANames {
		base.ClientCAs = nil
	}
	if cfg.ChainCache == 0 {
		cfg.ChainCache = DefaultChainCache
	}
	// Tickets only with Resumption: each resumed session is re-decided in
	// verifyConnection (RFC 9190 §5.7) and bound by wrapSession.
	base.SessionTicketsDisabled = !cfg.Resumption.Enabled()
	if cfg.Resumption.MaxLifetime < 0 {
		return nil, fmt.Errorf("eaptls: Resumption.MaxLifetime %v is negative", cfg.Resumption.MaxLifetime)
	}
	if base.MinVersion < tls.VersionTLS12 {
		base.MinVersion = tls.VersionTLS12
	}
	if len(base.CurvePreferences) == 0 {
		base.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	s := &Server{
		cfg:        cfg,
		base:       base,
		userVerify: base.VerifyConnection,
		clientCAs:  clientCAs,
		log:        cfg.Logger,
		metrics:    cfg.Metrics,
	}
	if cfg.ChainCache > 0 {
		s.chains = newChainCache(cfg.ChainCache)
	}
	base.VerifyConnection = nil
	if cfg.Resumption.Enabled() {
		// Never crypto/tls's automatic keys: those rotate on its own
		// schedule, and this server's keys are replaced only by its owner.
		if err := s.RotateTicketKey(); err != nil {
			return nil, err
		}
	}
	if cfg.AllowNoEMS {
		s.log.Warn("eaptls: TLS 1.2 peers without Extended Master Secret are allowed")
	}
	return s, nil
}

// session states
const (
	stIdentity  = iota // waiting for EAP-Response/Identity
	stTLS              // Start sent or handshake running
	stSucceeded        // final flight sent, waiting for the ACK
	stAlerted          // alert sent, waiting for the ACK
	stDone
)

// Session is one EAP-TLS authentication whose Authorizer decides a D. Step
// is not safe for concurrent use; Close may be called from any goroutine.
type Session[D any] struct {
	srv  *Server
	opts SessionOptions
	// ctx is the session's own lifetime (NewSession's ctx with
	// HandshakeTimeout): its end closes the conn. The Authorizer never
	// sees it, only the ctx of its Step.
	ctx   context.Context
	stop  context.CancelFunc
	unreg func() bool
	frag  fragmenter
	reasm reassembler
	conn  memConn

	state    int
	id       uint8  // Identifier of the outstanding EAP-Request
	last     []byte // outstanding EAP-Request, re-sent for stale responses
	final    Result[D]
	rounds   int
	ignored  int
	started  bool
	sawSH    bool
	identity string
	ems      bool
	cr, sr   [32]byte
	haveRand [2]bool

	// round is the Step whose peer message the TLS coroutine is reading,
	// set by exchange around the switch to it and cleared after: crypto/tls
	// calls VerifyConnection without a context, and a handshake spans
	// several Steps, so this is how that Step's ctx and Authorizer reach
	// verifyConnection on the coroutine.
	round struct {
		ctx       context.Context
		authorize Authorizer[D]
	}

	// Written by the TLS coroutine before it yields in Read or finishes;
	// the coroutine switch orders those writes before the driver's reads.
	authErr  error
	decision D
	decided  bool
	cs       tls.ConnectionState
	keys     keyMaterial
	postErr  bool // failure after the handshake (keys): never send its flight

	// Resumption (resume.go): tlsCfg is the handshake's own tls.Config,
	// whose ticket keys wrap and unwrap; resumed is the ticket a resumed
	// handshake came from (haveTicket), written by the coroutine.
	tlsCfg     *tls.Config
	tickets    TicketPolicy[D]
	resumed    Ticket
	haveTicket bool
	// resumedInters completes the leaf a lean ticket carries.
	resumedInters []*x509.Certificate
}

// NewSession starts an EAP-TLS session on s whose Authorizer decides a D.
// ctx bounds the session (with HandshakeTimeout); each Step brings its own
// ctx for the Authorizer.
func NewSession[D any](ctx context.Context, s *Server, o SessionOptions) *Session[D] {
	ss := &Session[D]{srv: s, opts: o}
	ss.ctx, ss.stop = context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	ss.conn.init(&s.pool)
	ss.frag = fragmenter{pool: &s.pool, size: fragmentSize(o.MTU, s.cfg.MaxFragment)}
	ss.reasm = reassembler{pool: &s.pool, max: s.cfg.MaxMessage, total: -1}
	// No goroutine per session for the timer: context.AfterFunc registers
	// a callback on the cancelCtx.
	ss.unreg = context.AfterFunc(ss.ctx, func() { ss.conn.closeWith(ctxErr(ss.ctx.Err())) })
	return ss
}

// Identity is the EAP-Response/Identity; do not use it for authorization
// (RFC 9190 §2.2: TLS 1.3 peers often send anonymous NAIs).
func (s *Session[D]) Identity() string { return s.identity }

// Keys returns MSK and EMSK (64 bytes each) after Success, else nil.
func (s *Session[D]) Keys() (msk, emsk []byte) {
	if s.final.Outcome != Success {
		return nil, nil
	}
	return s.keys.keys()
}

// SessionID returns the 65-byte EAP-TLS Session-Id after Success.
func (s *Session[D]) SessionID() []byte {
	if s.final.Outcome != Success {
		return nil
	}
	return s.keys.id()
}

// ConnectionState returns the TLS state: complete after Success, and after
// an Authorizer rejection the state it was shown (peer certificates).
func (s *Session[D]) ConnectionState() tls.ConnectionState { return s.cs }

// AuthErr returns the Authorizer's error, if it rejected the peer.
func (s *Session[D]) AuthErr() error { return s.authErr }

// Close ends the handshake coroutine (a suspended Read fails) and releases
// the timer. Idempotent and safe to call concurrently with Step.
func (s *Session[D]) Close() {
	s.unreg()
	s.stop()
	s.conn.closeWith(ErrClosed)
}

// Step takes one whole EAP packet from the peer (first: EAP-Response/
// Identity; an empty packet asks for an EAP-Request/Identity, for NASes
// that forward EAP-Start) and returns the next EAP packet to send.
//
// If this packet completes the peer's certificate flight, Step calls
// authorize (nil allows) with ctx, on the calling goroutine, before it
// returns; the Result carries its decision from then on. authorize is a
// parameter of Step rather than of the session because how the decision
// may block can depend on who answers this packet (a caller running some
// rounds on a goroutine that must stay free hands its work off before a
// slow decision); the policy itself should be the same every round.
//
// On Failure Reply is an EAP-Failure and err (if any) says why; always send
// Reply when it is non-nil. After the session ended Step returns the final
// Result again with ErrDone.
func (s *Session[D]) Step(ctx context.Context, eap []byte, authorize Authorizer[D]) (Result[D], error) {
	res, err := s.step(ctx, eap, authorize)
	res.Decision, res.Decided = s.decision, s.decided
	return res, err
}

func (s *Session[D]) step(ctx context.Context, eap []byte, authorize Authorizer[D]) (Result[D], error) {
	if s.state == stDone {
		return s.final, ErrDone
	}
	// The AfterFunc that closes the conn runs asynchronously; checking here
	// makes an expired or cancelled session fail deterministically.
	if err := s.ctx.Err(); err != nil {
		return s.fail(s.respID(eap), ctxErr(err))
	}
	s.rounds++
	if s.rounds > s.srv.cfg.MaxRounds {
		return s.fail(s.respID(eap), fmt.Errorf("%w: more than %d", ErrTooManyRounds, s.srv.cfg.MaxRounds))
	}
	if len(eap) == 0 && s.state == stIdentity {
		if s.last == nil {
			s.id = 1
		}
		s.last = Packet{Code: CodeRequest, ID: s.id, Type: TypeIdentity}.Encode()
		return Result[D]{Reply: s.last, Outcome: Continue}, nil
	}
	p, err := ParsePacket(eap)
	if err != nil {
		return s.fail(s.respID(eap), err)
	}
	if p.Code != CodeResponse {
		return s.fail(p.ID, fmt.Errorf("%w: EAP code %d from peer", ErrProtocol, p.Code))
	}
	if s.last != nil && p.ID != s.id {
		// A stale or foreign Identifier never advances TLS.
		s.ignored++
		if s.ignored > maxIgnored {
			return s.fail(s.id, fmt.Errorf("%w: %d responses with a stale Identifier", ErrTooManyRounds, s.ignored))
		}
		return Result[D]{Reply: s.last, Outcome: Continue, Ignored: true}, nil
	}
	if s.state == stIdentity {
		if p.Type != TypeIdentity {
			return s.fail(p.ID, fmt.Errorf("%w: expected EAP-Response/Identity, got type %d", ErrProtocol, p.Type))
		}
		s.identity = string(p.Data)
		s.state = stTLS
		s.id = p.ID + 1
		s.last = tlsPacket(CodeRequest, s.id, flagStart, 0, nil)
		return Result[D]{Reply: s.last, Outcome: Continue}, nil
	}
	switch p.Type {
	case TypeTLS:
	case TypeNak:
		return s.fail(p.ID, ErrNak)
	default:
		return s.fail(p.ID, fmt.Errorf("%w: EAP type %d during EAP-TLS", ErrProtocol, p.Type))
	}
	flags, rest := tlsPayload(p.Data)
	if flags&flagStart != 0 {
		return s.fail(p.ID, fmt.Errorf("%w: S flag in a response", ErrMalformed))
	}
	ack := isAck(flags, rest)
	if s.frag.pending() {
		if !ack {
			return s.fail(p.ID, fmt.Errorf("%w: expected ACK of a fragment", ErrProtocol))
		}
		return s.sendFragment(), nil
	}
	switch s.state {
	case stSucceeded:
		if !ack {
			// Typically the peer's alert about our Finished.
			return s.fail(p.ID, fmt.Errorf("%w: peer answered the final flight with data", ErrProtocol))
		}
		return s.succeed(p.ID), nil
	case stAlerted:
		_, err := s.conn.result()
		return s.fail(p.ID, err)
	}
	if ack {
		return s.fail(p.ID, fmt.Errorf("%w: ACK while TLS data was expected", ErrProtocol))
	}
	msg, complete, err := s.reasm.add(flags, rest)
	if err != nil {
		return s.fail(p.ID, err)
	}
	if !complete {
		s.id++
		s.last = tlsPacket(CodeRequest, s.id, 0, 0, nil)
		return Result[D]{Reply: s.last, Outcome: Continue}, nil
	}
	return s.exchange(ctx, authorize, p.ID, msg)
}

// exchange feeds one complete peer TLS message and turns TLS's answer into
// the next EAP packet. The Authorizer, if this message makes TLS call it,
// runs inside conn.exchange.
func (s *Session[D]) exchange(ctx context.Context, authorize Authorizer[D], respID uint8, msg []byte) (Result[D], error) {
	if !s.started {
		s.started = true
		if body, ok := firstHandshake(msg, hsClientHello); ok {
			if r, ok := helloRandom(body); ok {
				copy(s.cr[:], r)
				s.haveRand[0] = true
			}
		}
		s.conn.start(s.run)
	}
	s.round.ctx, s.round.authorize = ctx, authorize
	out, st := s.conn.exchange(msg)
	s.round.ctx, s.round.authorize = nil, nil
	s.reasm.release()
	if !s.sawSH && len(out) > 0 {
		s.sawSH = true
		if body, ok := firstHandshake(out, hsServerHello); ok {
			if r, ok := helloRandom(body); ok {
				copy(s.sr[:], r)
				s.haveRand[1] = true
			}
			s.ems = serverHelloEMS(body)
		}
	}
	switch {
	case st.done && st.err == nil:
		if len(out) == 0 {
			return s.succeed(respID), nil
		}
		s.state = stSucceeded
	case st.closed:
		s.srv.pool.put(out)
		return s.fail(respID, st.closeErr)
	case st.done:
		if s.postErr || len(out) == 0 {
			s.srv.pool.put(out)
			return s.fail(respID, st.err)
		}
		s.state = stAlerted
	default:
		if len(out) == 0 {
			return s.fail(respID, fmt.Errorf("%w: peer message left TLS without an answer", ErrProtocol))
		}
	}
	s.frag.load(out)
	return s.sendFragment(), nil
}

func (s *Session[D]) sendFragment() Result[D] {
	s.id++
	s.last = s.frag.next(CodeRequest, s.id)
	return Result[D]{Reply: s.last, Outcome: Continue}
}

// run is the handshake coroutine. It ends when the handshake finishes or
// the conn is closed (Close, timeout).
func (s *Session[D]) run() {
	cfg := s.srv.base.Clone()
	cfg.VerifyConnection = s.verifyConnection
	if s.opts.MaxVersion != 0 {
		cfg.MaxVersion = s.opts.MaxVersion
	}
	if s.opts.NoResume {
		cfg.SessionTicketsDisabled = true
	}
	if !cfg.SessionTicketsDisabled {
		cfg.WrapSession, cfg.UnwrapSession = s.wrapSession, s.unwrapSession
	}
	s.tlsCfg = cfg
	tc := tls.Server(&s.conn, cfg)
	err := tc.Handshake()
	if err == nil {
		// crypto/tls did not verify the chain (verifyConnection did), so
		// its state lacks the chains verifyConnection kept.
		chains := s.cs.VerifiedChains
		s.cs = tc.ConnectionState()
		s.cs.VerifiedChains = chains
		cr, sr := s.cr[:], s.sr[:]
		if !s.haveRand[0] || !s.haveRand[1] {
			cr, sr = nil, nil
		}
		if err = s.keys.derive(&s.cs, cr, sr); err != nil {
			s.postErr = true
		} else if s.cs.Version == tls.VersionTLS13 {
			// Protected success indication (RFC 9190 §2.5). The tls.Conn
			// is never closed, so no close_notify is ever written.
			if _, err = tc.Write([]byte{0}); err != nil {
				s.postErr = true
			}
		}
	}
	s.conn.finish(err)
}

// verifyConnection runs on the TLS coroutine once the peer's certificate
// message arrived: the client chain against ClientCAs (clientAuth EKU), EMS
// policy, the caller's VerifyConnection, then the Authorizer of the Step
// being run. An error here makes Go send a fatal alert.
func (s *Session[D]) verifyConnection(cs tls.ConnectionState) error {
	if cs.DidResume && len(cs.PeerCertificates) == 1 && len(s.resumedInters) > 0 {
		// A lean ticket: the chain is the leaf and the intermediates it
		// named, exactly what the peer sent in its full handshake.
		cs.PeerCertificates = append(cs.PeerCertificates[:1:1], s.resumedInters...)
	}
	chains, err := s.srv.verifyClientChain(cs.PeerCertificates)
	if err != nil {
		return err
	}
	cs.VerifiedChains = chains
	s.cs = cs
	// A resumed TLS 1.2 session is checked before its ServerHello left
	// (s.ems unknown yet); its ticket was issued only with EMS
	// (ticketFor), and crypto/tls refuses to resume across an EMS change
	// (RFC 7627 §5.3).
	if cs.Version == tls.VersionTLS12 && !s.ems && !cs.DidResume && !s.srv.cfg.AllowNoEMS {
		return ErrNoEMS
	}
	if s.srv.userVerify != nil {
		if err := s.srv.userVerify(cs); err != nil {
			return err
		}
	}
	if authorize := s.round.authorize; authorize != nil {
		d, err := authorize(s.round.ctx, cs)
		s.decision, s.decided = d, true
		if err != nil {
			s.authErr = err
			return fmt.Errorf("eaptls: authorization: %w", err)
		}
	}
	return nil
}

// verifyClientChain does what crypto/tls does for RequireAndVerifyClientCert
// (a certificate is required; ClientCAs as roots, the rest of the peer's
// chain as intermediates, the clientAuth EKU, the current time), answering
// from the chain cache when the peer sent exactly these certificates
// before. A cache hit outside the chain's validity window is a miss, so
// every refusal comes from x509.Verify.
func (srv *Server) verifyClientChain(certs []*x509.Certificate) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, ErrNoClientCert
	}
	now := time.Now()
	if srv.base.Time != nil {
		now = srv.base.Time()
	}
	var key [32]byte
	if srv.chains != nil {
		key = chainKey(certs)
		if chains, ok := srv.chains.get(key, certs, now); ok {
			srv.metrics.ChainCache(true)
			return chains, nil
		}
		srv.metrics.ChainCache(false)
	}
	opts := x509.VerifyOptions{
		Roots:         srv.clientCAs,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime:   now,
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return nil, chainError(certs, err)
	}
	if srv.chains != nil {
		srv.chains.put(key, chains)
	}
	return chains, nil
}

// chainError is x509.Verify's refusal of certs as crypto/tls reports it
// (tls.CertificateVerificationError, so errors.As still finds the x509
// error), marked with this package's sentinel for the causes a caller
// tells apart.
func chainError(certs []*x509.Certificate, err error) error {
	cve := &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	// x509 reports "not yet valid" with the Expired reason too.
	if inv, ok := errors.AsType[x509.CertificateInvalidError](err); ok && inv.Reason == x509.Expired {
		return fmt.Errorf("%w: %w", ErrCertExpired, cve)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w: %w", ErrUnknownIssuer, cve)
	}
	return cve
}

// ctxErr maps the session context's end to the package sentinels.
func ctxErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return ErrClosed
	}
	return ErrTimeout
}

func (s *Session[D]) respID(eap []byte) uint8 {
	if len(eap) >= 2 {
		return eap[1]
	}
	return s.id
}

func (s *Session[D]) succeed(respID uint8) Result[D] {
	s.final = Result[D]{Reply: Packet{Code: CodeSuccess, ID: respID}.Encode(), Outcome: Success}
	s.finish()
	s.srv.metrics.Handshake(versionName(s.cs.Version), true)
	if s.cs.DidResume {
		s.srv.metrics.Resumed(versionName(s.cs.Version), ResumeOK)
	}
	return s.final
}

func (s *Session[D]) fail(respID uint8, err error) (Result[D], error) {
	if err == nil {
		err = ErrProtocol
	}
	s.final = Result[D]{Reply: Packet{Code: CodeFailure, ID: respID}.Encode(), Outcome: Failure}
	s.finish()
	s.srv.metrics.Handshake(versionName(s.cs.Version), false)
	if s.cs.DidResume {
		r := ResumeFailed
		if s.authErr != nil {
			r = ResumeRefused
		}
		s.srv.metrics.Resumed(versionName(s.cs.Version), r)
	}
	s.srv.log.Debug("eaptls: authentication failed", "identity", s.identity, "err", err)
	return s.final, err
}

func (s *Session[D]) finish() {
	s.state = stDone
	s.last = nil
	s.frag.reset()
	s.reasm.release()
	s.Close()
}
