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
//	requests_total{code}            packets sent, retransmissions included
//	answers_total{code,result}      final outcome per request: ack|nak|timeout|error
//	invalid_responses_total{why}    datagrams discarded (bad authenticator, MA, code...)
//	enforcement_seconds{kind}       posture change -> last NAS answer
//	events_total{kind,action}       posture events seen and what was done
package dynauth
