package radsec

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"time"

	"hardbound/store"
	"hardbound/store/policy"
)

// DefaultNASValidity is how long a NAS certificate lasts: a NAS is
// re-provisioned by hand, so a year, not a device's two weeks.
const DefaultNASValidity = 365 * 24 * time.Hour

// Signer is hardbound's CA (*ca.CA): Sign takes the template's names,
// usages and validity and adds serial and key identifiers.
type Signer interface {
	Sign(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error)
	Issuing() *x509.Certificate
	Root() *x509.Certificate
}

// Recorder records an issuance (store.Store).
type Recorder interface {
	RecordIssuance(ctx context.Context, is store.Issuance) error
}

// Issuer issues NAS certificates under the NAS profile and records each as
// a binding of the NAS's device record (DeviceID), so that the listener
// knows the NAS without any configuration and revoking the certificate
// (or the NAS) closes its connections.
type Issuer struct {
	CA       Signer
	Store    Recorder
	Validity time.Duration // 0: DefaultNASValidity
	Now      func() time.Time
}

// IssueRequest asks for one NAS certificate.
type IssueRequest struct {
	Name  string
	DNS   []string                 // SAN dNSNames, for a NAS that also serves RADIUS/TLS
	CSR   *x509.CertificateRequest // the NAS's key: it never leaves the NAS
	Actor string                   // audit actor (admin:<token>)
}

// Issued is a NAS certificate with what the NAS needs to install it.
type Issued struct {
	Cert *x509.Certificate
	// Chain is the leaf and the issuing CA, as the NAS presents them.
	Chain []*x509.Certificate
	// CAs is the bundle the NAS trusts for hardbound's server certificate:
	// the root and the issuing CA.
	CAs []*x509.Certificate
}

// ErrBadRequest is wrapped when a request cannot be issued (name, CSR).
var ErrBadRequest = errors.New("radsec: bad NAS certificate request")

// Issue signs and records a NAS certificate. Its EKUs are clientAuth (the
// NAS opens RADIUS/TLS to us) and serverAuth (a NAS may also accept
// RADIUS/TLS, e.g. for CoA, draft-ietf-radext-radiusdtls-bis); key usage
// digitalSignature only.
func (i *Issuer) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	if err := CheckName(req.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if req.CSR == nil {
		return nil, fmt.Errorf("%w: no CSR", ErrBadRequest)
	}
	if err := req.CSR.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %w", ErrBadRequest, err)
	}
	for _, d := range req.DNS {
		if d == "" || len(d) > 253 {
			return nil, fmt.Errorf("%w: DNS name %q", ErrBadRequest, d)
		}
	}
	validity := i.Validity
	if validity <= 0 {
		validity = DefaultNASValidity
	}
	now := time.Now
	if i.Now != nil {
		now = i.Now
	}
	t := now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: req.Name},
		NotAfter:    t.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:    append([]string(nil), req.DNS...),
		URIs:        []*url.URL{NASURI(req.Name)},
	}
	cert, err := i.CA.Sign(ctx, tmpl, req.CSR.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("radsec: sign NAS certificate %s: %w", req.Name, err)
	}
	dev := &store.Device{ID: DeviceID(req.Name), Platform: "nas", Profile: policy.NASProfile, Status: store.DeviceActive,
		Posture: store.Posture{State: store.ComplianceUnknown}, CreatedAt: t, UpdatedAt: t}
	err = i.Store.RecordIssuance(ctx, store.Issuance{
		Device: dev,
		Cert: &store.Cert{SHA256: store.HashCert(cert), Serial: cert.SerialNumber.Text(16), DeviceID: dev.ID,
			KeySHA256: store.HashKey(cert.RawSubjectPublicKeyInfo), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			Profile: policy.NASProfile, Protocol: "admin", DER: cert.Raw},
		Audit: &store.AuditEvent{Time: t, Actor: req.Actor, Action: "nas.issue", Subject: req.Name, Result: "ok",
			Reason: "serial " + cert.SerialNumber.Text(16)},
	})
	if err != nil {
		return nil, fmt.Errorf("radsec: record NAS certificate %s: %w", req.Name, err)
	}
	return &Issued{Cert: cert, Chain: []*x509.Certificate{cert, i.CA.Issuing()}, CAs: []*x509.Certificate{i.CA.Root(), i.CA.Issuing()}}, nil
}
