// Package devbind makes bound devices without an enrollment protocol: a
// CA-issued leaf for a fresh key, with its binding and an attestation
// record written to the store in one transaction.
//
// WARNING: the attestation record it writes is asserted, not verified. It
// exists for tests, benchmarks and `serve --dev` (bench make-devices); the
// server refuses it outside --dev.
package devbind

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"time"

	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// Issuer signs device certificates (enroll/ca.CA).
type Issuer interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*x509.Certificate, error)
	Issuing() *x509.Certificate
}

// Recorder writes an issuance (store.Store).
type Recorder interface {
	RecordIssuance(ctx context.Context, is store.Issuance) error
}

// Request describes the device to make. Zero values pick defaults: format
// policy.FormatTPM, profile policy.DefaultProfile, status active, posture
// unknown.
type Request struct {
	DeviceID string
	// Format is the attestation format to record; policy.FormatNone
	// records an unattested binding.
	Format   string
	Profile  string
	Validity time.Duration
	Posture  store.Compliance
	// Key is the device key; nil generates an ECDSA P-256 key unless
	// PublicKey is set (the key stays with the caller, e.g. from a CSR).
	Key       crypto.Signer
	PublicKey crypto.PublicKey
	// NoBinding issues the certificate but records nothing: an unbound
	// certificate from our own CA.
	NoBinding bool
	// Aliases are MDM identities (serial, udid, ...) recorded on the device,
	// merged with those it has, as an MDM-driven enrollment records them.
	Aliases map[string]string
}

// ErrInvalid reports a bad request.
var ErrInvalid = errors.New("devbind: invalid request")

// Device is what was made. Key is nil when the caller passed PublicKey.
type Device struct {
	ID          string
	Key         crypto.Signer
	Leaf        *x509.Certificate
	Certificate tls.Certificate // leaf + issuing CA, ready for a TLS client
	Binding     *store.Cert
}

// Bind issues and records one device.
func Bind(ctx context.Context, iss Issuer, rec Recorder, now time.Time, r Request) (*Device, error) {
	if r.DeviceID == "" {
		return nil, fmt.Errorf("%w: device id is required", ErrInvalid)
	}
	if r.Format == "" {
		r.Format = policy.FormatTPM
	}
	if !policy.Known(r.Format) {
		return nil, fmt.Errorf("%w: format %q", ErrInvalid, r.Format)
	}
	if r.Profile == "" {
		r.Profile = policy.DefaultProfile
	}
	if r.Posture == "" {
		r.Posture = store.ComplianceUnknown
	}
	key, pub := r.Key, r.PublicKey
	if key == nil && pub == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("devbind: key: %w", err)
		}
		key = k
	}
	if key != nil {
		pub = key.Public()
	}
	leaf, err := iss.Issue(ctx, ca.IssueRequest{PublicKey: pub, DeviceID: r.DeviceID,
		Profile: ca.Profile{Name: r.Profile, Validity: r.Validity}})
	if err != nil {
		return nil, fmt.Errorf("devbind: issue: %w", err)
	}
	d := &Device{
		ID: r.DeviceID, Key: key, Leaf: leaf,
		Certificate: tls.Certificate{Certificate: [][]byte{leaf.Raw, iss.Issuing().Raw}, Leaf: leaf},
	}
	if key != nil {
		d.Certificate.PrivateKey = key
	}
	if r.NoBinding {
		return d, nil
	}
	keySHA := store.HashKey(leaf.RawSubjectPublicKeyInfo)
	c := &store.Cert{
		V: store.RecordVersion, SHA256: store.HashCert(leaf), Serial: ca.SerialString(leaf.SerialNumber),
		DeviceID: r.DeviceID, KeySHA256: keySHA, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		Profile: r.Profile, Protocol: "dev", DER: leaf.Raw,
	}
	is := store.Issuance{
		Device: &store.Device{V: store.RecordVersion, ID: r.DeviceID, Platform: platform(r.Format), Profile: r.Profile,
			Status: store.DeviceActive, Posture: store.Posture{State: r.Posture, Source: "dev", UpdatedAt: now},
			// A bench device is its own inventory record (docs/inventory.md).
			Aliases: maps.Clone(r.Aliases), Source: inventory.SourceBench, CreatedAt: now, UpdatedAt: now},
		Cert:  c,
		Audit: &store.AuditEvent{Time: now, Actor: "dev", Action: "enroll.dev", Subject: r.DeviceID, Result: "ok", Reason: r.Format},
	}
	if r.Format != policy.FormatNone {
		a := &store.Attestation{V: store.RecordVersion, ID: "dev-" + keySHA.String()[:32], DeviceID: r.DeviceID,
			Format: r.Format, KeySHA256: keySHA, Facts: map[string]string{"source": "devbind (asserted, not verified)"}, VerifiedAt: now}
		is.Attestation = a
		c.Attested = true
		c.AttestationID = a.ID
	}
	if err := rec.RecordIssuance(ctx, is); err != nil {
		return nil, fmt.Errorf("devbind: record: %w", err)
	}
	c.DER = nil
	d.Binding = c
	return d, nil
}

func platform(format string) string {
	switch format {
	case policy.FormatApple:
		return "apple"
	case policy.FormatAndroidKey:
		return "android"
	case policy.FormatTPM:
		return "windows"
	}
	return ""
}

// Enroller binds devices whose keys stay with their owner: it issues for
// the key of a CSR, the way `serve --dev` lets the admin API make test
// devices (bench make-devices) for keys generated elsewhere.
type Enroller struct {
	iss Issuer
	rec Recorder
	now func() time.Time
}

// NewEnroller builds an Enroller over a CA and a store.
func NewEnroller(iss Issuer, rec Recorder) *Enroller {
	return &Enroller{iss: iss, rec: rec, now: time.Now}
}

// Enroll checks csr against the CA's CSR policy and binds r.DeviceID to
// its key. Only the formats and postures a real enrollment can record are
// accepted; r.Key and r.PublicKey are ignored (the key is the CSR's).
// Refused requests wrap ErrInvalid.
func (e *Enroller) Enroll(ctx context.Context, csr *x509.CertificateRequest, r Request) (*Device, error) {
	if err := ca.CheckCSR(csr); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch r.Format {
	case "", "tpm", "apple", "android-key", "none":
	default:
		return nil, fmt.Errorf("%w: format %q", ErrInvalid, r.Format)
	}
	switch r.Posture {
	case "", store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		return nil, fmt.Errorf("%w: posture %q", ErrInvalid, r.Posture)
	}
	r.Key, r.PublicKey = nil, csr.PublicKey
	return Bind(ctx, e.iss, e.rec, e.now(), r)
}
