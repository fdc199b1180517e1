package radius

import "time"

// Metrics receives the server's counters. The wiring adapts it to
// Prometheus (hardbound_radius_*); every label value comes from a closed set:
//
//   - Request(packet, result): packet is access_request, status_server,
//     accounting_request; result is accept, reject, challenge, response,
//     cached (answered from the duplicate cache) or dropped.
//   - Reject(reason): a posture.Reason or one of the protocol reasons
//     (Reject* constants).
//   - Drop(cause): the Drop* constants.
//   - AuthDuration(result, d): first packet of a conversation to its
//     Access-Accept (result accept) or Access-Reject (reject).
//   - Conversations(n): live EAP conversations (gauge).
//   - Accounting(status, result): status is start, stop, interim_update,
//     accounting_on, accounting_off, other; result ok, no_class, bad_class,
//     store_error.
//   - AuditError(): an audit append failed (the decision still went out).
type Metrics interface {
	Request(packet, result string)
	Reject(reason string)
	Drop(cause string)
	AuthDuration(result string, d time.Duration)
	Conversations(n int)
	Accounting(status, result string)
	AuditError()
}

// Drop causes (the label of Metrics.Drop).
const (
	DropUnknownClient       = "unknown_client"
	DropTooLarge            = "too_large"
	DropMalformed           = "malformed"
	DropUnexpectedCode      = "unexpected_code"
	DropMissingMsgAuth      = "missing_message_authenticator"
	DropBadMsgAuth          = "bad_message_authenticator"
	DropProxyStateNoMsgAuth = "proxy_state_without_message_authenticator"
	DropBadAuthenticator    = "bad_authenticator"
	DropDuplicate           = "duplicate" // retransmission while the original is in progress
	DropQueueFull           = "queue_full"
	DropRateLimited         = "rate_limited" // Status-Server beyond its per-client rate
	DropStoreError          = "store_error"
	DropInternal            = "internal"
	// A conversation taken out for a newer one of the same
	// Calling-Station-Id on the same NAS, or evicted at a cap because it
	// never got past Identity/Start (conversation.go).
	DropReplaced = "conversation_replaced"
	DropEvicted  = "conversation_evicted"
)

// Protocol-level reject reasons (the label of Metrics.Reject besides the
// posture.Reason set).
const (
	RejectNoEAP         = "no_eap"
	RejectMalformedEAP  = "malformed_eap"
	RejectUnknownState  = "unknown_state"
	RejectOverCapacity  = "over_capacity"
	RejectTLSFailed     = "tls_failed"
	RejectNoClientCert  = "no_client_cert"
	RejectCertExpired   = "tls_cert_expired"
	RejectUnknownIssuer = "tls_unknown_issuer"
	RejectEAPFailure    = "eap_failure"
	RejectEAPProtocol   = "eap_protocol"
	RejectNak           = "eap_nak"
	RejectNoEMS         = "tls_no_ems"
	RejectTimeout       = "timeout"
	RejectInternal      = "internal"
)

// NopMetrics discards everything; the default.
type NopMetrics struct{}

func (NopMetrics) Request(string, string)             {}
func (NopMetrics) Reject(string)                      {}
func (NopMetrics) Drop(string)                        {}
func (NopMetrics) AuthDuration(string, time.Duration) {}
func (NopMetrics) Conversations(int)                  {}
func (NopMetrics) Accounting(string, string)          {}
func (NopMetrics) AuditError()                        {}
