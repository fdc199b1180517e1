// Package packet is hardbound's one RADIUS codec: framing (RFC 2865 §3),
// the Request and Response Authenticators (RFC 2865 §3, RFC 2866 §3,
// RFC 5176 §2.3), Message-Authenticator (RFC 2869 §5.14, RFC 3579 §3.2,
// RFC 5176 §3.4) and the attribute encoding that the server (package
// radius), the Disconnect/CoA client (radius/dynauth) and the EAP-TLS load
// generator (radius/eapclient) share. It imports none of them.
//
// The BlastRADIUS (CVE-2024-3596) rules live here and nowhere else:
//
//   - every packet this package encodes that may carry Message-Authenticator
//     carries it as its FIRST attribute, so the unpredictable HMAC precedes
//     any bytes an attacker can choose (an echoed Proxy-State); every request
//     it encodes has one, and so has every Access-Accept, Access-Reject and
//     Access-Challenge;
//   - Secret.VerifyRequest and Secret.VerifyResponse check a present
//     Message-Authenticator before the Authenticator and before anything
//     reads an attribute, and they require one on Status-Server, on an
//     Access-Request carrying EAP-Message, on every Access-Accept, -Reject
//     and -Challenge, and wherever a Policy asks for it;
//   - a received packet may carry Message-Authenticator anywhere: NASes and
//     supplicant test tools (hostapd, eapol_test) append it last, and the
//     HMAC covers the whole packet wherever it sits.
//
// Every authenticator comparison is constant-time (hmac.Equal). Hashing
// uses crypto/hmac and crypto/md5; a Secret pools its hash states so that
// verifying and signing a packet allocate nothing.
//
// A Packet is a view into the datagram it was parsed from and copies
// nothing; the encoders take layeh.com/radius Attributes, so callers build
// values with its rfc2865, rfc2869, rfc5176 and vendor helpers.
package packet
