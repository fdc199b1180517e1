// Package eaptls implements the EAP-TLS method (RFC 5216 for TLS 1.2,
// RFC 9190 for TLS 1.3) over Go's crypto/tls, server side (Session) and
// peer side (Peer, for tests and load generation).
//
// # Contract
//
// The caller (the RADIUS layer) owns transport: RADIUS framing, EAP-Message
// splitting into 253-byte attributes, State, retransmission and duplicate
// detection. It hands Session.Step one whole EAP packet per Access-Request,
// with the request's context and its Authorizer, and sends back
// Result.Reply:
//
//   - Outcome Continue: Reply is an EAP-Request; answer Access-Challenge.
//     Result.Ignored marks a stale Identifier: Reply is the outstanding
//     request unchanged (RFC 3579 §2.2; Error-Cause 202 may be added).
//   - Outcome Success: Reply is EAP-Success; answer Access-Accept. Keys and
//     SessionID are valid from now on, never before.
//   - Outcome Failure: Reply is EAP-Failure; answer Access-Reject. Step's
//     error says why (match with errors.Is: ErrMalformed, ErrProtocol,
//     ErrTooLarge, ErrTooManyRounds, ErrNak, ErrNoClientCert,
//     ErrCertExpired, ErrUnknownIssuer, ErrNoEMS, ErrKeys, ErrTimeout,
//     ErrClosed, or the Authorizer's own error); AuthErr holds the
//     Authorizer's error alone.
//
// Result.Decision is what the Authorizer returned (Result.Decided: it ran),
// whether it allowed the peer or not; a Session[D] is generic over that
// decision's type so that it comes back typed, without an allocation.
//
// This package owns everything inside EAP-TLS: the Identity and Start
// exchange, fragmentation both ways (L/M flags, ACKs, a new Identifier per
// request), reassembly (capped at MaxMessage), round limits, TLS alerts on
// failure (alert in an EAP-Request, the peer's ACK, then EAP-Failure), the
// TLS 1.3 protected success indication (one 0x00 application-data byte, no
// close_notify ever) and key derivation. Fragment size is
// min(MaxFragment, Framed-MTU - 14) TLS bytes; a Framed-MTU below 100 is
// ignored and 0 means 1020.
//
// Keys: MSK = Key_Material[0:64], EMSK = Key_Material[64:128], where
// Key_Material is TLS-PRF("client EAP encryption", client.random ||
// server.random) for TLS 1.2 (the RFC 5705 exporter with a nil context,
// which requires Extended Master Secret in Go) and
// TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128) for TLS 1.3.
// Session-Id is 0x0D || client.random || server.random (TLS 1.2) or
// 0x0D || TLS-Exporter("EXPORTER_EAP_TLS_Method-Id", 0x0D, 64) (TLS 1.3).
// A derivation error is a Failure: the server never answers Success without
// keys. TLS 1.2 peers without EMS are rejected with a TLS alert unless
// ServerConfig.AllowNoEMS is set, which additionally needs
// GODEBUG=tlsunsafeekm=1 (this package does not reimplement the TLS PRF).
//
// Policy: the Authorizer runs inside tls.Config.VerifyConnection, after the
// client chain verified against ClientCAs with the clientAuth EKU
// (verifyClientChain, which names a missing, expired or not yet valid, or
// foreign certificate with its sentinel), so a rejection becomes a TLS
// alert before the TLS 1.2 Finished or the TLS 1.3 success indication. It
// runs on the goroutine calling Step, in the Step whose packet completes
// the peer's certificate flight, with that Step's context.
//
// Resumption (ServerConfig.Resumption, resume.go): session tickets for TLS
// 1.2 (RFC 5077, RFC 5216 §2.1.2) and PSK with (EC)DHE for TLS 1.3 (RFC
// 9190 §2.1.2-2.1.3). On a resumed session crypto/tls calls
// VerifyConnection too, with the certificate the ticket carries: the chain
// is verified and the Authorizer runs again, exactly as in a full
// handshake (RFC 9190 §5.7), before the TLS 1.2 server Finished or the TLS
// 1.3 success indication. A ticket never outlives Resumption.MaxLifetime,
// the certificate or the session's TicketPolicy, counted from the full
// handshake; resuming does not extend it. A ticket carries only the leaf
// (ticketchain.go). Ticket keys are drawn at NewServer and replaced with
// SetTicketKeys or RotateTicketKey; they are never logged.
//
// # Concurrency and resources
//
// Each session runs crypto/tls as a coroutine (iter.Pull) over an
// in-memory net.Conn: Step hands it a complete peer message and switches to
// it on the calling goroutine until TLS blocks for more input or finishes,
// so an EAP round costs no scheduler hand-off. The coroutine starts with
// the first TLS message and ends when the handshake ends, on Close, or when
// HandshakeTimeout / the session context expires (Close resumes a suspended
// handshake with an error and runs it to its end). Step is not safe for
// concurrent use; Close is, and is idempotent. An Authorizer must honour
// its Step's context, or Step (and a concurrent Close, or the end of
// HandshakeTimeout) waits for it.
//
// # Metrics
//
// ServerConfig.Metrics receives Handshake(version, ok) once per finished
// session, version being "1.2", "1.3" or "unknown", and for a resumed one
// Resumed(version, result) as well; TicketIgnored(cause) for each ticket
// that did not resume. NopMetrics is the
// default; the wiring adapts the interface to Prometheus.
package eaptls
