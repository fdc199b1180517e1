// Package radsec is hardbound's RADIUS/TLS listener (RFC 6614, as updated
// by draft-ietf-radext-radiusdtls-bis): authentication, accounting and
// Status-Server from NASes (or NAS-side proxies) that authenticate with a
// certificate, over TLS 1.2 or 1.3 on TCP, the RADIUS layer keyed with the
// fixed secret "radsec". Packets are framed by their own Length field and
// handed to the one RADIUS pipeline (radius.Server.HandleStream, codec
// radius/packet); a stream whose framing breaks is closed, never
// resynchronised.
//
// A NAS is known by its certificate: one this hardbound's CA issued under
// the NAS profile (Issuer; SAN URI urn:hardbound:nas:<name>, recorded in
// the store so that revoking it closes its connections), or one a
// configured external CA issued whose subject or SAN matches a configured
// client. While a NAS holds a connection, Disconnect/CoA for its sessions
// go down that connection (Listener.Stream, dynauth.Sender.Via).
//
// Everything a peer can make the listener hold is bounded: connections in
// all and per NAS, the TLS handshake's duration, idle time, the time one
// packet may take to arrive (a trickling peer is cut off) and requests in
// flight per connection. docs/radsec.md has the rules and the settings.
package radsec
