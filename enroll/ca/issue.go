package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	maxDeviceIDLen = 256
	// DefaultServerValidity is the IssueServerTLS lifetime when none is given.
	DefaultServerValidity = 90 * 24 * time.Hour
	maxCRLReason          = 10
)

// serialLimit is 2^128: serials are uniform in [1, 2^128).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// IssueRequest asks for a device client certificate.
type IssueRequest struct {
	// CSR is the device's request; its signature and key are policy-checked.
	CSR *x509.CertificateRequest
	// PublicKey is optional; when set together with CSR they must be equal
	// (e.g. the attested key). Either CSR or PublicKey is required.
	PublicKey crypto.PublicKey
	// DeviceID is the permanent device identifier, carried as SAN URI.
	DeviceID string
	Profile  Profile
	// Subject is optional; the default is CN=DeviceID. The CSR's subject is
	// never used.
	Subject pkix.Name
	// Attestation is set when a verified attestation proved the key (and
	// the device id); the profile's Names (WithNames) then decide which
	// attested facts the SAN carries beside the device URI, so relying
	// parties can tell an attested certificate without asking hardbound.
	// nil: the key is not attested and the SAN is the URI alone.
	Attestation *Attestation
}

// Issue signs a device client certificate: clientAuth only, digitalSignature
// only, not a CA, a 128-bit random serial, SAN URI DeviceURI(DeviceID),
// valid from now-1m for the profile's validity but never past the issuing
// CA's NotAfter. Nothing requested in the CSR besides its key is copied.
func (c *CA) Issue(ctx context.Context, req IssueRequest) (*x509.Certificate, error) {
	cert, err := c.issue(ctx, req)
	c.metrics.Signed("device", result(err))
	if err != nil {
		c.log.Info("device certificate refused", "device", req.DeviceID, "profile", req.Profile.Name, "err", err)
		return nil, err
	}
	c.log.Info("device certificate issued", "device", req.DeviceID, "profile", req.Profile.Name,
		"serial", SerialString(cert.SerialNumber), "not_after", cert.NotAfter)
	return cert, nil
}

func (c *CA) issue(ctx context.Context, req IssueRequest) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: issue: %w", err)
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return nil, err
	}
	if req.Profile.Validity < 0 {
		return nil, fmt.Errorf("ca: issue: %w: negative validity %s in profile %q", ErrInvalidRequest, req.Profile.Validity, req.Profile.Name)
	}
	pub := req.PublicKey
	switch {
	case req.CSR != nil:
		if err := CheckCSR(req.CSR); err != nil {
			return nil, fmt.Errorf("ca: issue: %w", err)
		}
		if pub != nil && !keysEqual(pub, req.CSR.PublicKey) {
			return nil, fmt.Errorf("ca: issue: %w: CSR public key differs from the attested/expected key", ErrCSRPolicy)
		}
		pub = req.CSR.PublicKey
	case pub != nil:
		if err := CheckPublicKey(pub); err != nil {
			return nil, fmt.Errorf("ca: issue: %w", err)
		}
	default:
		return nil, fmt.Errorf("ca: issue: %w: neither CSR nor public key given", ErrInvalidRequest)
	}

	validity := req.Profile.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	subject := req.Subject
	if len(subject.ToRDNSequence()) == 0 {
		subject = pkix.Name{CommonName: req.DeviceID}
	}
	now := c.now()
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{DeviceURI(req.DeviceID)},
		OCSPServer:            c.ocsp,
	}
	ext, ok, err := deviceSAN(req.DeviceID, tmpl.URIs[0], c.names[req.Profile.Name], req.Attestation)
	if err != nil {
		return nil, err
	}
	if ok {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	return c.sign(tmpl, pub, now)
}

// Sign is the low-level signer for server and SCEP RA certificates. It takes
// the template's names, usages and validity, but always sets a fresh random
// serial, the key identifiers, and caps NotAfter at the issuing CA's
// NotAfter; a zero NotBefore becomes now-1m. It refuses CA templates (this CA
// never mints sub-CAs) and keys that fail CheckPublicKey.
func (c *CA) Sign(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	cert, err := c.signTemplate(ctx, tmpl, pub)
	c.metrics.Signed("sign", result(err))
	if err != nil {
		return nil, err
	}
	c.log.Info("certificate signed", "subject", cert.Subject.String(), "serial", SerialString(cert.SerialNumber), "not_after", cert.NotAfter)
	return cert, nil
}

func (c *CA) signTemplate(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	if tmpl == nil {
		return nil, fmt.Errorf("ca: sign: %w: nil template", ErrInvalidRequest)
	}
	if tmpl.IsCA {
		return nil, fmt.Errorf("ca: sign: %w: template asks for a CA certificate", ErrInvalidRequest)
	}
	for _, ext := range tmpl.ExtraExtensions {
		if ext.Id.Equal(oidBasicConstraints) {
			return nil, fmt.Errorf("ca: sign: %w: template carries a raw basicConstraints extension", ErrInvalidRequest)
		}
	}
	if err := CheckPublicKey(pub); err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	now := c.now()
	t := *tmpl // shallow copy: never mutate the caller's template
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-clockSkew)
	}
	if t.NotAfter.IsZero() {
		return nil, fmt.Errorf("ca: sign: %w: template has no NotAfter", ErrInvalidRequest)
	}
	t.BasicConstraintsValid = true
	t.MaxPathLen, t.MaxPathLenZero = 0, false
	t.SubjectKeyId, t.AuthorityKeyId = nil, nil
	return c.sign(&t, pub, now)
}

// sign fills the fields every certificate from this CA gets and signs.
func (c *CA) sign(t *x509.Certificate, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	if now.Before(c.issuing.NotBefore) || !now.Before(c.issuing.NotAfter) {
		return nil, fmt.Errorf("%w: now %s outside %s..%s", ErrCAExpired,
			now.UTC().Format(time.RFC3339), c.issuing.NotBefore.UTC().Format(time.RFC3339), c.issuing.NotAfter.UTC().Format(time.RFC3339))
	}
	// A certificate must not outlive, nor predate, the CA that vouches for it.
	if t.NotAfter.After(c.issuing.NotAfter) {
		t.NotAfter = c.issuing.NotAfter
	}
	if t.NotBefore.Before(c.issuing.NotBefore) {
		t.NotBefore = c.issuing.NotBefore
	}
	if !t.NotAfter.After(t.NotBefore) {
		return nil, fmt.Errorf("ca: sign: %w: NotAfter %s is not after NotBefore %s", ErrInvalidRequest, t.NotAfter, t.NotBefore)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	t.SerialNumber = serial
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	t.SubjectKeyId = ski
	t.AuthorityKeyId = c.issuing.SubjectKeyId
	// crypto/x509 verifies the signature it produced against the issuing
	// key, which catches a faulty signer (e.g. an HSM) before we hand out a
	// broken certificate.
	der, err := x509.CreateCertificate(rand.Reader, t, c.issuing, pub, c.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: parse issued certificate: %w", err)
	}
	return cert, nil
}

// IssueServerTLS issues a serverAuth certificate for a fresh P-256 key, for
// the RADIUS EAP-TLS server and the HTTPS listeners. The chain is leaf and
// issuing CA; the root is left out because peers must already trust it.
// A zero validity means DefaultServerValidity.
func (c *CA) IssueServerTLS(ctx context.Context, names []string, ips []net.IP, validity time.Duration) (tls.Certificate, error) {
	if len(names) == 0 && len(ips) == 0 {
		return tls.Certificate{}, fmt.Errorf("ca: server cert: %w: no DNS names or IP addresses", ErrInvalidRequest)
	}
	if validity < 0 {
		return tls.Certificate{}, fmt.Errorf("ca: server cert: %w: negative validity %s", ErrInvalidRequest, validity)
	}
	if validity == 0 {
		validity = DefaultServerValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: server cert: %w", err)
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	now := c.now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    append([]string(nil), names...),
		IPAddresses: append([]net.IP(nil), ips...),
	}
	leaf, err := c.signTemplate(ctx, tmpl, key.Public())
	c.metrics.Signed("server", result(err))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: server cert: %w", err)
	}
	c.log.Info("server certificate issued", "names", names, "ips", ips, "serial", SerialString(leaf.SerialNumber), "not_after", leaf.NotAfter)
	return tls.Certificate{
		Certificate: [][]byte{leaf.Raw, c.issuing.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// CRL returns a DER CRL signed by the issuing CA listing entries, with the
// given CRL number (positive, increasing; the caller persists it) and
// nextUpdate. thisUpdate is now. Entry reason codes are RFC 5280 CRLReason
// values (0..10, 7 unused); zero omits the extension (unspecified).
func (c *CA) CRL(ctx context.Context, entries []x509.RevocationListEntry, number *big.Int, nextUpdate time.Time) ([]byte, error) {
	der, err := c.crl(ctx, entries, number, nextUpdate)
	c.metrics.Signed("crl", result(err))
	return der, err
}

func (c *CA) crl(ctx context.Context, entries []x509.RevocationListEntry, number *big.Int, nextUpdate time.Time) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: crl: %w", err)
	}
	if number == nil || number.Sign() <= 0 || number.BitLen() > 159 {
		// RFC 5280 5.2.3: a non-negative integer of at most 20 octets.
		return nil, fmt.Errorf("ca: crl: %w: CRL number must be positive and at most 20 octets", ErrInvalidRequest)
	}
	now := c.now()
	if !nextUpdate.After(now) {
		return nil, fmt.Errorf("ca: crl: %w: nextUpdate %s is not after now", ErrInvalidRequest, nextUpdate)
	}
	for i, e := range entries {
		if e.SerialNumber == nil {
			return nil, fmt.Errorf("ca: crl: %w: entry %d has no serial", ErrInvalidRequest, i)
		}
		if e.RevocationTime.IsZero() {
			return nil, fmt.Errorf("ca: crl: %w: entry %d (serial %s) has no revocation time", ErrInvalidRequest, i, SerialString(e.SerialNumber))
		}
		if e.ReasonCode < 0 || e.ReasonCode > maxCRLReason || e.ReasonCode == 7 {
			return nil, fmt.Errorf("ca: crl: %w: entry %d (serial %s) has invalid reason code %d", ErrInvalidRequest, i, SerialString(e.SerialNumber), e.ReasonCode)
		}
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                nextUpdate,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.issuing, c.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: crl: %w", err)
	}
	return der, nil
}

// newSerial returns a uniformly random serial in [1, 2^128). 128 bits of
// entropy exceed the CA/B Forum's 64-bit minimum; zero is not a valid serial.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("random serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 7093 section 2 method 1: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey BIT STRING.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

func keysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func checkDeviceID(id string) error {
	if id == "" {
		return fmt.Errorf("ca: issue: %w: empty device id", ErrInvalidRequest)
	}
	if len(id) > maxDeviceIDLen {
		return fmt.Errorf("ca: issue: %w: device id is %d bytes, maximum is %d", ErrInvalidRequest, len(id), maxDeviceIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("ca: issue: %w: device id is not valid UTF-8", ErrInvalidRequest)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("ca: issue: %w: device id contains control character %U", ErrInvalidRequest, r)
		}
	}
	return nil
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrCSRPolicy):
		return "policy"
	default:
		return "error"
	}
}
