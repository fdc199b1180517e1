package radius

import (
	"hardbound/radius/packet"
)

// Wire constants (RFC 2865, 2866, 2869, 3579, 5176). Framing,
// authenticators and Message-Authenticator are package packet's.
const (
	maxPacket = packet.MaxLen   // 4096
	maxAttr   = packet.MaxValue // value bytes per attribute

	attrUserName            = 1
	attrNASIPAddress        = 4
	attrNASPort             = 5
	attrFramedIPAddress     = 8
	attrFramedMTU           = 12
	attrReplyMessage        = 18
	attrState               = 24
	attrClass               = 25
	attrSessionTimeout      = 27
	attrTerminationAction   = 29
	attrCalledStationID     = 30
	attrCallingStationID    = 31
	attrNASIdentifier       = 32
	attrProxyState          = 33
	attrAcctStatusType      = 40
	attrAcctDelayTime       = 41
	attrAcctInputOctets     = 42
	attrAcctOutputOctets    = 43
	attrAcctSessionID       = 44
	attrAcctTerminateCause  = 49
	attrAcctInputGigawords  = 52
	attrAcctOutputGigawords = 53
	attrEventTimestamp      = 55
	attrTunnelType          = 64
	attrTunnelMediumType    = 65
	attrEAPMessage          = 79
	attrMessageAuth         = 80
	attrTunnelPrivateGroup  = 81
	attrAcctInterimInterval = 85
	attrNASIPv6Address      = 95
	attrErrorCause          = 101

	errorCauseInvalidEAP = 202 // RFC 5176 §3.6: Invalid EAP Packet (Ignored)
)

// Sentinel errors for the wire layer: the codec's, so that errors.Is
// matches whichever a caller holds.
var (
	ErrMalformed = packet.ErrMalformed
	ErrTooLarge  = packet.ErrTooLarge
)
