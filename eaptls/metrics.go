package eaptls

// Metrics receives one event per finished server session. version is
// "1.2", "1.3" or "unknown" (handshake never agreed on one), so labels stay
// bounded. Implementations must be safe for concurrent use.
type Metrics interface {
	// Handshake reports every finished session, full or resumed.
	Handshake(version string, ok bool)
	// Resumed reports, in addition, each session that resumed from a
	// ticket: result is ResumeOK, ResumeRefused (the Authorizer said no
	// on the ticket's certificate) or ResumeFailed (anything else).
	Resumed(version, result string)
	// TicketIgnored reports a ticket a peer offered that did not resume
	// (the Ticket* causes); the peer gets a full handshake.
	TicketIgnored(cause string)
	// ChainCache reports one client chain looked up in the cache of
	// verified chains.
	ChainCache(hit bool)
}

// Results of a resumed session (Metrics.Resumed).
const (
	ResumeOK      = "ok"
	ResumeRefused = "refused"
	ResumeFailed  = "failed"
)

// NopMetrics discards everything; it is the default.
type NopMetrics struct{}

// Handshake implements Metrics.
func (NopMetrics) Handshake(string, bool) {}

// Resumed implements Metrics.
func (NopMetrics) Resumed(string, string) {}

// TicketIgnored implements Metrics.
func (NopMetrics) TicketIgnored(string) {}

// ChainCache implements Metrics.
func (NopMetrics) ChainCache(bool) {}
