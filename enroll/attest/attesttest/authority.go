// Package attesttest is a software attestation authority: test roots and
// evidence generators for the apple, tpm and android-key formats that
// hardbound/enroll/attest accepts when configured with Authority.Roots().
//
// It has no testing dependency so `hardbound bench make-devices --dev` and
// the ACME end-to-end tests can both use it. Nothing it makes proves
// anything about hardware: never put its roots in a production config.
package attesttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/fxamacker/cbor/v2"
	x509ext "github.com/google/go-attestation/x509"

	"hardbound/enroll/attest"
	"hardbound/store/policy"
)

// ca is one software CA: certificate and key.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Authority holds test roots and intermediates for every format.
type Authority struct {
	now func() time.Time

	appleRoot, appleInt     ca
	androidRoot, androidInt ca
	ekRoot                  ca // "TPM manufacturer" EK CA
	akCA                    ca // attestation CA that issues AK certs (ACME tpm)

	akKey *ecdsa.PrivateKey // software AK for ACME "tpm" statements
}

// Option configures an Authority.
type Option func(*Authority)

// WithClock sets the time certificates are issued around (default time.Now).
func WithClock(now func() time.Time) Option { return func(a *Authority) { a.now = now } }

// NewAuthority creates fresh ECDSA P-384 roots and intermediates for Apple,
// Android, a TPM EK manufacturer and a TPM AK attestation CA.
func NewAuthority(opts ...Option) (*Authority, error) {
	a := &Authority{now: time.Now}
	for _, o := range opts {
		o(a)
	}
	var err error
	mk := func(dst *ca, name string, parent *ca) {
		if err != nil {
			return
		}
		*dst, err = a.newCA(name, parent)
	}
	mk(&a.appleRoot, "Test Apple Enterprise Attestation Root CA", nil)
	mk(&a.appleInt, "Test Apple Enterprise Attestation Sub CA 1", &a.appleRoot)
	mk(&a.androidRoot, "Test Android Attestation Root", nil)
	mk(&a.androidInt, "Test Android Attestation Intermediate", &a.androidRoot)
	mk(&a.ekRoot, "Test TPM Manufacturer EK Root CA", nil)
	mk(&a.akCA, "Test TPM AK Attestation CA", nil)
	if err != nil {
		return nil, fmt.Errorf("attesttest: %w", err)
	}
	if a.akKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("attesttest: AK key: %w", err)
	}
	return a, nil
}

// Roots returns trust roots that accept this authority's evidence.
func (a *Authority) Roots() attest.Roots {
	pool := func(c ca) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(c.cert)
		return p
	}
	return attest.Roots{
		Apple:   pool(a.appleRoot),
		Android: pool(a.androidRoot),
		TPM:     pool(a.ekRoot),
		TPMAK:   pool(a.akCA),
	}
}

// RootCerts returns the root certificates (apple, android, tpm EK, tpm AK),
// e.g. to write PEM files for a --dev config.
func (a *Authority) RootCerts() map[string]*x509.Certificate {
	return map[string]*x509.Certificate{
		policy.FormatApple:      a.appleRoot.cert,
		policy.FormatAndroidKey: a.androidRoot.cert,
		"tpm-ek":                a.ekRoot.cert,
		"tpm-ak":                a.akCA.cert,
	}
}

// Trust adds the authority's roots to r: beside the built-in vendor roots
// for Apple and Android where r has none configured, alone for the TPM EK
// and AK roots. It is how `serve --dev` accepts this authority's evidence.
func (a *Authority) Trust(r *attest.Roots) {
	add := func(p **x509.CertPool, def func() *x509.CertPool, c *x509.Certificate) {
		if *p == nil {
			if def != nil {
				*p = def()
			} else {
				*p = x509.NewCertPool()
			}
		}
		(*p).AddCert(c)
	}
	add(&r.Apple, attest.DefaultAppleRoots, a.appleRoot.cert)
	add(&r.Android, attest.DefaultAndroidRoots, a.androidRoot.cert)
	add(&r.TPM, nil, a.ekRoot.cert)
	add(&r.TPMAK, nil, a.akCA.cert)
}

func (a *Authority) newCA(name string, parent *ca) (ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return ca{}, err
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"hardbound attesttest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
		tmpl.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return ca{}, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return ca{}, err
	}
	return ca{cert: c, key: key}, nil
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("attesttest: crypto/rand failed: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}

func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey, parent ca) ([]byte, error) {
	now := a.now()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = randSerial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Minute)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent.cert, pub, parent.key)
}

func encodeAttObj(format string, stmt any) ([]byte, error) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		return nil, err
	}
	return em.Marshal(map[string]any{"fmt": format, "attStmt": stmt})
}

// ---- apple ----

// AppleOptions tweak the Apple leaf for negative tests.
type AppleOptions struct {
	// Nonce overrides SHA-256(token); OmitNonce leaves the extension out.
	Nonce     []byte
	OmitNonce bool
	// NotAfter overrides the leaf expiry (e.g. in the past).
	NotAfter time.Time
	// OSVersion, SepOSVersion default to "18.1" and "18.1.0".
	OSVersion, SepOSVersion string
	// MacOS adds the macOS-only SIP status extension, which is how the
	// verifier tells a Mac from an iPhone.
	MacOS bool
}

// Apple returns an attObj {fmt:"apple", attStmt:{x5c:[leaf, intermediate]}}
// whose leaf certifies pub (ECDSA P-256/P-384) with serial/UDID and the
// freshness code SHA-256(token of keyAuthorization).
func (a *Authority) Apple(pub crypto.PublicKey, serial, udid, keyAuthorization string) ([]byte, error) {
	return a.AppleWith(pub, serial, udid, keyAuthorization, AppleOptions{})
}

// AppleWith is Apple with options.
func (a *Authority) AppleWith(pub crypto.PublicKey, serial, udid, keyAuthorization string, o AppleOptions) ([]byte, error) {
	token, _, _ := cutDot(keyAuthorization)
	nonce := sha256.Sum256([]byte(token))
	exts := []pkix.Extension{}
	add := func(oid asn1.ObjectIdentifier, v []byte) {
		if len(v) > 0 {
			exts = append(exts, pkix.Extension{Id: oid, Value: v})
		}
	}
	add(attest.OIDAppleSerial, []byte(serial))
	add(attest.OIDAppleUDID, []byte(udid))
	add(attest.OIDAppleOSVersion, []byte(orDefault(o.OSVersion, "18.1")))
	add(attest.OIDAppleSEPVersion, []byte(orDefault(o.SepOSVersion, "18.1.0")))
	if o.MacOS {
		add(attest.OIDAppleSIP, mustMarshal(0, ""))
	}
	switch {
	case o.OmitNonce:
	case o.Nonce != nil:
		add(attest.OIDAppleNonce, o.Nonce)
	default:
		add(attest.OIDAppleNonce, nonce[:])
	}
	tmpl := &x509.Certificate{
		Subject:         pkix.Name{CommonName: "attesttest apple device"},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: exts,
		NotAfter:        o.NotAfter,
	}
	if !o.NotAfter.IsZero() {
		tmpl.NotBefore = o.NotAfter.Add(-24 * time.Hour)
	}
	leaf, err := a.issue(tmpl, pub, a.appleInt)
	if err != nil {
		return nil, fmt.Errorf("attesttest: apple leaf: %w", err)
	}
	return encodeAttObj(policy.FormatApple, map[string]any{"x5c": [][]byte{leaf, a.appleInt.cert.Raw}})
}

func cutDot(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ---- tpm (ACME) ----

// TPMOptions tweak ACME "tpm" statements for negative tests.
type TPMOptions struct {
	// ExtraData overrides SHA-256(keyAuthorization).
	ExtraData []byte
	// Exportable clears fixedTPM/fixedParent in the key's pubArea.
	Exportable bool
	// RawSig sends an ASN.1 ECDSA signature instead of TPMT_SIGNATURE.
	RawSig bool
	// SubjectCN gives the AK cert a (forbidden) subject.
	SubjectCN string
}

// TPM returns an ACME attObj {fmt:"tpm", attStmt:{ver, alg:-7, x5c:[akCert],
// sig, certInfo, pubArea}} in which a software AK "certifies" pub (ECDSA
// P-256/P-384 or RSA ≥2048) with extraData SHA-256(keyAuthorization). The AK
// cert has an empty subject, EKU tcg-kp-AIKCertificate, a critical SAN with
// the TPM directoryName, a PermanentIdentifier of deviceID (if non-empty)
// and urn:ek:sha256 of a synthetic EK derived from deviceID.
func (a *Authority) TPM(pub crypto.PublicKey, deviceID, keyAuthorization string) ([]byte, error) {
	return a.TPMWith(pub, deviceID, keyAuthorization, TPMOptions{})
}

// TPMWith is TPM with options.
func (a *Authority) TPMWith(pub crypto.PublicKey, deviceID, keyAuthorization string, o TPMOptions) ([]byte, error) {
	akCert, err := a.akCert(deviceID, o.SubjectCN)
	if err != nil {
		return nil, err
	}
	extra := o.ExtraData
	if extra == nil {
		s := sha256.Sum256([]byte(keyAuthorization))
		extra = s[:]
	}
	pubArea, certInfo, sig, err := softCertify(pub, a.akKey, extra, o.Exportable, o.RawSig)
	if err != nil {
		return nil, err
	}
	return encodeAttObj(policy.FormatTPM, map[string]any{
		"ver":      "2.0",
		"alg":      int64(attest.COSEAlgES256),
		"x5c":      [][]byte{akCert},
		"sig":      sig,
		"certInfo": certInfo,
		"pubArea":  pubArea,
	})
}

var oidPermanentIdentifierOther = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}

func (a *Authority) akCert(deviceID, subjectCN string) ([]byte, error) {
	return a.akCertFor(a.akKey.Public(), deviceID, subjectCN)
}

func (a *Authority) akCertFor(akPub crypto.PublicKey, deviceID, subjectCN string) ([]byte, error) {
	san := &x509ext.SubjectAltName{
		DirectoryNames: []pkix.Name{{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: attest.OIDTPMManufacturer, Value: "id:48424E44"}, // "HBND"
			{Type: attest.OIDTPMModel, Value: "attesttest"},
			{Type: attest.OIDTPMVersion, Value: "id:00010002"},
		}}},
	}
	if deviceID != "" {
		san.PermanentIdentifiers = []x509ext.PermanentIdentifier{{IdentifierValue: deviceID}}
	}
	ext, err := x509ext.MarshalSubjectAltName(san, subjectCN == "")
	if err != nil {
		return nil, fmt.Errorf("attesttest: AK SAN: %w", err)
	}
	// Append urn:ek:sha256 as a URI GeneralName: with a hand-made SAN, Go
	// ignores Certificate.URIs, so every name goes into this one extension.
	ekSum := sha256.Sum256([]byte("attesttest-ek:" + deviceID))
	u := (&url.URL{Scheme: "urn", Opaque: "ek:sha256:" + base64.StdEncoding.EncodeToString(ekSum[:])}).String()
	var names []asn1.RawValue
	if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
		return nil, fmt.Errorf("attesttest: AK SAN: %w", err)
	}
	names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)})
	if ext.Value, err = asn1.Marshal(names); err != nil {
		return nil, fmt.Errorf("attesttest: AK SAN: %w", err)
	}
	ekuVal, err := asn1.Marshal([]asn1.ObjectIdentifier{attest.OIDTCGKpAIKCertificate})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{ext, {Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: ekuVal}},
	}
	if subjectCN != "" {
		tmpl.Subject = pkix.Name{CommonName: subjectCN}
	}
	der, err := a.issue(tmpl, akPub, a.akCA)
	if err != nil {
		return nil, fmt.Errorf("attesttest: AK cert: %w", err)
	}
	return der, nil
}

// EKIDFor returns the hex EK hash the AK cert from TPM(…, deviceID, …)
// proves (Result.Identifiers["ek_sha256"]).
func EKIDFor(deviceID string) string {
	s := sha256.Sum256([]byte("attesttest-ek:" + deviceID))
	return fmt.Sprintf("%x", s[:])
}

// ---- android-key ----

// AndroidOptions tweak the KeyDescription for negative tests. Zero values
// give a TEE-backed, locked, verified-boot, GENERATED signing key.
type AndroidOptions struct {
	SecurityLevel       *int // attestation and KeyMint security level (default 1 = TEE)
	Challenge           []byte
	Unlocked            bool
	VerifiedBootState   int
	RootOfTrustSoftware bool // put rootOfTrust in softwareEnforced only
	Imported            bool // origin IMPORTED
	// SigKey signs the key authorization instead of the attested key.
	SigKey crypto.Signer
	// IntermediateNotAfter overrides the intermediate's expiry.
	IntermediateNotAfter time.Time
	// OmitRoot leaves the root out of x5c.
	OmitRoot bool
	// OSVersion (KeyMint MMmmss) and OSPatchLevel (YYYYMM) default to
	// 150000 and 202611.
	OSVersion, OSPatchLevel int
}

// Android returns an attObj {fmt:"android-key", attStmt:{alg, sig, x5c:[leaf,
// intermediate, root]}}: the leaf certifies key's public key with a
// KeyDescription whose attestationChallenge is keyAuthorization and whose
// hardwareEnforced attestationIdSerial is serial; sig is key's signature over
// keyAuthorization (the attested key must sign, so this takes a Signer).
func (a *Authority) Android(key crypto.Signer, serial, keyAuthorization string) ([]byte, error) {
	return a.AndroidWith(key, serial, keyAuthorization, AndroidOptions{})
}

// AndroidWith is Android with options.
func (a *Authority) AndroidWith(key crypto.Signer, serial, keyAuthorization string, o AndroidOptions) ([]byte, error) {
	kd, err := BuildKeyDescription(serial, keyAuthorization, o)
	if err != nil {
		return nil, err
	}
	inter := a.androidInt
	if !o.IntermediateNotAfter.IsZero() {
		tmpl := &x509.Certificate{
			SerialNumber:          randSerial(),
			Subject:               pkix.Name{CommonName: "Test Android Attestation Intermediate (expiring)"},
			NotBefore:             o.IntermediateNotAfter.Add(-48 * time.Hour),
			NotAfter:              o.IntermediateNotAfter,
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, a.androidRoot.cert, a.androidInt.key.Public(), a.androidRoot.key)
		if err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inter = ca{cert: c, key: a.androidInt.key}
	}
	leaf, err := a.issue(&x509.Certificate{
		Subject:         pkix.Name{CommonName: "Android Keystore Key"},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: attest.OIDAndroidKeyDescription, Value: kd}},
	}, key.Public(), inter)
	if err != nil {
		return nil, fmt.Errorf("attesttest: android leaf: %w", err)
	}
	signer := key
	if o.SigKey != nil {
		signer = o.SigKey
	}
	sig, alg, err := signKeyAuth(signer, []byte(keyAuthorization))
	if err != nil {
		return nil, err
	}
	x5c := [][]byte{leaf, inter.cert.Raw}
	if !o.OmitRoot {
		x5c = append(x5c, a.androidRoot.cert.Raw)
	}
	return encodeAttObj(policy.FormatAndroidKey, map[string]any{"alg": alg, "sig": sig, "x5c": x5c})
}

func signKeyAuth(s crypto.Signer, msg []byte) ([]byte, int64, error) {
	sum := sha256.Sum256(msg)
	switch s.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
		return sig, -7, err
	default:
		sig, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
		return sig, -257, err
	}
}

// explicit wraps DER in an EXPLICIT context tag (possibly > 30).
func explicit(tag int, inner []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: inner}
}

func mustMarshal(v any, params string) []byte {
	b, err := asn1.MarshalWithParams(v, params)
	if err != nil {
		panic("attesttest: asn1: " + err.Error())
	}
	return b
}

// BuildKeyDescription encodes an Android KeyDescription (attestation v200,
// KeyMint 200) for tests and fuzz seeds.
func BuildKeyDescription(serial, challenge string, o AndroidOptions) ([]byte, error) {
	level := 1
	if o.SecurityLevel != nil {
		level = *o.SecurityLevel
	}
	ch := []byte(challenge)
	if o.Challenge != nil {
		ch = o.Challenge
	}
	origin := 0
	if o.Imported {
		origin = 2
	}
	rot := mustMarshal(struct {
		VerifiedBootKey   []byte
		DeviceLocked      bool
		VerifiedBootState asn1.Enumerated
		VerifiedBootHash  []byte
	}{make([]byte, 32), !o.Unlocked, asn1.Enumerated(o.VerifiedBootState), make([]byte, 32)}, "")

	hw := []asn1.RawValue{
		explicit(1, mustMarshal([]int{2}, "set")),         // purpose SIGN
		explicit(2, mustMarshal(3, "")),                   // algorithm EC
		explicit(3, mustMarshal(256, "")),                 // keySize
		explicit(10, mustMarshal(1, "")),                  // ecCurve P-256
		explicit(503, mustMarshal(asn1.NullRawValue, "")), // noAuthRequired
		explicit(702, mustMarshal(origin, "")),            // origin
	}
	sw := []asn1.RawValue{explicit(701, mustMarshal(int64(1700000000000), ""))}
	if o.RootOfTrustSoftware {
		sw = append(sw, explicit(704, rot))
	} else {
		hw = append(hw, explicit(704, rot))
	}
	hw = append(hw,
		explicit(705, mustMarshal(orInt(o.OSVersion, 150000), "")),
		explicit(706, mustMarshal(orInt(o.OSPatchLevel, 202611), "")),
		explicit(710, mustMarshal([]byte("google"), "")),
		explicit(716, mustMarshal([]byte("Google"), "")),
		explicit(717, mustMarshal([]byte("Pixel 9"), "")),
	)
	if serial != "" {
		hw = append(hw, explicit(713, mustMarshal([]byte(serial), "")))
	}
	hw = append(hw, explicit(718, mustMarshal(20261105, "")), explicit(719, mustMarshal(20261105, "")))
	kd := struct {
		AttestationVersion       int
		AttestationSecurityLevel asn1.Enumerated
		KeyMintVersion           int
		KeyMintSecurityLevel     asn1.Enumerated
		AttestationChallenge     []byte
		UniqueID                 []byte
		SoftwareEnforced         []asn1.RawValue
		HardwareEnforced         []asn1.RawValue
	}{200, asn1.Enumerated(level), 200, asn1.Enumerated(level), ch, []byte{}, sw, hw}
	b, err := asn1.Marshal(kd)
	if err != nil {
		return nil, fmt.Errorf("attesttest: KeyDescription: %w", err)
	}
	return b, nil
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// AndroidIntermediate is the intermediate CA every Android chain of a goes
// through (its serial is what an attestation status list revokes).
func (a *Authority) AndroidIntermediate() *x509.Certificate { return a.androidInt.cert }

var errUnsupportedKey = errors.New("attesttest: unsupported key type")
