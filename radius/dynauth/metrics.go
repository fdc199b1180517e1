package dynauth

import "time"

// Result is the final outcome of one request: the metric label and the audit result.
type Result string

const (
	ResultACK     Result = "ack"
	ResultNAK     Result = "nak"
	ResultTimeout Result = "timeout"
	ResultError   Result = "error" // could not send (bad config, socket error)
)

// Metrics receives the package's measurements. Labels are bounded: kind is
// disconnect|coa, result the Result set, why a short fixed reason, event kinds
// the posture.EventKind set.
type Metrics interface {
	// Sent counts every datagram sent, retransmissions included.
	Sent(kind Kind)
	// Answered counts final outcomes.
	Answered(kind Kind, r Result)
	// InvalidResponse counts discarded datagrams (why: short|code|identifier|authenticator|message_authenticator|attributes).
	InvalidResponse(why string)
	// Enforced observes the time from a posture change to the last NAS answer.
	Enforced(eventKind string, d time.Duration)
	// Event counts posture events and the action taken (disconnect|coa|none|dropped|error|
	// claimed_elsewhere: another node sharing the database sends for every live session).
	Event(eventKind, action string)
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) Sent(Kind)                      {}
func (NopMetrics) Answered(Kind, Result)          {}
func (NopMetrics) InvalidResponse(string)         {}
func (NopMetrics) Enforced(string, time.Duration) {}
func (NopMetrics) Event(string, string)           {}
