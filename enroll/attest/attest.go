// Package attest verifies hardware key attestations: Apple Managed Device
// Attestation ("apple"), TPM 2.0 key certification ("tpm") and Android Key
// Attestation ("android-key"), as carried by ACME device-attest-01
// (draft-ietf-acme-device-attest) and by hardbound's SCEP attestation flow.
//
// Bytes and trust roots go in; the attested public key, the device identity
// the evidence proves and the verified facts come out. The package does no
// I/O: it never fetches AIA URLs, EK certificate URLs or revocation lists.
// Every failure wraps ErrBadAttestation (ACME maps it to
// urn:ietf:params:acme:error:badAttestationStatement) and says what failed.
//
// See docs/attestation.md for the formats and the nonce rules:
// apple binds SHA-256(token), tpm binds SHA-256(keyAuthorization) and
// android-key binds keyAuthorization itself.
//
// Metrics (through the Metrics interface; the wiring maps them to
// Prometheus): one Verification(format, outcome) per VerifyACME/VerifyTPM
// call, format in {apple, tpm, android-key, unknown}, outcome in {ok, fail};
// suggested name hardbound_enroll_attestations_total{format,outcome}.
package attest

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"hardbound/store"
	"hardbound/store/policy"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrBadAttestation is wrapped by every verification failure.
	ErrBadAttestation = errors.New("attest: bad attestation statement")
	// ErrNotConfigured is wrapped (together with ErrBadAttestation) when a
	// format needs trust roots that were not configured, e.g. TPM EK roots.
	ErrNotConfigured = errors.New("attest: trust roots not configured")
)

// Bounds on untrusted input.
const (
	// MaxAttObjSize caps the CBOR attestation object before decoding.
	MaxAttObjSize = 64 << 10
	// MaxChainLen caps x5c and EK chains. Android RKP chains have up to 5.
	MaxChainLen = 8
	// MaxCertSize caps one DER certificate.
	MaxCertSize = 16 << 10
	// MaxTPMBlobSize caps each TPM structure (TPMT_PUBLIC, TPMS_ATTEST...).
	MaxTPMBlobSize = 4 << 10
)

// Result is what a successful verification proves.
type Result struct {
	Format      string           // policy.FormatApple, FormatTPM or FormatAndroidKey
	PublicKey   crypto.PublicKey // the attested key
	KeySHA256   store.Hash       // store.HashKey(SPKI DER of PublicKey)
	DeviceID    string           // permanent identifier it proves (serial / UDID / EK-derived id)
	Identifiers map[string]string
	Facts       map[string]string
}

// Proves reports whether the evidence proves the identifier value, compared
// octet for octet (no case or whitespace folding), as ACME's
// permanent-identifier matching requires. Every value in Identifiers counts:
// Apple proves serial and UDID, TPM the EK hash and the AK cert's permanent
// identifiers, Android the attested serial.
func (r *Result) Proves(value string) bool {
	if r == nil || value == "" {
		return false
	}
	if r.DeviceID == value {
		return true
	}
	for _, v := range r.Identifiers {
		if v != "" && hmac.Equal([]byte(v), []byte(value)) {
			return true
		}
	}
	return false
}

// Roots are the trust anchors per format. A nil pool means the built-in
// default: Apple Enterprise Attestation Root CA for Apple, Google's hardware
// attestation roots for Android, and nothing for TPM (TPM verification then
// fails with ErrNotConfigured: there is no universal TPM root).
type Roots struct {
	Apple   *x509.CertPool
	TPM     *x509.CertPool // EK manufacturer roots, for VerifyTPM / ActivateTPM
	Android *x509.CertPool
	// TPMAK anchors AK certificates in ACME "tpm" statements (x5c[0] is an
	// AK cert, issued by an attestation CA such as hardbound's own). Nil =>
	// ACME "tpm" fails with ErrNotConfigured.
	TPMAK *x509.CertPool
	// TPMIntermediates are EK intermediate CAs the server trusts to use as
	// chain links (many EK certs name theirs only via AIA, which is never
	// fetched). Optional.
	TPMIntermediates *x509.CertPool
}

// Metrics receives one event per verification. Labels are bounded: format is
// one of the Format constants or "unknown", outcome is "ok" or "fail".
type Metrics interface {
	Verification(format, outcome string)
}

type nopMetrics struct{}

func (nopMetrics) Verification(string, string) {}

// Option configures a Verifier.
type Option func(*Verifier)

// WithClock sets the time source used for certificate validity and nonce
// expiry. Default time.Now.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithLogger sets the logger. Default discards.
func WithLogger(l *slog.Logger) Option { return func(v *Verifier) { v.log = l } }

// WithMetrics sets the metrics sink. Default no-op.
func WithMetrics(m Metrics) Option { return func(v *Verifier) { v.metrics = m } }

// WithAndroidPolicy replaces the strict default Android policy.
func WithAndroidPolicy(p AndroidPolicy) Option { return func(v *Verifier) { v.android.Store(&p) } }

// SetAndroidPolicy replaces the Android policy of a running Verifier (a
// configuration reload): every verification that starts after it returns
// applies p.
func (v *Verifier) SetAndroidPolicy(p AndroidPolicy) { v.android.Store(&p) }

// WithAndroidStatus sets Google's attestation status (revocation) list. Without
// it no Android revocation check is made (logged once at New).
func WithAndroidStatus(s AndroidStatus) Option { return func(v *Verifier) { v.androidStatus = s } }

// WithTPMNonceKey sets the HMAC key that binds TPM activation nonces to an EK
// and AK (see ActivateTPM). Default: 32 random bytes per Verifier, so pending
// activations do not survive a restart. Keys shorter than 32 bytes are ignored.
func WithTPMNonceKey(key []byte) Option {
	return func(v *Verifier) {
		if len(key) >= 32 {
			v.nonceKey = append([]byte(nil), key...)
		}
	}
}

// WithTPMActivationTTL sets how long an ActivateTPM nonce stays valid.
// Default 10 minutes; capped at 1 hour.
func WithTPMActivationTTL(d time.Duration) Option {
	return func(v *Verifier) {
		if d > 0 && d <= time.Hour {
			v.activationTTL = d
		}
	}
}

// WithRand sets the randomness source (tests). Default crypto/rand.
func WithRand(r io.Reader) Option { return func(v *Verifier) { v.rand = r } }

// Verifier verifies attestation evidence. It is safe for concurrent use.
type Verifier struct {
	roots         Roots
	now           func() time.Time
	log           *slog.Logger
	metrics       Metrics
	android       atomic.Pointer[AndroidPolicy]
	androidStatus AndroidStatus
	nonceKey      []byte
	activationTTL time.Duration
	rand          io.Reader
	dec           cbor.DecMode
}

// New builds a Verifier. Nil pools in roots take the built-in defaults.
func New(roots Roots, opts ...Option) *Verifier {
	v := &Verifier{
		roots:         roots,
		now:           time.Now,
		log:           slog.New(slog.DiscardHandler),
		metrics:       nopMetrics{},
		activationTTL: 10 * time.Minute,
		rand:          rand.Reader,
	}
	v.android.Store(&AndroidPolicy{})
	for _, o := range opts {
		o(v)
	}
	if v.roots.Apple == nil {
		v.roots.Apple = DefaultAppleRoots()
	}
	if v.roots.Android == nil {
		v.roots.Android = DefaultAndroidRoots()
	}
	if v.nonceKey == nil {
		v.nonceKey = make([]byte, 32)
		if _, err := io.ReadFull(v.rand, v.nonceKey); err != nil {
			// crypto/rand does not fail on supported platforms; a broken
			// injected reader is a programming error in the caller's test.
			panic("attest: cannot read random nonce key: " + err.Error())
		}
	}
	if v.roots.TPM == nil {
		v.log.Info("attest: no TPM EK roots configured; TPM attestation (VerifyTPM) will be refused")
	}
	if v.androidStatus == nil {
		v.log.Info("attest: no Android attestation status list configured; Android revocation is not checked")
	}
	v.dec = mustDecMode()
	return v
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  6,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("attest: static CBOR options invalid: " + err.Error())
	}
	return dm
}

// attObject is the ACME device-attest-01 attestation object. authData is
// allowed (WebAuthn leftovers) and ignored.
type attObject struct {
	Fmt     string          `cbor:"fmt"`
	AttStmt cbor.RawMessage `cbor:"attStmt"`
}

// ParseAttObj decodes an attestation object in strict mode (bounded size,
// no duplicate keys, no indefinite lengths, no tags) and returns the format
// and the raw attStmt.
func ParseAttObj(attObj []byte) (format string, attStmt []byte, err error) {
	return parseAttObj(mustDecMode(), attObj)
}

func parseAttObj(dm cbor.DecMode, attObj []byte) (string, []byte, error) {
	switch {
	case len(attObj) == 0:
		return "", nil, fmt.Errorf("%w: attObj is empty", ErrBadAttestation)
	case len(attObj) > MaxAttObjSize:
		return "", nil, fmt.Errorf("%w: attObj is %d bytes, limit %d", ErrBadAttestation, len(attObj), MaxAttObjSize)
	}
	if err := dm.Wellformed(attObj); err != nil {
		return "", nil, fmt.Errorf("%w: attObj is not well-formed CBOR: %v", ErrBadAttestation, err)
	}
	var ao attObject
	if err := dm.Unmarshal(attObj, &ao); err != nil {
		return "", nil, fmt.Errorf("%w: attObj: %v", ErrBadAttestation, err)
	}
	if ao.Fmt == "" {
		return "", nil, fmt.Errorf("%w: attObj has no fmt", ErrBadAttestation)
	}
	if len(ao.AttStmt) == 0 {
		return "", nil, fmt.Errorf("%w: attObj has no attStmt", ErrBadAttestation)
	}
	return ao.Fmt, ao.AttStmt, nil
}

// VerifyACME verifies an ACME device-attest-01 attestation object (the
// base64url-decoded "attObj" of the challenge response) against the
// challenge's key authorization (token + "." + base64url(JWK thumbprint) of
// the account key that POSTed the response).
//
// Freshness: apple must carry SHA-256(token) in its nonce extension, tpm must
// certify with extraData SHA-256(keyAuthorization), android-key must carry
// keyAuthorization as attestationChallenge and sign it with the attested key.
//
// The caller must still check that the order identifier is proved
// (Result.Proves) and, at finalize, that the CSR key equals Result.PublicKey.
func (v *Verifier) VerifyACME(ctx context.Context, attObj []byte, keyAuthorization string) (res *Result, err error) {
	format := "unknown"
	defer func() { v.observe(ctx, format, err) }()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	token, err := splitKeyAuthorization(keyAuthorization)
	if err != nil {
		return nil, err
	}
	f, stmt, err := parseAttObj(v.dec, attObj)
	if err != nil {
		return nil, err
	}
	switch f {
	case policy.FormatApple:
		format = f
		return v.verifyApple(stmt, token)
	case policy.FormatTPM:
		format = f
		return v.verifyACMETPM(stmt, keyAuthorization)
	case policy.FormatAndroidKey:
		format = f
		return v.verifyAndroid(stmt, []byte(keyAuthorization))
	default:
		return nil, fmt.Errorf("%w: unsupported attestation format %q", ErrBadAttestation, truncate(f, 32))
	}
}

func (v *Verifier) observe(ctx context.Context, format string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "fail"
		v.log.DebugContext(ctx, "attestation rejected", "format", format, "err", err)
	}
	v.metrics.Verification(format, outcome)
}

// splitKeyAuthorization checks the RFC 8555 §8.1 shape token "." thumbprint
// and returns the token.
func splitKeyAuthorization(ka string) (string, error) {
	if len(ka) > 512 {
		return "", fmt.Errorf("%w: keyAuthorization too long", ErrBadAttestation)
	}
	token, thumb, ok := strings.Cut(ka, ".")
	if !ok || token == "" || thumb == "" || strings.Contains(thumb, ".") {
		return "", fmt.Errorf("%w: keyAuthorization is not token.thumbprint", ErrBadAttestation)
	}
	return token, nil
}

func newResult(format string, pub crypto.PublicKey) (*Result, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: attested key: %v", ErrBadAttestation, format, err)
	}
	return &Result{
		Format:      format,
		PublicKey:   pub,
		KeySHA256:   store.HashKey(der),
		Identifiers: map[string]string{},
		Facts:       map[string]string{},
	}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadAttestation}, args...)...)
}
