package eaptls

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrFailure is returned by Peer.Step when the server sent EAP-Failure.
	ErrFailure = errors.New("eaptls: authentication failed")
	// ErrMalformed marks an EAP or EAP-TLS packet that cannot be parsed or
	// whose flags and lengths are inconsistent.
	ErrMalformed = errors.New("eaptls: malformed packet")
	// ErrProtocol marks a well-formed packet that is not allowed at this
	// point of the conversation.
	ErrProtocol = errors.New("eaptls: protocol violation")
	// ErrTooLarge marks a reassembled TLS message above MaxMessage.
	ErrTooLarge = errors.New("eaptls: message too large")
	// ErrTooManyRounds marks a conversation that exceeded MaxRounds or the
	// allowance of ignored packets.
	ErrTooManyRounds = errors.New("eaptls: too many rounds")
	// ErrNak means the peer refused EAP-TLS.
	ErrNak = errors.New("eaptls: peer refused EAP-TLS (Nak)")
	// ErrNoEMS means a TLS 1.2 peer did not negotiate Extended Master Secret
	// and ServerConfig.AllowNoEMS is false.
	ErrNoEMS = errors.New("eaptls: TLS 1.2 peer without Extended Master Secret")
	// ErrKeys means MSK/EMSK or the Session-Id could not be derived.
	ErrKeys = errors.New("eaptls: key derivation failed")
	// ErrTimeout means the handshake did not finish within HandshakeTimeout
	// (or the session context ended).
	ErrTimeout = errors.New("eaptls: handshake timeout")
	// ErrClosed means Close was called.
	ErrClosed = errors.New("eaptls: session closed")
	// ErrDone is returned by Step once the session already ended.
	ErrDone = errors.New("eaptls: session already finished")
	// ErrNoClientCert means the peer answered the CertificateRequest with
	// no certificate.
	ErrNoClientCert = errors.New("eaptls: peer sent no client certificate")
	// ErrCertExpired means the peer's certificate chain is outside its
	// validity window at the time of the handshake (expired or not yet
	// valid).
	ErrCertExpired = errors.New("eaptls: client certificate expired or not yet valid")
	// ErrUnknownIssuer means the peer's certificate does not chain to
	// ServerConfig.TLS.ClientCAs.
	ErrUnknownIssuer = errors.New("eaptls: client certificate from an unknown issuer")
	// ErrNoSuccessIndication means a TLS 1.3 server sent EAP-Success before
	// the protected success indication (RFC 9190 §2.5).
	ErrNoSuccessIndication = errors.New("eaptls: EAP-Success before protected success indication")
)
