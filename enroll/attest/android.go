package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"hardbound/store/policy"
)

// OIDAndroidKeyDescription is the Android Key Attestation extension.
var OIDAndroidKeyDescription = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}

// SecurityLevel is the Android KeyMint/Keymaster SecurityLevel.
type SecurityLevel int

const (
	SecuritySoftware  SecurityLevel = 0
	SecurityTEE       SecurityLevel = 1
	SecurityStrongBox SecurityLevel = 2
)

func (s SecurityLevel) String() string {
	switch s {
	case SecuritySoftware:
		return "software"
	case SecurityTEE:
		return "tee"
	case SecurityStrongBox:
		return "strongbox"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// VerifiedBootState values of RootOfTrust.
const (
	BootVerified   = 0
	BootSelfSigned = 1
	BootUnverified = 2
	BootFailed     = 3
)

// Selected AuthorizationList tags (all EXPLICIT context-specific).
const (
	tagPurpose            = 1
	tagAlgorithm          = 2
	tagKeySize            = 3
	tagECCurve            = 10
	tagNoAuthRequired     = 503
	tagCreationDateTime   = 701
	tagOrigin             = 702
	tagRootOfTrust        = 704
	tagOSVersion          = 705
	tagOSPatchLevel       = 706
	tagAttestationAppID   = 709
	tagIDBrand            = 710
	tagIDDevice           = 711
	tagIDProduct          = 712
	tagIDSerial           = 713
	tagIDManufacturer     = 716
	tagIDModel            = 717
	tagVendorPatchLevel   = 718
	tagBootPatchLevel     = 719
	tagDeviceUniqueAttest = 720
)

// KeyPurposeSign is KeyPurpose SIGN; OriginGenerated is KeyOrigin GENERATED.
const (
	KeyPurposeSign  = 2
	OriginGenerated = 0
)

// RootOfTrust is the verified boot state the TEE reports.
type RootOfTrust struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState int
	VerifiedBootHash  []byte // KeyMint v3+ / attestation v3+
}

// AuthorizationList holds the fields hardbound uses; unknown tags are skipped.
type AuthorizationList struct {
	Purpose                  []int64
	Algorithm                *int64
	KeySize                  *int64
	ECCurve                  *int64
	NoAuthRequired           bool
	CreationDateTime         *int64
	Origin                   *int64
	RootOfTrust              *RootOfTrust
	OSVersion                *int64
	OSPatchLevel             *int64
	VendorPatchLevel         *int64
	BootPatchLevel           *int64
	AttestationApplicationID []byte
	IDBrand                  string
	IDDevice                 string
	IDProduct                string
	IDSerial                 string
	IDManufacturer           string
	IDModel                  string
	DeviceUniqueAttestation  bool
}

// KeyDescription is the parsed 1.3.6.1.4.1.11129.2.1.17 extension.
type KeyDescription struct {
	AttestationVersion       int64
	AttestationSecurityLevel SecurityLevel
	KeyMintVersion           int64
	KeyMintSecurityLevel     SecurityLevel
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         AuthorizationList
	HardwareEnforced         AuthorizationList
}

type keyDescriptionASN1 struct {
	AttestationVersion       int64
	AttestationSecurityLevel asn1.Enumerated
	KeyMintVersion           int64
	KeyMintSecurityLevel     asn1.Enumerated
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         asn1.RawValue
	HardwareEnforced         asn1.RawValue
}

type rootOfTrustASN1 struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState asn1.Enumerated
	VerifiedBootHash  []byte `asn1:"optional"`
}

const (
	maxKeyDescriptionSize = 8 << 10
	maxAuthListEntries    = 96
	maxChallengeLen       = 128
)

// ParseKeyDescription parses the DER value of the Android attestation
// extension. AuthorizationLists are walked element by element and unknown
// tags skipped, because new KeyMint versions keep adding tags.
func ParseKeyDescription(der []byte) (*KeyDescription, error) {
	if len(der) == 0 || len(der) > maxKeyDescriptionSize {
		return nil, badf("android-key: KeyDescription is %d bytes", len(der))
	}
	var kd keyDescriptionASN1
	rest, err := asn1.Unmarshal(der, &kd)
	if err != nil {
		return nil, badf("android-key: KeyDescription: %v", err)
	}
	if len(rest) != 0 {
		return nil, badf("android-key: KeyDescription has %d trailing bytes", len(rest))
	}
	if len(kd.AttestationChallenge) > maxChallengeLen {
		return nil, badf("android-key: attestationChallenge is %d bytes, limit %d", len(kd.AttestationChallenge), maxChallengeLen)
	}
	out := &KeyDescription{
		AttestationVersion:       kd.AttestationVersion,
		AttestationSecurityLevel: SecurityLevel(kd.AttestationSecurityLevel),
		KeyMintVersion:           kd.KeyMintVersion,
		KeyMintSecurityLevel:     SecurityLevel(kd.KeyMintSecurityLevel),
		AttestationChallenge:     kd.AttestationChallenge,
		UniqueID:                 kd.UniqueID,
	}
	if out.SoftwareEnforced, err = parseAuthList(kd.SoftwareEnforced, "softwareEnforced"); err != nil {
		return nil, err
	}
	if out.HardwareEnforced, err = parseAuthList(kd.HardwareEnforced, "hardwareEnforced"); err != nil {
		return nil, err
	}
	return out, nil
}

func parseAuthList(raw asn1.RawValue, name string) (AuthorizationList, error) {
	var al AuthorizationList
	if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence || !raw.IsCompound {
		return al, badf("android-key: %s is not a SEQUENCE", name)
	}
	seen := map[int]bool{}
	rest := raw.Bytes
	for n := 0; len(rest) > 0; n++ {
		if n >= maxAuthListEntries {
			return al, badf("android-key: %s has more than %d entries", name, maxAuthListEntries)
		}
		var el asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &el)
		if err != nil {
			return al, badf("android-key: %s entry %d: %v", name, n, err)
		}
		if el.Class != asn1.ClassContextSpecific || !el.IsCompound {
			return al, badf("android-key: %s entry %d is not an explicit context tag", name, n)
		}
		if seen[el.Tag] {
			return al, badf("android-key: %s repeats tag %d", name, el.Tag)
		}
		seen[el.Tag] = true
		if err := al.set(el.Tag, el.Bytes); err != nil {
			return al, badf("android-key: %s tag %d: %v", name, el.Tag, err)
		}
	}
	return al, nil
}

func (al *AuthorizationList) set(tag int, inner []byte) error {
	intp := func() (*int64, error) {
		var v int64
		if err := unmarshalExact(inner, &v, ""); err != nil {
			return nil, err
		}
		return &v, nil
	}
	str := func() (string, error) {
		var b []byte
		if err := unmarshalExact(inner, &b, ""); err != nil {
			return "", err
		}
		if len(b) > 256 {
			return "", fmt.Errorf("value is %d bytes", len(b))
		}
		return string(b), nil
	}
	var err error
	switch tag {
	case tagPurpose:
		err = unmarshalExact(inner, &al.Purpose, "set")
	case tagAlgorithm:
		al.Algorithm, err = intp()
	case tagKeySize:
		al.KeySize, err = intp()
	case tagECCurve:
		al.ECCurve, err = intp()
	case tagNoAuthRequired:
		err = expectNull(inner)
		al.NoAuthRequired = err == nil
	case tagCreationDateTime:
		al.CreationDateTime, err = intp()
	case tagOrigin:
		al.Origin, err = intp()
	case tagRootOfTrust:
		var r rootOfTrustASN1
		if err = unmarshalExact(inner, &r, ""); err == nil {
			al.RootOfTrust = &RootOfTrust{
				VerifiedBootKey:   r.VerifiedBootKey,
				DeviceLocked:      r.DeviceLocked,
				VerifiedBootState: int(r.VerifiedBootState),
				VerifiedBootHash:  r.VerifiedBootHash,
			}
		}
	case tagOSVersion:
		al.OSVersion, err = intp()
	case tagOSPatchLevel:
		al.OSPatchLevel, err = intp()
	case tagVendorPatchLevel:
		al.VendorPatchLevel, err = intp()
	case tagBootPatchLevel:
		al.BootPatchLevel, err = intp()
	case tagAttestationAppID:
		err = unmarshalExact(inner, &al.AttestationApplicationID, "")
	case tagIDBrand:
		al.IDBrand, err = str()
	case tagIDDevice:
		al.IDDevice, err = str()
	case tagIDProduct:
		al.IDProduct, err = str()
	case tagIDSerial:
		al.IDSerial, err = str()
	case tagIDManufacturer:
		al.IDManufacturer, err = str()
	case tagIDModel:
		al.IDModel, err = str()
	case tagDeviceUniqueAttest:
		err = expectNull(inner)
		al.DeviceUniqueAttestation = err == nil
	}
	return err
}

func unmarshalExact(b []byte, v any, params string) error {
	rest, err := asn1.UnmarshalWithParams(b, v, params)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

func expectNull(b []byte) error {
	var rv asn1.RawValue
	if err := unmarshalExact(b, &rv, ""); err != nil {
		return err
	}
	if rv.Class != asn1.ClassUniversal || rv.Tag != asn1.TagNull || len(rv.Bytes) != 0 {
		return fmt.Errorf("want NULL")
	}
	return nil
}

// AndroidPolicy is what hardbound demands of an Android attestation beyond
// the chain and the challenge. The zero value is the strict policy.
type AndroidPolicy struct {
	// WARNING: accepts devices whose bootloader is unlocked, where the OS
	// (and so the key's owner) is whatever the user flashed.
	AllowUnlockedBootloader bool
	// WARNING: accepts verifiedBootState SelfSigned (custom OS images).
	AllowSelfSignedBoot bool
	// MinOSPatchLevel, if set, is the lowest hardwareEnforced osPatchLevel
	// (YYYYMM) accepted.
	MinOSPatchLevel int64
}

// AndroidStatus reports Google attestation status list entries. Serials are
// lower-case hex without leading zeros (the list's key form).
type AndroidStatus interface {
	Revoked(serialHex string) (reason string, revoked bool)
}

// AndroidStatusAvailability is implemented by an AndroidStatus that can be
// unavailable (a list fetched over the network, enroll/attest/statuslist):
// a non-nil Unavailable refuses every Android attestation, since a list
// that cannot be read revokes nothing (fail closed). A source configured
// to fail open returns nil.
type AndroidStatusAvailability interface {
	Unavailable() error
}

// AndroidStatusList is a parsed status list: serial hex -> "STATUS/REASON".
type AndroidStatusList map[string]string

// Revoked implements AndroidStatus.
func (l AndroidStatusList) Revoked(serialHex string) (string, bool) {
	r, ok := l[strings.ToLower(serialHex)]
	return r, ok
}

// ParseAndroidStatusList parses the JSON served at
// https://android.googleapis.com/attestation/status (fetched and cached by
// the operator; this package never fetches it).
func ParseAndroidStatusList(b []byte) (AndroidStatusList, error) {
	var doc struct {
		Entries map[string]struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"entries"`
	}
	if len(b) > MaxAndroidStatusListSize {
		return nil, fmt.Errorf("%w: android status list is %d bytes, limit %d", ErrStatusList, len(b), MaxAndroidStatusListSize)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: android status list: %w", ErrStatusList, err)
	}
	if doc.Entries == nil {
		// A list without entries would revoke nothing: a truncated or
		// wrong document, not an empty list ({"entries": {}}).
		return nil, fmt.Errorf("%w: android status list has no entries object", ErrStatusList)
	}
	out := make(AndroidStatusList, len(doc.Entries))
	for k, e := range doc.Entries {
		key := strings.ToLower(strings.TrimLeft(k, "0"))
		if key == "" || len(key) > 64 || strings.Trim(key, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%w: android status list key %q is not a hex serial", ErrStatusList, truncate(k, 70))
		}
		out[key] = e.Status + "/" + e.Reason
	}
	return out, nil
}

// MaxAndroidStatusListSize caps a status list document (Google's is a few
// hundred KiB).
const MaxAndroidStatusListSize = 16 << 20

// ErrStatusList is wrapped by ParseAndroidStatusList's errors.
var ErrStatusList = errors.New("attest: bad attestation status list")

type androidStmt struct {
	Alg *int64   `cbor:"alg"`
	Sig []byte   `cbor:"sig"`
	X5C [][]byte `cbor:"x5c"`
}

// verifyAndroid implements docs/attestation.md §4, including the checks
// beyond chain and challenge (KeyMint security level, origin, root of trust
// from hardwareEnforced only, SIGN purpose).
func (v *Verifier) verifyAndroid(raw []byte, challenge []byte) (*Result, error) {
	var st androidStmt
	if err := v.dec.Unmarshal(raw, &st); err != nil {
		return nil, badf("android-key: attStmt: %v", err)
	}
	if len(st.Sig) == 0 || len(st.Sig) > 1024 {
		return nil, badf("android-key: sig is missing or too large")
	}
	certs, err := parseX5C(policy.FormatAndroidKey, st.X5C, 2)
	if err != nil {
		return nil, err
	}
	if v.androidStatus != nil {
		if a, ok := v.androidStatus.(AndroidStatusAvailability); ok {
			if err := a.Unavailable(); err != nil {
				return nil, badf("android-key: the attestation status list is unavailable, so revocation cannot be checked: %v", err)
			}
		}
		for i, c := range certs {
			if reason, bad := v.androidStatus.Revoked(c.SerialNumber.Text(16)); bad {
				return nil, badf("android-key: x5c[%d] serial %s is on the attestation status list (%s)", i, c.SerialNumber.Text(16), reason)
			}
		}
	}
	leaf := certs[0]
	now := v.now()
	// OEM leaves carry odd validity dates (docs/attestation.md §4.1), so
	// the chain is built at a time inside the leaf's window and every
	// issuer's validity is then checked against the real clock.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	chains, err := verifyChain(policy.FormatAndroidKey, leaf, certs[1:], nil, v.roots.Android, at)
	if err != nil {
		return nil, err
	}
	chain := chains[0]
	for _, c := range chain[1:] {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, badf("android-key: chain certificate %s is not valid at %s (valid %s to %s)",
				c.Subject, now.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	// The attestation cert is the first one, walking from the root, that
	// carries the extension: certs below it were made by the attested key's
	// owner, not by the TEE.
	var att *x509.Certificate
	var extVal []byte
	for i := len(chain) - 1; i >= 0 && att == nil; i-- {
		for _, e := range chain[i].Extensions {
			if e.Id.Equal(OIDAndroidKeyDescription) {
				att, extVal = chain[i], e.Value
				break
			}
		}
	}
	if att == nil {
		return nil, badf("android-key: no certificate carries the key attestation extension %s", OIDAndroidKeyDescription)
	}
	if err := verifyChallengeSig(att.PublicKey, challenge, st.Sig); err != nil {
		return nil, err
	}
	kd, err := ParseKeyDescription(extVal)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(kd.AttestationChallenge, challenge) != 1 {
		return nil, badf("android-key: attestationChallenge does not match the key authorization")
	}
	if kd.AttestationSecurityLevel < SecurityTEE {
		return nil, badf("android-key: attestationSecurityLevel is %s, need tee or strongbox", kd.AttestationSecurityLevel)
	}
	if kd.KeyMintSecurityLevel < SecurityTEE {
		return nil, badf("android-key: keyMintSecurityLevel is %s, need tee or strongbox", kd.KeyMintSecurityLevel)
	}
	hw := kd.HardwareEnforced
	if hw.Origin == nil || *hw.Origin != OriginGenerated {
		return nil, badf("android-key: key origin is not hardware-enforced GENERATED")
	}
	if !slices.Contains(hw.Purpose, KeyPurposeSign) {
		return nil, badf("android-key: hardware-enforced purposes do not include SIGN")
	}
	rot := hw.RootOfTrust
	if rot == nil {
		return nil, badf("android-key: rootOfTrust is not hardware-enforced")
	}
	pol := v.android.Load()
	if !rot.DeviceLocked && !pol.AllowUnlockedBootloader {
		return nil, badf("android-key: bootloader is unlocked")
	}
	switch {
	case rot.VerifiedBootState == BootVerified:
	case rot.VerifiedBootState == BootSelfSigned && pol.AllowSelfSignedBoot:
	default:
		return nil, badf("android-key: verifiedBootState is %d, want Verified (0)", rot.VerifiedBootState)
	}
	if pol.MinOSPatchLevel > 0 && (hw.OSPatchLevel == nil || *hw.OSPatchLevel < pol.MinOSPatchLevel) {
		return nil, badf("android-key: osPatchLevel below policy minimum %d", pol.MinOSPatchLevel)
	}

	res, err := newResult(policy.FormatAndroidKey, att.PublicKey)
	if err != nil {
		return nil, err
	}
	if hw.IDSerial != "" {
		res.DeviceID = hw.IDSerial
		res.Identifiers["serial"] = hw.IDSerial
	}
	res.Facts["vendor"] = "android"
	res.Facts["security_level"] = kd.AttestationSecurityLevel.String()
	res.Facts["keymint_security_level"] = kd.KeyMintSecurityLevel.String()
	res.Facts["attestation_version"] = strconv.FormatInt(kd.AttestationVersion, 10)
	res.Facts["verified_boot_state"] = strconv.Itoa(rot.VerifiedBootState)
	res.Facts["device_locked"] = strconv.FormatBool(rot.DeviceLocked)
	for k, s := range map[string]string{"brand": hw.IDBrand, "device": hw.IDDevice, "product": hw.IDProduct, "manufacturer": hw.IDManufacturer, "model": hw.IDModel} {
		if s != "" {
			res.Facts[k] = s
		}
	}
	for k, p := range map[string]*int64{"os_version": hw.OSVersion, "os_patch_level": hw.OSPatchLevel, "vendor_patch_level": hw.VendorPatchLevel, "boot_patch_level": hw.BootPatchLevel} {
		if p != nil {
			res.Facts[k] = strconv.FormatInt(*p, 10)
		}
	}
	return res, nil
}

// verifyChallengeSig checks the attested key's signature over the key
// authorization (docs/attestation.md §4.1).
func verifyChallengeSig(pub crypto.PublicKey, msg, sig []byte) error {
	sum := sha256.Sum256(msg)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, sum[:], sig) {
			return badf("android-key: sig over the key authorization does not verify (ECDSA)")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig); err != nil {
			return badf("android-key: sig over the key authorization does not verify (RSA): %v", err)
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, sig) {
			return badf("android-key: sig over the key authorization does not verify (Ed25519)")
		}
	default:
		return badf("android-key: unsupported attested key type %T", pub)
	}
	return nil
}
