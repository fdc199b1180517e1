package est

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Channel binding of the CSR (RFC 7030 §3.5): the client puts the base64
// channel binding of its TLS session into the CSR's challengePassword
// attribute, which proves that the key holder made the CSR inside the
// session the server authenticated. TLS 1.2 uses tls-unique (RFC 5929);
// TLS 1.3 has no tls-unique, so there it is tls-exporter (RFC 9266).
// docs/est.md has the rules.

var oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

// exporterLabel and exporterLen are RFC 9266's tls-exporter parameters.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// maxChallengePassword is PKCS #9's upper bound (RFC 2985: 255 characters).
const maxChallengePassword = 255

var errBindingUnavailable = errors.New("est: the TLS session has no channel binding")

// ChannelBinding is the value a CSR made in the TLS session cs must carry
// (raw; the CSR holds its base64) and its name.
func ChannelBinding(cs *tls.ConnectionState) ([]byte, string, error) {
	switch {
	case cs == nil:
		return nil, "", fmt.Errorf("%w: not TLS", errBindingUnavailable)
	case cs.Version >= tls.VersionTLS13:
		b, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
		if err != nil {
			return nil, "", fmt.Errorf("%w: tls-exporter: %w", errBindingUnavailable, err)
		}
		return b, "tls-exporter", nil
	case len(cs.TLSUnique) == 0:
		// crypto/tls leaves it empty on a resumption without extended
		// master secret, where tls-unique is not unique (RFC 7627).
		return nil, "", fmt.Errorf("%w: no tls-unique for this TLS 1.2 session", errBindingUnavailable)
	}
	return cs.TLSUnique, "tls-unique", nil
}

// challengePassword reads the challengePassword attribute of a DER
// CertificationRequestInfo (RFC 2986 §4.1; x509.CertificateRequest's
// RawTBSCertificateRequest): present reports whether there is one. More
// than one attribute, more than one value, a value that is not a
// PrintableString, UTF8String or IA5String, or malformed DER is an error.
func challengePassword(tbs []byte) (pw string, present bool, err error) {
	bad := func(what string) (string, bool, error) {
		return "", false, fmt.Errorf("%w: CertificationRequestInfo: %s", errBadRequest, what)
	}
	in := cryptobyte.String(tbs)
	var info, attrs cryptobyte.String
	var version int64
	var hasAttrs bool
	if !in.ReadASN1(&info, casn1.SEQUENCE) || !in.Empty() {
		return bad("not one SEQUENCE")
	}
	if !info.ReadASN1Integer(&version) || !info.SkipASN1(casn1.SEQUENCE) || !info.SkipASN1(casn1.SEQUENCE) {
		return bad("malformed version, subject or subjectPKInfo")
	}
	if !info.ReadOptionalASN1(&attrs, &hasAttrs, casn1.Tag(0).Constructed().ContextSpecific()) || !info.Empty() {
		return bad("malformed attributes")
	}
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, casn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, casn1.SET) || !attr.Empty() {
			return bad("malformed attribute")
		}
		if !oid.Equal(oidChallengePassword) {
			continue
		}
		if present {
			return bad("more than one challengePassword")
		}
		var val cryptobyte.String
		var tag casn1.Tag
		if !values.ReadAnyASN1(&val, &tag) || !values.Empty() {
			return bad("challengePassword must have exactly one value")
		}
		switch tag {
		case casn1.PrintableString, casn1.UTF8String, casn1.IA5String:
		default:
			return bad("challengePassword is not a PrintableString, UTF8String or IA5String")
		}
		if len(val) > maxChallengePassword || !utf8.Valid(val) {
			return bad("challengePassword is longer than 255 characters or not text")
		}
		pw, present = string(val), true
	}
	return pw, present, nil
}

// checkBinding verifies the CSR's channel binding against the request's
// TLS session: a challengePassword, when present, must be it (RFC 7030
// §3.5 gives the attribute that meaning in EST); a profile with
// RequireChannelBinding refuses a CSR without one. The comparison is in
// constant time. Refusals are 401, as for any failed authentication.
func (s *Server) checkBinding(r *http.Request, q *request) *refusal {
	pw, present, err := challengePassword(q.csr.RawTBSCertificateRequest)
	switch {
	case err != nil:
		return refuse(http.StatusBadRequest, "bad_csr", "%v", err)
	case !present && q.profile.RequireChannelBinding:
		return refuse(http.StatusUnauthorized, "channel_binding_missing",
			"profile %q requires the CSR challengePassword to carry the base64 channel binding of this TLS session (RFC 7030 section 3.5)", q.profile.Name)
	case !present:
		return nil
	}
	want, kind, err := ChannelBinding(r.TLS)
	if err != nil {
		return refuse(http.StatusUnauthorized, "channel_binding_unavailable", "%v", err)
	}
	got, err := base64.StdEncoding.DecodeString(pw)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return refuse(http.StatusUnauthorized, "channel_binding_mismatch", "CSR challengePassword is not the %s of this TLS session", kind)
	}
	q.bound = true
	return nil
}
