// Package scep is hardbound's RFC 8894 SCEP server with one-time, device- and
// key-bound challenges.
//
// The Handler answers GetCACaps, GetCACert and PKIOperation (PKCSReq and
// RenewalReq, GET and POST). A PKCSReq is issued only when its
// challengePassword redeems a minted challenge (see Minter), matches a
// profile's static challenge (only if the profile explicitly enables it) or
// is accepted by the profile's MDM Validator (Intune). The challenge is
// consumed in the same store transaction that records the certificate
// binding and its audit event, and that transaction commits before the
// CertRep is written. Every refusal is a CertRep FAILURE with an RFC 8894
// failInfo plus an audit event naming the reason; malformed envelopes that
// cannot even be answered get HTTP 400, never 500.
//
// Metrics (through the Metrics interface; labels are bounded):
//   - Enrollment(protocol="scep", format, result): format is the attestation
//     format of the issued cert ("tpm", "apple", "android-key") or "none";
//     result is "ok" or a Reason.
//   - Latency(protocol="scep", op, d): op is "pkcsreq", "renewalreq" or "other".
package scep

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"time"

	"hardbound/enroll/ca"
	"hardbound/store"
)

// Protocol is the value written into store.Cert.Protocol.
const Protocol = "scep"

// Sentinel errors.
var (
	// ErrConfig is wrapped by every configuration error from New and NewMinter.
	ErrConfig = errors.New("scep: invalid configuration")
	// ErrInvalidRequest is wrapped by Minter errors caused by the caller's request.
	ErrInvalidRequest = errors.New("scep: invalid request")
	// ErrNonce is wrapped when a TPM attestation nonce is unknown, expired or reused.
	ErrNonce = errors.New("scep: unknown or expired nonce")
	// ErrAttestation is wrapped when evidence fails verification in MintFromTPM.
	ErrAttestation = errors.New("scep: attestation rejected")
)

// Reason is the closed set of enrollment outcomes, used as metric label,
// audit reason and log attribute.
type Reason string

const (
	ReasonOK                  Reason = "ok"
	ReasonBadMessage          Reason = "bad_message"             // envelope signature or decryption failed
	ReasonUnsupportedMessage  Reason = "unsupported_message"     // GetCert, GetCRL, CertPoll, UpdateReq
	ReasonUnsupportedKey      Reason = "unsupported_key"         // signer key cannot receive the CertRep (not RSA)
	ReasonBadCSR              Reason = "bad_csr"                 // CSR policy (ca.CheckCSR) or signer/CSR key mismatch
	ReasonNoIdentity          Reason = "no_identity"             // CSR lacks the device identity the profile requires
	ReasonChallengeMissing    Reason = "challenge_missing"       // no challengePassword
	ReasonChallengeUnknown    Reason = "challenge_unknown"       // no such challenge (static disabled or wrong)
	ReasonChallengeExpired    Reason = "challenge_expired"       // minted challenge past its expiry
	ReasonChallengeConsumed   Reason = "challenge_consumed"      // minted challenge already redeemed
	ReasonProfileMismatch     Reason = "profile_mismatch"        // URL profile differs from the challenge's
	ReasonProfileUnknown      Reason = "profile_unknown"         // no such profile configured
	ReasonDeviceMismatch      Reason = "device_mismatch"         // challenge or attestation bound to another device
	ReasonKeyMismatch         Reason = "key_mismatch"            // challenge bound to another key
	ReasonAttestationRequired Reason = "attestation_required"    // profile requires an attested key
	ReasonUnattested          Reason = "unattested"              // profile's formats do not admit an unattested key (posture would reject it)
	ReasonFormatNotAllowed    Reason = "attestation_not_allowed" // attested in a format the profile does not admit
	ReasonMDMRejected         Reason = "mdm_rejected"            // Validator (Intune) refused the request
	ReasonDeviceRevoked       Reason = "device_revoked"          // the device is administratively revoked
	ReasonRenewalUnknownCert  Reason = "renewal_unknown_cert"    // RenewalReq signer is not a cert of ours
	ReasonRenewalRevoked      Reason = "renewal_revoked"         // RenewalReq signer cert is revoked
	ReasonRenewalExpired      Reason = "renewal_expired"         // RenewalReq signer cert is expired
	ReasonNotInInventory      Reason = "not_in_inventory"        // the profile enrolls only inventoried devices (enroll/gate)
	ReasonPlatformMismatch    Reason = "platform_mismatch"       // attested in another format than the device's platform's
	ReasonBelowMinimum        Reason = "below_minimum"           // attested facts below the profile's minimums
	ReasonRateLimited         Reason = "rate_limited"
	ReasonInternal            Reason = "internal"
)

// CA is what the handler needs from enroll/ca (*ca.CA satisfies it).
type CA interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*x509.Certificate, error)
	Issuing() *x509.Certificate
	Root() *x509.Certificate
}

// RASigner signs the RA certificate (*ca.CA satisfies it).
type RASigner interface {
	Sign(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error)
	Issuing() *x509.Certificate
}

// Store is the part of store.Store the handler uses.
type Store interface {
	GetChallenge(ctx context.Context, sha store.Hash) (*store.Challenge, error)
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error)
	FindAttestationByKey(ctx context.Context, key store.Hash) (*store.Attestation, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
	RecordIssuance(ctx context.Context, is store.Issuance) error
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// Limiter rate-limits enrollments (*limit.Limiter satisfies it). An empty
// key skips that limit. Refusals should wrap limit.ErrRateLimited.
type Limiter interface {
	Allow(device, ip, profile string) error
}

// Validator is an MDM hook consulted before issuing for a profile, e.g. the
// Intune SCEP validation client in enroll/challenge. Validate must fail
// closed: any error means "do not issue". NotifySuccess is called after the
// certificate is signed and before it is recorded; if it fails the
// certificate is not handed out. NotifyFailure is best-effort.
type Validator interface {
	Validate(ctx context.Context, transactionID string, csrDER []byte) error
	NotifySuccess(ctx context.Context, transactionID string, csrDER []byte, cert *x509.Certificate) error
	NotifyFailure(ctx context.Context, transactionID string, csrDER []byte, reason string) error
}

// Metrics receives enrollment outcomes. Implementations must be safe for
// concurrent use; the wiring adapts it to Prometheus.
type Metrics interface {
	// Enrollment counts one finished PKIOperation.
	Enrollment(protocol, format, result string)
	// Latency observes how long one PKIOperation took to answer.
	Latency(protocol, op string, d time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) Enrollment(string, string, string)     {}
func (nopMetrics) Latency(string, string, time.Duration) {}
