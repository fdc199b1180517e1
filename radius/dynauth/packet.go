package dynauth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc3576"
	"layeh.com/radius/rfc3580"

	"hardbound/radius/packet"
	"hardbound/store"
)

// Kind selects the RFC 5176 request type.
type Kind int

const (
	// Disconnect ends the session (Disconnect-Request, code 40). It is the
	// portable lever: the device re-runs EAP-TLS and meets posture.Decide.
	Disconnect Kind = iota
	// CoA changes the session's authorization in place (CoA-Request, code 43);
	// hardbound uses it to move a session to a quarantine VLAN.
	CoA
)

// String is the metric label / audit action suffix.
func (k Kind) String() string {
	if k == CoA {
		return "coa"
	}
	return "disconnect"
}

func (k Kind) code() radius.Code {
	if k == CoA {
		return radius.CodeCoARequest
	}
	return radius.CodeDisconnectRequest
}

func (k Kind) answers() (ack, nak radius.Code) {
	if k == CoA {
		return radius.CodeCoAACK, radius.CodeCoANAK
	}
	return radius.CodeDisconnectACK, radius.CodeDisconnectNAK
}

// Identity identifies one session on a NAS. Values must be exactly what the
// NAS sent in accounting (hostapd, for one, compares Acct-Session-Id
// byte-for-byte and requires every attribute present to match).
type Identity struct {
	AcctSessionID    string
	UserName         string
	CallingStationID string
	// NASIdentifier and NASIPAddress identify the NAS itself; a NAS rejects a
	// request naming another NAS (Error-Cause 403). An IPv6 NASIPAddress is
	// sent as NAS-IPv6-Address.
	NASIdentifier string
	NASIPAddress  string
}

// IdentityFromSession copies the identification attributes of an accounting
// session. Framed-IP-Address and NAS-Port are deliberately left out: hostapd
// answers Error-Cause 401 to Framed-IP-Address.
func IdentityFromSession(s *store.Session) Identity {
	return Identity{
		AcctSessionID:    s.AcctSessionID,
		UserName:         s.UserName,
		CallingStationID: s.CallingStationID,
		NASIdentifier:    s.NASIdentifier,
		NASIPAddress:     s.NASIPAddress,
	}
}

// Request is one dynamic-authorization request.
type Request struct {
	Kind     Kind
	Identity Identity
	// VLAN is the Tunnel-Private-Group-ID for a CoA (RFC 3580 §3.31 attribute
	// triple, tag 1); required when Kind is CoA.
	VLAN string
}

// Sentinel errors; the Sender wraps them.
var (
	ErrNAK        = errors.New("dynauth: request refused by NAS (NAK)")
	ErrTimeout    = errors.New("dynauth: no valid answer from NAS")
	ErrBadRequest = errors.New("dynauth: invalid request")
	ErrBadPacket  = errors.New("dynauth: malformed or unauthentic response")
)

// ErrorCause is the RFC 5176 §3.5 Error-Cause value of a NAK (0 = none).
type ErrorCause uint32

// ErrorCauseSessionNotFound (503) means the session is already gone.
const ErrorCauseSessionNotFound ErrorCause = 503

// String gives "503 Session-Context-Not-Found" style text for operators.
func (c ErrorCause) String() string {
	if c == 0 {
		return ""
	}
	var name string
	switch c {
	case 201:
		name = "Residual-Session-Context-Removed"
	case 202:
		name = "Invalid-EAP-Packet"
	case 401:
		name = "Unsupported-Attribute"
	case 402:
		name = "Missing-Attribute"
	case 403:
		name = "NAS-Identification-Mismatch"
	case 404:
		name = "Invalid-Request"
	case 405:
		name = "Unsupported-Service"
	case 406:
		name = "Unsupported-Extension"
	case 407:
		name = "Invalid-Attribute-Value"
	case 501:
		name = "Administratively-Prohibited"
	case 502:
		name = "Request-Not-Routable"
	case 503:
		name = "Session-Context-Not-Found"
	case 504:
		name = "Session-Context-Not-Removable"
	case 505:
		name = "Other-Proxy-Processing-Error"
	case 506:
		name = "Resources-Unavailable"
	case 507:
		name = "Request-Initiated"
	case 508:
		name = "Multiple-Session-Selection-Unsupported"
	default:
		name = "Unknown"
	}
	return strconv.FormatUint(uint64(c), 10) + " " + name
}

// NAKError is returned (wrapping ErrNAK) when the NAS refuses a request.
type NAKError struct {
	Kind  Kind
	Cause ErrorCause
}

func (e *NAKError) Error() string {
	if e.Cause == 0 {
		return fmt.Sprintf("dynauth: %s NAK without Error-Cause", e.Kind)
	}
	return fmt.Sprintf("dynauth: %s NAK: Error-Cause %s", e.Kind, e.Cause)
}

// Is makes errors.Is(err, ErrNAK) true.
func (e *NAKError) Is(target error) bool { return target == ErrNAK }

// encodeRequest builds the wire form of req with the given Identifier. The
// codec puts Message-Authenticator first, computed over a zero
// Authenticator field, then the Request Authenticator over the final
// octets (RFC 5176 §2.3, §3.4).
func encodeRequest(req Request, id byte, sec *packet.Secret, now time.Time) ([]byte, error) {
	ident := req.Identity
	if ident.AcctSessionID == "" && ident.UserName == "" && ident.CallingStationID == "" {
		return nil, fmt.Errorf("%w: no session identification attribute", ErrBadRequest)
	}
	p := &radius.Packet{Code: req.Kind.code(), Identifier: id}
	if ident.NASIPAddress != "" {
		ip := net.ParseIP(ident.NASIPAddress)
		var err error
		switch {
		case ip == nil:
			err = fmt.Errorf("%w: NAS-IP-Address %q", ErrBadRequest, ident.NASIPAddress)
		case ip.To4() != nil:
			err = rfc2865.NASIPAddress_Set(p, ip.To4())
		default:
			err = rfc3162.NASIPv6Address_Set(p, ip)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, s := range []struct {
		t radius.Type
		v string
	}{
		{rfc2865.NASIdentifier_Type, ident.NASIdentifier},
		{rfc2865.UserName_Type, ident.UserName},
		{rfc2866.AcctSessionID_Type, ident.AcctSessionID},
		{rfc2865.CallingStationID_Type, ident.CallingStationID},
	} {
		if s.v == "" {
			continue
		}
		a, err := radius.NewString(s.v)
		if err != nil {
			return nil, fmt.Errorf("%w: attribute %d: %v", ErrBadRequest, s.t, err)
		}
		p.Add(s.t, a)
	}
	if err := rfc2869.EventTimestamp_Set(p, now); err != nil {
		return nil, fmt.Errorf("dynauth: event-timestamp: %w", err)
	}
	if req.Kind == CoA {
		if req.VLAN == "" {
			return nil, fmt.Errorf("%w: CoA without VLAN", ErrBadRequest)
		}
		// Tag 1 on all three: hostapd groups tunnel attributes by tag.
		if err := rfc2868.TunnelType_Add(p, 1, rfc3580.TunnelType_Value_VLAN); err != nil {
			return nil, err
		}
		if err := rfc2868.TunnelMediumType_Add(p, 1, rfc2868.TunnelMediumType_Value_IEEE802); err != nil {
			return nil, err
		}
		if err := rfc2868.TunnelPrivateGroupID_AddString(p, 1, req.VLAN); err != nil {
			return nil, fmt.Errorf("%w: VLAN: %v", ErrBadRequest, err)
		}
	}
	b, err := sec.EncodeRequest(p.Code, id, p.Attributes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return b, nil
}

// Response is a parsed, authenticated answer.
type Response struct {
	Code       radius.Code
	ACK        bool
	ErrorCause ErrorCause
	// HasMA reports a (verified) Message-Authenticator in the answer.
	HasMA bool
}

// parseResponse validates raw as the answer to request (the exact bytes we
// sent) under sec: framing, code, identifier, then the codec's
// Message-Authenticator (when present or required, computed with the
// request's authenticator in the header) and Response Authenticator
// (MD5(Code|Id|Length|RequestAuth|Attrs|Secret), RFC 5176 §2.3). Any
// failure is ErrBadPacket and the caller keeps waiting, as RFC 2865 §3
// requires for invalid responses.
func parseResponse(raw, request []byte, sec *packet.Secret, requireMA bool) (*Response, error) {
	if len(raw) < packet.HeaderLen {
		return nil, badPacket("short", "short packet (%d bytes)", len(raw))
	}
	if len(request) < packet.HeaderLen {
		return nil, badPacket("malformed", "no request to match")
	}
	p, err := packet.Parse(raw) // octets past Length are padding (RFC 2865 §3)
	if err != nil {
		return nil, badPacket(framingWhy(err), "%v", err)
	}
	code := p.Code()
	var kind Kind
	switch radius.Code(request[0]) {
	case radius.CodeCoARequest:
		kind = CoA
	case radius.CodeDisconnectRequest:
		kind = Disconnect
	default:
		return nil, badPacket("malformed", "request code %d", request[0])
	}
	ack, nak := kind.answers()
	if code != ack && code != nak {
		return nil, badPacket("code", "unexpected code %d", code)
	}
	if p.Identifier() != request[1] {
		return nil, badPacket("identifier", "identifier %d, want %d", p.Identifier(), request[1])
	}
	if err := sec.VerifyResponse(&p, request[4:packet.HeaderLen], packet.Policy{RequireMessageAuthenticator: requireMA}); err != nil {
		why := "message_authenticator"
		if errors.Is(err, packet.ErrBadAuthenticator) {
			why = "authenticator"
		}
		return nil, badPacket(why, "%v", err)
	}
	resp := &Response{Code: code, ACK: code == ack, HasMA: p.HasMessageAuthenticator()}
	if !resp.ACK {
		for t, v := range p.All() {
			if t == rfc3576.ErrorCause_Type && len(v) == 4 {
				resp.ErrorCause = ErrorCause(binary.BigEndian.Uint32(v))
				break
			}
		}
	}
	return resp, nil
}

// framingWhy is the metric label of a framing error.
func framingWhy(err error) string {
	switch {
	case errors.Is(err, packet.ErrShort):
		return "short"
	case errors.Is(err, packet.ErrLength), errors.Is(err, packet.ErrTooLarge):
		return "length"
	case errors.Is(err, packet.ErrMessageAuthenticatorForm):
		return "message_authenticator"
	case errors.Is(err, packet.ErrAttributes):
		return "attributes"
	default:
		return "malformed"
	}
}

// packetError is a discarded answer; why is a bounded metric label.
type packetError struct{ why, detail string }

func (e *packetError) Error() string { return ErrBadPacket.Error() + ": " + e.detail }

// Is makes errors.Is(err, ErrBadPacket) true.
func (e *packetError) Is(target error) bool { return target == ErrBadPacket }

func badPacket(why, format string, args ...any) error {
	return &packetError{why: why, detail: fmt.Sprintf(format, args...)}
}
