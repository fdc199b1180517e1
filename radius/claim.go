package radius

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"time"

	"hardbound/enroll/ca"
	"hardbound/posture"
	"hardbound/store"
)

// claim is what a request said about itself, whatever the decision: the
// certificate it presented (verified or not), the device id that
// certificate names, the NAS's view of the station. A refusal's audit event
// carries it so that a forged leaf claiming a real device, or a storm of
// rejects from one station, is attributable from the chain alone.
type claim struct {
	certSHA256 store.Hash
	serial     string
	device     string // from the leaf's SAN URI; claimed, not proven
	station    string // Calling-Station-Id
	protocol   string // eap-tls/tls1.2 | eap-tls/tls1.3 | eap-tls | eap | none
}

// maxClaimValue bounds each value a NAS or supplicant controls in an audit
// reason: the chain must not be a place to store arbitrary octets.
const maxClaimValue = 128

// presentedLeaf is the certificate the peer sent: from the TLS state once
// the chain verified (Authorizer refusals and successes), else from the
// verification error crypto/tls and eaptls report (tls_* rejects).
func presentedLeaf(c *conversation, stepErr error) *x509.Certificate {
	if cs := c.sess.ConnectionState(); len(cs.PeerCertificates) > 0 {
		return cs.PeerCertificates[0]
	}
	if cve, ok := errors.AsType[*tls.CertificateVerificationError](stepErr); ok && len(cve.UnverifiedCertificates) > 0 {
		return cve.UnverifiedCertificates[0]
	}
	return nil
}

func claimOf(c *conversation, stepErr error) claim {
	cl := claim{station: c.station, protocol: "eap"}
	if c.sess == nil {
		return cl
	}
	cs := c.sess.ConnectionState()
	switch cs.Version {
	case tls.VersionTLS12:
		cl.protocol = "eap-tls/tls1.2"
	case tls.VersionTLS13:
		cl.protocol = "eap-tls/tls1.3"
	}
	if leaf := presentedLeaf(c, stepErr); leaf != nil {
		cl.certSHA256 = store.HashCert(leaf)
		cl.serial = ca.SerialString(leaf.SerialNumber)
		cl.device, _ = ca.DeviceID(leaf)
		if cl.protocol == "eap" {
			cl.protocol = "eap-tls"
		}
	}
	return cl
}

// auditReason is the audit event's Reason: the bounded label first (what
// metrics count and tests match), then key=value facts, values quoted when
// they are not plain tokens. For a decision: when it was made and the
// standing generation it saw (so that "accept decided before a revoke" is
// visible however the chain orders the two); for every outcome: what the
// request claimed.
func auditReason(label string, c *conversation, cl claim, v *posture.Verdict, note string) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(label)
	kv := func(k, val string) {
		if val == "" {
			return
		}
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(auditValue(val))
	}
	if !c.decidedAt.IsZero() {
		kv("decided", c.decidedAt.UTC().Format(time.RFC3339Nano))
		kv("gen", strconv.FormatUint(c.decidedGen, 10))
	}
	if v != nil && v.Generation != c.decidedGen && !c.decidedAt.IsZero() {
		kv("recheck_gen", strconv.FormatUint(v.Generation, 10))
	}
	if v != nil && v.StoreUnavailable {
		// Decided without the store (posture's caches, or the outage
		// policy): docs/ha.md, "When the database is away".
		kv("store", "unavailable")
	}
	if !cl.certSHA256.IsZero() {
		kv("cert_sha256", cl.certSHA256.String())
	}
	kv("serial", cl.serial)
	if cl.device != "" && (v == nil || v.DeviceID != cl.device) {
		kv("claimed_device", cl.device)
	}
	kv("calling_station", cl.station)
	kv("protocol", cl.protocol)
	kv("note", note)
	return b.String()
}

// auditValue bounds v and quotes it unless it is a plain token.
func auditValue(v string) string {
	if len(v) > maxClaimValue {
		v = v[:maxClaimValue]
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '=' || ch == '\\' {
			return strconv.Quote(v)
		}
	}
	return v
}
