// Package dynauth is hardbound's RFC 5176 Dynamic Authorization client: it
// sends Disconnect-Request and CoA-Request to the NASes that hold live
// sessions of a device whose standing changed, and the Enforcer that turns
// posture events into those requests.
//
// hardbound is the Dynamic Authorization *client* here; the NAS runs the DAS
// (UDP 3799). Requests carry Event-Timestamp (RFC 5176 §3, hostapd drops
// requests without it by default) and Message-Authenticator computed over the
// packet with a zero authenticator field (RFC 5176 §3, RFC 3579 §3.2), and
// identify the session exactly as the NAS reported it in accounting.
//
// Metrics (through the Metrics interface; the wiring names them
// hardbound_dynauth_*):
//
//	requests_total{kind}              datagrams sent, retransmissions included (Sent)
//	answers_total{kind,result}        final outcome per request: ack|nak|timeout|error (Answered)
//	invalid_responses_total{why}      datagrams discarded: short|length|code|identifier|
//	                                  authenticator|message_authenticator|attributes|malformed
//	enforcement_seconds{event}        posture change -> last NAS answer, per event (Enforced)
//	events_total{event,action}        posture events and what was done:
//	                                  disconnect|coa|none|dropped|error (Event)
//
// Wiring: one Sender (NewSender) shared by everything that sends; one
// Enforcer (NewEnforcer) whose Run runs for the server's lifetime with
// Events/Profiles = *posture.Service, Sessions/Auditor = the store, and NAS
// = a lookup over the RADIUS client config (CoA port and secret).
package dynauth
