// Package mdm connects MDMs' compliance signals to hardbound's posture: a
// generic signed webhook (this package), Jamf Pro webhooks (mdm/jamf) and a
// Microsoft Intune Graph poller (mdm/intune). Connectors map the MDM's device
// identity (serial number, UDID, Intune/Entra device id) to a hardbound
// device id and report compliance through an Updater; they never touch the
// store directly.
//
// Metrics (through Metrics; the wiring names them hardbound_posture_mdm_*):
//
//	reports_total{source,state}   compliance reports applied
//	rejects_total{source,reason}  webhook requests refused, by reason
//	polls_total{source,result}    poll cycles (ok|error)
package mdm

import (
	"context"
	"errors"
	"fmt"

	"hardbound/store"
)

// Updater is the slice of posture.Service a connector needs.
type Updater interface {
	// ResolveDevice maps an MDM identity to a device id; kind "id" is the id
	// itself. A miss wraps store.ErrNotFound.
	ResolveDevice(ctx context.Context, kind, value string) (string, error)
	SetCompliance(ctx context.Context, deviceID string, state store.Compliance, source, actor string) (*store.Device, error)
}

// Auditor appends to the audit chain (store.Store satisfies it).
type Auditor interface {
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// Metrics receives connector measurements. Labels are bounded: source is the
// configured connector name, state the store.Compliance set, reason the
// Reject* constants, result ok|error.
type Metrics interface {
	PostureChange(source string, state store.Compliance)
	WebhookReject(source, reason string)
	Poll(source, result string)
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) PostureChange(string, store.Compliance) {}
func (NopMetrics) WebhookReject(string, string)           {}
func (NopMetrics) Poll(string, string)                    {}

// Identity kinds understood by ResolveDevice (store.Device.Aliases keys).
const (
	KindID        = "id"
	KindSerial    = "serial"
	KindUDID      = "udid"
	KindIntuneID  = "intune_id"   // Intune managedDevice id (the cert's IntuneDeviceId://)
	KindAzureADID = "azure_ad_id" // Entra (Azure AD) device id
	// Jamf Pro inventory ids, for smart-group events that carry only ids.
	KindJamfComputerID     = "jamf_computer_id"
	KindJamfMobileDeviceID = "jamf_mobile_device_id"
)

// Reject reasons (metric label, audit reason, JSON error code).
const (
	RejectMethod        = "method"
	RejectTooLarge      = "too_large"
	RejectUnauthorized  = "unauthorized"
	RejectBadSignature  = "bad_signature"
	RejectStale         = "stale_timestamp"
	RejectReplayed      = "replayed"
	RejectReplayFull    = "replay_cache_full"
	RejectMalformed     = "malformed"
	RejectBadState      = "bad_state"
	RejectUnknownDevice = "unknown_device"
	RejectNoIdentity    = "no_identity"
	RejectInternal      = "internal"
)

// ErrUnknownDevice is returned by Resolve when no identity matches.
var ErrUnknownDevice = errors.New("mdm: unknown device")

// Identity is one MDM identifier of a device.
type Identity struct {
	Kind, Value string
}

// Resolve tries ids in order and returns the first device found. Empty
// values are skipped; a miss on every id is ErrUnknownDevice (wrapping
// store.ErrNotFound); other lookup errors are returned at once.
func Resolve(ctx context.Context, u Updater, ids ...Identity) (string, error) {
	tried := 0
	for _, id := range ids {
		if id.Value == "" {
			continue
		}
		tried++
		dev, err := u.ResolveDevice(ctx, id.Kind, id.Value)
		if err == nil {
			return dev, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("mdm: resolve %s: %w", id.Kind, err)
		}
	}
	if tried == 0 {
		return "", fmt.Errorf("%w: no identity given: %w", ErrUnknownDevice, store.ErrNotFound)
	}
	return "", fmt.Errorf("%w (%d identities tried): %w", ErrUnknownDevice, tried, store.ErrNotFound)
}

// ParseState maps the webhook's state word to a store.Compliance.
func ParseState(s string) (store.Compliance, bool) {
	switch c := store.Compliance(s); c {
	case store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
		return c, true
	}
	return "", false
}
