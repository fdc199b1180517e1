// Package radius is hardbound's RADIUS/UDP server: authentication (1812)
// carrying EAP-TLS and accounting (1813), for the NASes configured as
// Clients.
//
// The pipeline for every datagram, in this order (docs/radius.md):
//
//  1. client lookup by source address (most specific prefix); unknown
//     sources are dropped and counted;
//  2. framing (RFC 2865 §3, <= 4096 bytes, attributes exactly filling Length);
//  3. authenticity before anything else: Message-Authenticator (RFC 3579
//     §3.2, HMAC-MD5, hmac.Equal) required on every Access-Request and
//     Status-Server (BlastRADIUS, CVE-2024-3596), the RFC 2866 Request
//     Authenticator on Accounting-Request; failures are silently discarded
//     and never touch the duplicate cache. Framing, authenticators and
//     encoding are the codec's (radius/packet), shared with radius/dynauth
//     and radius/eapclient;
//  4. the RFC 5080 §2.2.2 duplicate cache: a retransmission gets the cached
//     encoded response byte for byte, one still in progress is dropped;
//  5. EAP: conversations keyed by a fresh 16-byte random State per round,
//     one eaptls.Session each, Step serialized per conversation, idle
//     expiry and global / per-NAS caps; the Decider runs inside the TLS
//     handshake (eaptls.Authorizer) so a refused device gets a TLS alert;
//     or accounting: store.Session records keyed by (NAS, Acct-Session-Id),
//     answered only after the write succeeded.
//
// Every Access-Accept/Reject/Challenge (and the Status-Server answers) carry
// Message-Authenticator as their first attribute, followed by the echoed
// Proxy-State attributes in order. Access-Accept carries EAP-Success,
// MS-MPPE-Recv-Key = MSK[0:32], MS-MPPE-Send-Key = MSK[32:64] (RFC 2548,
// distinct salts), User-Name = the device id, Session-Timeout with
// Termination-Action RADIUS-Request, VLAN tunnel attributes (tag 0) and a
// Class token "hb1:<cert sha256>:<device id>" that accounting uses to map a
// session back to device and certificate.
//
// # Metrics
//
// Reported through the Metrics interface (the wiring maps it to
// hardbound_radius_*): requests by packet and result, rejects by reason
// (posture.Reason or the Reject* constants), drops by cause (Drop*
// constants), authentication duration by result, live conversations,
// accounting requests by status type and result, audit append failures.
package radius
