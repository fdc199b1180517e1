// Package posture owns a device's standing and the authorization decision.
package posture

import (
	"time"

	"hardbound/store"
)

// Reason is the closed set of decision outcomes. It is the metric label, the
// audit reason and the log field; never add a value without updating docs.
type Reason string

const (
	ReasonOK                    Reason = "ok"
	ReasonUnknownCert           Reason = "unknown_cert"            // chains to our CA but has no binding
	ReasonUnattested            Reason = "unattested"              // binding without hardware attestation
	ReasonAttestationNotAllowed Reason = "attestation_not_allowed" // format below the profile's policy
	ReasonCertRevoked           Reason = "cert_revoked"
	ReasonCertExpired           Reason = "cert_expired"
	ReasonDeviceRevoked         Reason = "device_revoked"
	ReasonDeviceQuarantined     Reason = "device_quarantined"
	ReasonNoncompliant          Reason = "noncompliant"
	ReasonPostureStale          Reason = "posture_stale"
	ReasonPostureUnknown        Reason = "posture_unknown"
	// ReasonBelowMinimum: the facts the binding's attestation proved (OS
	// version, patch level) are below the profile's minimums, which may
	// have been raised since the device enrolled; it must re-enroll.
	ReasonBelowMinimum Reason = "attested_below_minimum"
	// ReasonStoreUnavailable: the store could not be reached and either
	// what the decision needed was not cached, or the outage outlasted
	// store.unavailable.grace under the reject policy (outage.go).
	ReasonStoreUnavailable Reason = "store_unavailable"
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{
	ReasonOK, ReasonUnknownCert, ReasonUnattested, ReasonAttestationNotAllowed,
	ReasonCertRevoked, ReasonCertExpired, ReasonDeviceRevoked, ReasonDeviceQuarantined,
	ReasonNoncompliant, ReasonPostureStale, ReasonPostureUnknown, ReasonBelowMinimum,
	ReasonStoreUnavailable,
}

// Verdict is the answer of Decide. Allow with a non-empty VLAN and a reason
// other than ok means "admit into quarantine".
type Verdict struct {
	Allow      bool
	Reason     Reason
	DeviceID   string
	CertSHA256 store.Hash
	Profile    string
	// VLAN is the Tunnel-Private-Group-ID to assign; empty for none.
	VLAN string
	// SessionTimeout never exceeds the cert's remaining life nor the posture max age.
	SessionTimeout time.Duration
	// Generation is the store change (store.Change.Seq) the caches had
	// applied when the decision began: a decision with a Generation below a
	// standing change's Seq was made before that change, whenever its
	// audit event reaches the chain.
	Generation uint64
	// StoreUnavailable: the store could not be reached when the decision
	// was made, so it came from the caches (within the grace, or under
	// accept_cached) or is the store_unavailable reject.
	StoreUnavailable bool
}
