package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-attestation/attest"
	x509ext "github.com/google/go-attestation/x509"
	"github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/legacy/tpm2/credactivation"

	"hardbound/store/policy"
)

// TCG OIDs.
var (
	OIDTCGKpAIKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 3}
	OIDTPMManufacturer     = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	OIDTPMModel            = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	OIDTPMVersion          = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// COSE algorithm identifiers accepted in ACME "tpm" statements.
const (
	COSEAlgES256 = -7
	COSEAlgRS256 = -257
	COSEAlgRS1   = -65535
)

type tpmStmt struct {
	Ver      string   `cbor:"ver"`
	Alg      *int64   `cbor:"alg"`
	X5C      [][]byte `cbor:"x5c"`
	Sig      []byte   `cbor:"sig"`
	CertInfo []byte   `cbor:"certInfo"`
	PubArea  []byte   `cbor:"pubArea"`
}

// verifyACMETPM implements docs/attestation.md §3.1: the AK cert chains to
// Roots.TPMAK, has the WebAuthn/TCG AK profile, certified the key with
// extraData = SHA-256(keyAuthorization), and raw or TPMT sig encodings are
// both accepted.
func (v *Verifier) verifyACMETPM(raw []byte, keyAuth string) (*Result, error) {
	var st tpmStmt
	if err := v.dec.Unmarshal(raw, &st); err != nil {
		return nil, badf("tpm: attStmt: %v", err)
	}
	if st.Ver != "2.0" {
		return nil, badf("tpm: ver is %q, want \"2.0\"", truncate(st.Ver, 16))
	}
	if v.roots.TPMAK == nil {
		return nil, fmt.Errorf("%w: %w: tpm: no AK certificate roots configured (Roots.TPMAK)", ErrBadAttestation, ErrNotConfigured)
	}
	certs, err := parseX5C(policy.FormatTPM, st.X5C, 1)
	if err != nil {
		return nil, err
	}
	ak := certs[0]
	san, err := parseAKSAN(ak)
	if err != nil {
		return nil, err
	}
	dropCriticalSAN(ak)
	if _, err := verifyChain(policy.FormatTPM, ak, certs[1:], nil, v.roots.TPMAK, v.now()); err != nil {
		return nil, err
	}
	if err := checkAKCertProfile(ak, san); err != nil {
		return nil, err
	}
	if st.Alg == nil {
		return nil, badf("tpm: alg is missing")
	}
	var h crypto.Hash
	switch *st.Alg {
	case COSEAlgES256, COSEAlgRS256:
		h = crypto.SHA256
	case COSEAlgRS1:
		h = crypto.SHA1
	default:
		return nil, badf("tpm: alg %d is not supported (want -7, -257 or -65535)", *st.Alg)
	}
	if err := checkBlobs("pubArea", st.PubArea, "certInfo", st.CertInfo, "sig", st.Sig); err != nil {
		return nil, err
	}
	want := sha256.Sum256([]byte(keyAuth))
	pub, info, err := verifyCertification(st.PubArea, st.CertInfo, st.Sig, ak.PublicKey, h, want[:])
	if err != nil {
		return nil, err
	}
	res, err := newResult(policy.FormatTPM, pub)
	if err != nil {
		return nil, err
	}
	for i, p := range san.permanentIDs {
		k := "permanent_identifier"
		if i > 0 {
			k += "." + strconv.Itoa(i)
		}
		res.Identifiers[k] = p
	}
	if san.ekSHA256 != "" {
		res.Identifiers["ek_sha256"] = san.ekSHA256
	}
	switch {
	case len(san.permanentIDs) > 0:
		res.DeviceID = san.permanentIDs[0]
	case san.ekSHA256 != "":
		res.DeviceID = san.ekSHA256
	}
	res.Facts["vendor"] = "tpm"
	res.Facts["tpm_manufacturer"] = san.manufacturer
	res.Facts["tpm_model"] = san.model
	res.Facts["tpm_version"] = san.version
	res.Facts["ak_issuer"] = ak.Issuer.String()
	addKeyFacts(res, info)
	return res, nil
}

// verifyCertification checks a TPM2_Certify result: go-attestation's
// CertificationParameters.Verify (key is fixedTPM, fixedParent,
// sensitiveDataOrigin, not restricted; name matches pubArea; signature by
// the certifying key), then the qualifying data, which Verify does not check.
func verifyCertification(pubArea, certInfo, sig []byte, signer crypto.PublicKey, h crypto.Hash, extraData []byte) (crypto.PublicKey, *tpm2.AttestationData, error) {
	tsig, err := toTPMTSignature(sig, signer, h)
	if err != nil {
		return nil, nil, err
	}
	cp := attest.CertificationParameters{Public: pubArea, CreateAttestation: certInfo, CreateSignature: tsig}
	if err := cp.Verify(attest.VerifyOpts{Public: signer, Hash: h}); err != nil {
		return nil, nil, badf("tpm: key certification: %v", err)
	}
	info, err := tpm2.DecodeAttestationData(certInfo)
	if err != nil {
		return nil, nil, badf("tpm: certInfo: %v", err)
	}
	if subtle.ConstantTimeCompare(info.ExtraData, extraData) != 1 {
		return nil, nil, badf("tpm: certInfo extraData does not match the expected nonce digest")
	}
	tp, err := tpm2.DecodePublic(pubArea)
	if err != nil {
		return nil, nil, badf("tpm: pubArea: %v", err)
	}
	pub, err := tp.Key()
	if err != nil {
		return nil, nil, badf("tpm: pubArea key: %v", err)
	}
	return pub, info, nil
}

// toTPMTSignature returns sig as a TPMT_SIGNATURE. go-attestation and step
// send TPMT_SIGNATURE; WebAuthn (Windows Hello) sends raw PKCS#1 v1.5 or
// ASN.1 ECDSA bytes, which are wrapped here so one verifier handles both.
func toTPMTSignature(sig []byte, signer crypto.PublicKey, h crypto.Hash) ([]byte, error) {
	buf := bytes.NewBuffer(sig)
	if s, err := tpm2.DecodeSignature(buf); err == nil && buf.Len() == 0 && (s.RSA != nil || s.ECC != nil) {
		return sig, nil
	}
	hashAlg, err := tpm2.HashToAlgorithm(h)
	if err != nil {
		return nil, badf("tpm: hash %v: %v", h, err)
	}
	var s tpm2.Signature
	switch signer.(type) {
	case *rsa.PublicKey:
		s = tpm2.Signature{Alg: tpm2.AlgRSASSA, RSA: &tpm2.SignatureRSA{HashAlg: hashAlg, Signature: sig}}
	case *ecdsa.PublicKey:
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 {
			return nil, badf("tpm: sig is neither TPMT_SIGNATURE nor an ASN.1 ECDSA signature")
		}
		s = tpm2.Signature{Alg: tpm2.AlgECDSA, ECC: &tpm2.SignatureECC{HashAlg: hashAlg, R: rs.R, S: rs.S}}
	default:
		return nil, badf("tpm: unsupported certifying key type %T", signer)
	}
	out, err := s.Encode()
	if err != nil {
		return nil, badf("tpm: sig: %v", err)
	}
	return out, nil
}

func addKeyFacts(res *Result, info *tpm2.AttestationData) {
	res.Facts["firmware_version"] = strconv.FormatUint(info.FirmwareVersion, 16)
	switch k := res.PublicKey.(type) {
	case *ecdsa.PublicKey:
		res.Facts["key_type"] = "ecdsa-" + k.Curve.Params().Name
	case *rsa.PublicKey:
		res.Facts["key_type"] = "rsa-" + strconv.Itoa(k.N.BitLen())
	}
}

type akSAN struct {
	manufacturer, model, version string
	permanentIDs                 []string
	ekSHA256                     string // hex, from urn:ek:sha256:<base64>
}

// parseAKSAN reads the SAN of an AK certificate: the TPM directoryName,
// PermanentIdentifier otherNames and the urn:ek:sha256 URI. Go exposes
// neither of the first two, and go-attestation's SAN parser rejects URIs.
func parseAKSAN(c *x509.Certificate) (*akSAN, error) {
	out := &akSAN{}
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		san, err := ParseSAN(e.Value)
		if err != nil {
			return nil, badf("tpm: AK certificate: %v", err)
		}
		for _, dn := range san.DirectoryNames {
			readTPMDirName(dn, &out.manufacturer, &out.model, &out.version)
		}
		for _, p := range san.PermanentIdentifiers {
			if p.Value != "" {
				out.permanentIDs = append(out.permanentIDs, p.Value)
			}
		}
		for _, s := range san.URIs {
			const pfx = "urn:ek:sha256:"
			if len(s) > len(pfx) && strings.EqualFold(s[:len(pfx)], pfx) {
				b, err := base64.StdEncoding.DecodeString(s[len(pfx):])
				if err != nil || len(b) != sha256.Size {
					return nil, badf("tpm: AK certificate has a malformed %s URI", pfx)
				}
				out.ekSHA256 = hex.EncodeToString(b)
			}
		}
	}
	return out, nil
}

func readTPMDirName(dn pkix.Name, man, model, ver *string) {
	for _, atv := range dn.Names {
		s, ok := atv.Value.(string)
		if !ok {
			continue
		}
		switch {
		case atv.Type.Equal(OIDTPMManufacturer):
			*man = s
		case atv.Type.Equal(OIDTPMModel):
			*model = s
		case atv.Type.Equal(OIDTPMVersion):
			*ver = s
		}
	}
}

// checkAKCertProfile applies the WebAuthn "TPM attestation statement
// certificate requirements" (WebAuthn Level 2 §8.3.1; docs/attestation.md
// §3.2).
func checkAKCertProfile(c *x509.Certificate, san *akSAN) error {
	if c.Version != 3 {
		return badf("tpm: AK certificate version is %d, want 3", c.Version)
	}
	if len(c.Subject.Names) != 0 {
		return badf("tpm: AK certificate subject must be empty, got %q", c.Subject)
	}
	if c.IsCA {
		return badf("tpm: AK certificate must not be a CA")
	}
	var ekus []asn1.ObjectIdentifier
	found := false
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			if rest, err := asn1.Unmarshal(e.Value, &ekus); err != nil || len(rest) != 0 {
				return badf("tpm: AK certificate EKU is malformed")
			}
			found = true
		}
	}
	if !found || len(ekus) == 0 || !ekus[0].Equal(OIDTCGKpAIKCertificate) {
		return badf("tpm: AK certificate's first EKU must be tcg-kp-AIKCertificate (2.23.133.8.3)")
	}
	if san.manufacturer == "" || san.model == "" || san.version == "" {
		return badf("tpm: AK certificate SAN lacks TPM manufacturer, model or version")
	}
	return nil
}

// ---- SCEP attestation flow: EK -> AK (credential activation) -> key ----

// TPMAKParams are the AK's TPM structures, as attest.AK.AttestationParameters
// returns them. Byte fields are base64 (standard, padded) in JSON.
type TPMAKParams struct {
	Public            []byte `json:"public"`             // TPMT_PUBLIC
	CreateData        []byte `json:"create_data"`        // TPMS_CREATION_DATA
	CreateAttestation []byte `json:"create_attestation"` // TPMS_ATTEST (creation)
	CreateSignature   []byte `json:"create_signature"`   // TPMT_SIGNATURE by the AK
}

// TPMKeyCertification is TPM2_Certify of the application key by the AK, as
// attest.Key.CertificationParameters returns it (Public, CreateAttestation,
// CreateSignature).
type TPMKeyCertification struct {
	Public      []byte `json:"public"`       // TPMT_PUBLIC of the key
	CertifyInfo []byte `json:"certify_info"` // TPMS_ATTEST (certify), extraData = nonce
	Signature   []byte `json:"signature"`    // TPMT_SIGNATURE by the AK
}

// TPMActivationRequest starts the SCEP TPM flow: the EK certificate and the
// AK to be bound to it.
type TPMActivationRequest struct {
	// EKCert is the EK certificate DER (a TCG NV header is tolerated).
	EKCert []byte `json:"ek_cert"`
	// EKChain holds intermediate CA certs (DER) up to a Roots.TPM anchor.
	EKChain [][]byte    `json:"ek_chain,omitempty"`
	AK      TPMAKParams `json:"ak"`
}

// TPMActivation is the credential for the client's TPM2_ActivateCredential
// (attest.EncryptedCredential). Only the TPM holding the EK, with the AK
// loaded, recovers the secret: that secret is the nonce for VerifyTPM.
type TPMActivation struct {
	Credential []byte    `json:"credential"`
	Secret     []byte    `json:"secret"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// TPMEvidence is what a device posts to POST /api/v1/attestations: the same
// EK and AK it activated with, plus the application key certified by that AK
// with qualifying data = the activated nonce.
type TPMEvidence struct {
	EKCert  []byte              `json:"ek_cert"`
	EKChain [][]byte            `json:"ek_chain,omitempty"`
	AK      TPMAKParams         `json:"ak"`
	Key     TPMKeyCertification `json:"key"`
}

const (
	tpmNonceLen   = 32
	tpmNonceLabel = "hardbound/attest/tpm-nonce/v1"
)

// ActivateTPM verifies the EK certificate against Roots.TPM and the AK's
// creation attestation (restricted, fixedTPM, TPM-generated signing key),
// then mints a 32-byte nonce bound by HMAC to this EK and AK with an expiry,
// and encrypts it to the EK as a credential for the AK's Name
// (TPM2_MakeCredential). It keeps no state: VerifyTPM re-derives the binding.
func (v *Verifier) ActivateTPM(ctx context.Context, req TPMActivationRequest) (*TPMActivation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	ek, ekPub, err := v.verifyEK(req.EKCert, req.EKChain)
	if err != nil {
		return nil, err
	}
	akName, err := checkAK(req.AK, ekPub)
	if err != nil {
		return nil, err
	}
	exp := v.now().Add(v.activationTTL)
	nonce, err := v.mintNonce(ek.RawSubjectPublicKeyInfo, req.AK.Public, exp)
	if err != nil {
		return nil, err
	}
	cred, secret, err := credactivation.Generate(akName, ekPub, 16, nonce)
	if err != nil {
		return nil, badf("tpm: make credential: %v", err)
	}
	return &TPMActivation{Credential: cred, Secret: secret, ExpiresAt: exp.UTC().Truncate(time.Second)}, nil
}

// VerifyTPM verifies TPM evidence for a SCEP attestation-bound challenge.
// nonce is the secret the client recovered with TPM2_ActivateCredential from
// ActivateTPM's credential; it must be the key certification's qualifying
// data (extraData), be unexpired, and be bound to ev's EK and AK.
//
// Proven: the EK chains to a configured TPM root; the AK lives in that TPM
// (only it could activate the credential that carried the nonce); the key is
// TPM-generated, non-exportable and certified by that AK for this nonce.
// The caller must make the nonce single-use (store its hash as consumed).
func (v *Verifier) VerifyTPM(ctx context.Context, ev TPMEvidence, nonce []byte) (res *Result, err error) {
	defer func() { v.observe(ctx, policy.FormatTPM, err) }()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	ek, ekPub, err := v.verifyEK(ev.EKCert, ev.EKChain)
	if err != nil {
		return nil, err
	}
	if _, err := checkAK(ev.AK, ekPub); err != nil {
		return nil, err
	}
	if err := v.checkNonce(nonce, ek.RawSubjectPublicKeyInfo, ev.AK.Public); err != nil {
		return nil, err
	}
	akPub, err := attest.ParseAKPublic(ev.AK.Public)
	if err != nil {
		return nil, badf("tpm: AK public: %v", err)
	}
	k := ev.Key
	if err := checkBlobs("key.public", k.Public, "key.certify_info", k.CertifyInfo, "key.signature", k.Signature); err != nil {
		return nil, err
	}
	pub, info, err := verifyCertification(k.Public, k.CertifyInfo, k.Signature, akPub.Public, akPub.Hash, nonce)
	if err != nil {
		return nil, err
	}
	res, err = newResult(policy.FormatTPM, pub)
	if err != nil {
		return nil, err
	}
	ekSum := sha256.Sum256(ek.RawSubjectPublicKeyInfo)
	res.DeviceID = hex.EncodeToString(ekSum[:])
	res.Identifiers["ek_sha256"] = res.DeviceID
	res.Identifiers["ek_urn"] = "urn:ek:sha256:" + base64.StdEncoding.EncodeToString(ekSum[:])
	res.Facts["vendor"] = "tpm"
	res.Facts["tpm_manufacturer"] = ek.TpmManufacturer
	res.Facts["tpm_model"] = ek.TpmModel
	res.Facts["tpm_version"] = ek.TpmVersion
	res.Facts["ek_issuer"] = ek.Issuer.String()
	addKeyFacts(res, info)
	return res, nil
}

// verifyEK parses the EK certificate with the TCG EK profile checks and
// verifies it to Roots.TPM.
func (v *Verifier) verifyEK(der []byte, chain [][]byte) (*x509ext.EKCertificate, crypto.PublicKey, error) {
	if v.roots.TPM == nil {
		return nil, nil, fmt.Errorf("%w: %w: tpm: no TPM EK roots configured (Roots.TPM); TPM attestation needs the manufacturers' EK CA bundle", ErrBadAttestation, ErrNotConfigured)
	}
	if len(der) == 0 || len(der) > MaxCertSize {
		return nil, nil, badf("tpm: ek_cert is %d bytes", len(der))
	}
	if len(chain) > MaxChainLen {
		return nil, nil, badf("tpm: ek_chain has %d certificates, limit %d", len(chain), MaxChainLen)
	}
	c, err := attest.ParseEKCertificate(der)
	if err != nil {
		return nil, nil, badf("tpm: ek_cert: %v", err)
	}
	ek, err := x509ext.ToEKCertificate(c)
	if err != nil {
		return nil, nil, badf("tpm: ek_cert profile: %v", err)
	}
	inter, err := parseX5C(policy.FormatTPM, chain, 0)
	if err != nil {
		return nil, nil, err
	}
	if _, err := verifyChain(policy.FormatTPM, ek.Certificate, inter, v.roots.TPMIntermediates, v.roots.TPM, v.now()); err != nil {
		return nil, nil, fmt.Errorf("%w (EK certificate)", err)
	}
	switch ek.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, nil, badf("tpm: EK key type %T is not supported", ek.PublicKey)
	}
	return ek, ek.PublicKey, nil
}

// checkAK runs go-attestation's AK checks (creation attestation signed by
// the AK, restricted signing key, fixedTPM/fixedParent/sensitiveDataOrigin)
// and returns the AK Name for MakeCredential.
func checkAK(p TPMAKParams, ekPub crypto.PublicKey) (*tpm2.HashValue, error) {
	if err := checkBlobs("ak.public", p.Public, "ak.create_data", p.CreateData, "ak.create_attestation", p.CreateAttestation, "ak.create_signature", p.CreateSignature); err != nil {
		return nil, err
	}
	ap := attest.ActivationParameters{
		EK: ekPub,
		AK: attest.AttestationParameters{
			Public:            p.Public,
			CreateData:        p.CreateData,
			CreateAttestation: p.CreateAttestation,
			CreateSignature:   p.CreateSignature,
		},
	}
	if err := ap.CheckAKParameters(); err != nil {
		return nil, badf("tpm: AK: %v", err)
	}
	pub, err := tpm2.DecodePublic(p.Public)
	if err != nil {
		return nil, badf("tpm: AK public: %v", err)
	}
	name, err := pub.Name()
	if err != nil || name.Digest == nil {
		return nil, badf("tpm: AK name: %v", err)
	}
	return name.Digest, nil
}

// Nonce layout: expiry (u32 unix seconds) | 12 random bytes | 16-byte
// truncated HMAC-SHA256 over label, the first 16 bytes, SHA-256(EK SPKI)
// and SHA-256(AK TPMT_PUBLIC). 32 bytes fit every TPM's credential size.
func (v *Verifier) mintNonce(ekSPKI, akPublic []byte, exp time.Time) ([]byte, error) {
	n := make([]byte, tpmNonceLen)
	binary.BigEndian.PutUint32(n[:4], uint32(exp.Unix()))
	if _, err := io.ReadFull(v.rand, n[4:16]); err != nil {
		return nil, fmt.Errorf("attest: nonce randomness: %w", err)
	}
	copy(n[16:], v.nonceMAC(n[:16], ekSPKI, akPublic))
	return n, nil
}

func (v *Verifier) nonceMAC(head, ekSPKI, akPublic []byte) []byte {
	m := hmac.New(sha256.New, v.nonceKey)
	m.Write([]byte(tpmNonceLabel))
	m.Write(head)
	e := sha256.Sum256(ekSPKI)
	a := sha256.Sum256(akPublic)
	m.Write(e[:])
	m.Write(a[:])
	return m.Sum(nil)[:16]
}

func (v *Verifier) checkNonce(n, ekSPKI, akPublic []byte) error {
	if len(n) != tpmNonceLen {
		return badf("tpm: nonce is %d bytes, want %d", len(n), tpmNonceLen)
	}
	if !hmac.Equal(n[16:], v.nonceMAC(n[:16], ekSPKI, akPublic)) {
		return badf("tpm: nonce was not issued by ActivateTPM for this EK and AK")
	}
	exp := time.Unix(int64(binary.BigEndian.Uint32(n[:4])), 0)
	if !v.now().Before(exp) {
		return badf("tpm: nonce expired at %s", exp.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkBlobs bounds TPM structures, given as name, value pairs (in order,
// so the first bad one is the one reported).
func checkBlobs(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, _ := pairs[i].(string)
		b, _ := pairs[i+1].([]byte)
		if len(b) == 0 || len(b) > MaxTPMBlobSize {
			return badf("tpm: %s is %d bytes (want 1..%d)", name, len(b), MaxTPMBlobSize)
		}
	}
	return nil
}
