package attesttest

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	x509ext "github.com/google/go-attestation/x509"
	"github.com/google/go-tpm/legacy/tpm2"

	"hardbound/enroll/attest"
)

// TPMDevice is a software stand-in for a TPM 2.0 in hardbound's SCEP TPM
// flow (attest.Verifier.ActivateTPM / VerifyTPM): an RSA-2048 EK with an EK
// certificate from the Authority's "manufacturer" CA, and an ECDSA P-256 AK
// with a creation attestation. It performs TPM2_ActivateCredential and
// TPM2_Certify in software. Use swtpm for genuine evidence.
type TPMDevice struct {
	ek     *rsa.PrivateKey
	ekCert []byte
	ak     *ecdsa.PrivateKey
	akPub  tpm2.Public
	params attest.TPMAKParams
}

// NewTPMDevice creates a device whose EK certificate chains to
// Roots().TPM.
func (a *Authority) NewTPMDevice() (*TPMDevice, error) {
	ek, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("attesttest: EK: %w", err)
	}
	san, err := x509ext.MarshalSubjectAltName(&x509ext.SubjectAltName{
		DirectoryNames: []pkix.Name{{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: attest.OIDTPMManufacturer, Value: "id:48424E44"},
			{Type: attest.OIDTPMModel, Value: "attesttest-soft"},
			{Type: attest.OIDTPMVersion, Value: "id:00010002"},
		}}},
	}, true)
	if err != nil {
		return nil, fmt.Errorf("attesttest: EK SAN: %w", err)
	}
	// TCG EK Credential Profile: empty subject, critical SAN,
	// keyEncipherment, CA=false, AKI (Go derives it from the CA's SKI).
	ekCert, err := a.issue(&x509.Certificate{
		KeyUsage:              x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{san},
		UnknownExtKeyUsage:    nil,
	}, &ek.PublicKey, a.ekRoot)
	if err != nil {
		return nil, fmt.Errorf("attesttest: EK cert: %w", err)
	}
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("attesttest: AK: %w", err)
	}
	akPub, err := tpmPublic(&ak.PublicKey, akAttrs)
	if err != nil {
		return nil, err
	}
	d := &TPMDevice{ek: ek, ekCert: ekCert, ak: ak, akPub: akPub}
	if d.params, err = d.akCreation(); err != nil {
		return nil, err
	}
	return d, nil
}

// akCreation plays TPM2_Create's creation ticket for the AK: a
// TPMS_CREATION_DATA, a TPMS_ATTEST (creation) naming the AK and the
// creation data digest, signed by the AK itself (TPM2_CertifyCreation).
func (d *TPMDevice) akCreation() (attest.TPMAKParams, error) {
	pub, err := d.akPub.Encode()
	if err != nil {
		return attest.TPMAKParams{}, err
	}
	name, err := d.akPub.Name()
	if err != nil {
		return attest.TPMAKParams{}, err
	}
	cd := tpm2.CreationData{
		PCRSelection:        tpm2.PCRSelection{Hash: tpm2.AlgSHA256},
		PCRDigest:           make([]byte, 32),
		Locality:            1,
		ParentNameAlg:       tpm2.AlgSHA256,
		ParentName:          tpm2.Name{Digest: &tpm2.HashValue{Alg: tpm2.AlgSHA256, Value: make([]byte, 32)}},
		ParentQualifiedName: tpm2.Name{Digest: &tpm2.HashValue{Alg: tpm2.AlgSHA256, Value: make([]byte, 32)}},
	}
	createData, err := cd.EncodeCreationData()
	if err != nil {
		return attest.TPMAKParams{}, fmt.Errorf("attesttest: creation data: %w", err)
	}
	digest := sha256.Sum256(createData)
	att, err := tpm2.AttestationData{
		Magic:                tpmGeneratedMagic,
		Type:                 tpm2.TagAttestCreation,
		QualifiedSigner:      name,
		ExtraData:            nil,
		ClockInfo:            tpm2.ClockInfo{Clock: 1000, ResetCount: 1, Safe: 1},
		FirmwareVersion:      0x0001000200030004,
		AttestedCreationInfo: &tpm2.CreationInfo{Name: name, OpaqueDigest: digest[:]},
	}.Encode()
	if err != nil {
		return attest.TPMAKParams{}, fmt.Errorf("attesttest: creation attestation: %w", err)
	}
	sig, err := d.sign(att)
	if err != nil {
		return attest.TPMAKParams{}, err
	}
	return attest.TPMAKParams{Public: pub, CreateData: createData, CreateAttestation: att, CreateSignature: sig}, nil
}

func (d *TPMDevice) sign(msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, d.ak, sum[:])
	if err != nil {
		return nil, err
	}
	return tpm2.Signature{Alg: tpm2.AlgECDSA, ECC: &tpm2.SignatureECC{HashAlg: tpm2.AlgSHA256, R: r, S: s}}.Encode()
}

// ActivationRequest is step one: what the device posts to start activation.
func (d *TPMDevice) ActivationRequest() attest.TPMActivationRequest {
	return attest.TPMActivationRequest{EKCert: bytes.Clone(d.ekCert), AK: d.params}
}

// EKID is the device identity VerifyTPM will prove (hex SHA-256 of the EK
// SubjectPublicKeyInfo, Result.DeviceID).
func (d *TPMDevice) EKID() string {
	der, _ := x509.MarshalPKIXPublicKey(&d.ek.PublicKey)
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// ActivateCredential plays TPM2_ActivateCredential (TPM 2.0 Part 1 §24):
// recover the seed with the EK (RSA-OAEP, label "IDENTITY"), check the
// integrity HMAC over the AK Name, decrypt the credential (AES-128-CFB).
// It returns the nonce for Evidence.
func (d *TPMDevice) ActivateCredential(act *attest.TPMActivation) ([]byte, error) {
	if act == nil {
		return nil, errors.New("attesttest: nil activation")
	}
	name, err := d.akPub.Name()
	if err != nil {
		return nil, err
	}
	nameEnc, err := name.Digest.Encode()
	if err != nil {
		return nil, err
	}
	encSeed, err := u16(act.Secret)
	if err != nil {
		return nil, fmt.Errorf("attesttest: secret: %w", err)
	}
	if len(encSeed) == d.ek.Size()+2 { // tolerate a nested size prefix
		if encSeed, err = u16(encSeed); err != nil {
			return nil, err
		}
	}
	seed, err := rsa.DecryptOAEP(sha256.New(), nil, d.ek, encSeed, []byte("IDENTITY\x00"))
	if err != nil {
		return nil, fmt.Errorf("attesttest: decrypt seed: %w", err)
	}
	idObj, err := u16(act.Credential)
	if err != nil {
		return nil, fmt.Errorf("attesttest: credential: %w", err)
	}
	mac, err := u16Prefix(idObj)
	if err != nil {
		return nil, fmt.Errorf("attesttest: credential HMAC: %w", err)
	}
	encIdentity := idObj[2+len(mac):]
	macKey, err := tpm2.KDFa(tpm2.AlgSHA256, seed, "INTEGRITY", nil, nil, 256)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, macKey)
	m.Write(encIdentity)
	m.Write(nameEnc)
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, errors.New("attesttest: credential integrity check failed (wrong AK or EK)")
	}
	symKey, err := tpm2.KDFa(tpm2.AlgSHA256, seed, "STORAGE", nameEnc, nil, 128)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(symKey)
	if err != nil {
		return nil, err
	}
	cv := make([]byte, len(encIdentity))
	//lint:ignore SA1019 TPM 2.0 mandates CFB for credential protection.
	cipher.NewCFBDecrypter(blk, make([]byte, aes.BlockSize)).XORKeyStream(cv, encIdentity)
	return u16(cv)
}

// u16 strips a TPM2B size prefix and requires it to cover the rest exactly.
func u16(b []byte) ([]byte, error) {
	v, err := u16Prefix(b)
	if err != nil {
		return nil, err
	}
	if len(v) != len(b)-2 {
		return nil, fmt.Errorf("TPM2B has %d trailing bytes", len(b)-2-len(v))
	}
	return v, nil
}

func u16Prefix(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errors.New("short TPM2B")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, errors.New("TPM2B size exceeds data")
	}
	return b[2 : 2+n], nil
}

// Evidence plays TPM2_Certify of pub by the AK with the nonce as qualifying
// data and returns the evidence for VerifyTPM (POST /api/v1/attestations).
func (d *TPMDevice) Evidence(pub crypto.PublicKey, nonce []byte) (attest.TPMEvidence, error) {
	pubArea, certInfo, sig, err := softCertify(pub, d.ak, nonce, false, false)
	if err != nil {
		return attest.TPMEvidence{}, err
	}
	return attest.TPMEvidence{
		EKCert: bytes.Clone(d.ekCert),
		AK:     d.params,
		Key:    attest.TPMKeyCertification{Public: pubArea, CertifyInfo: certInfo, Signature: sig},
	}, nil
}

// IssueAKCert issues an AK certificate with the profile ACME "tpm" expects
// (docs/attestation.md §3.2) from the Authority's AK CA for any AK public
// key, e.g. a genuine swtpm AK.
func (a *Authority) IssueAKCert(akPub crypto.PublicKey, deviceID string) ([]byte, error) {
	return a.akCertFor(akPub, deviceID, "")
}
