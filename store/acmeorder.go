package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrLimit is returned by CreateACMEOrder when the account already holds
// as many unexpired orders as the caller allows.
var ErrLimit = errors.New("store: limit reached")

// MaxACMEOrderBlob bounds each of an order's opaque JSON parts (Error,
// Evidence): a problem document or an encoded attestation result is a few
// KiB at most.
const MaxACMEOrderBlob = 64 << 10

// ACMEOrder is one ACME enrollment attempt (RFC 8555 §7.1.3) with its one
// authorization and its one device-attest-01 challenge: the three live and
// die together, so one record holds them, and the authorization and the
// challenge have the order's ID. It is shared by every node of a store, so
// a client may send each request of an order to another node.
//
// Version orders the writes: UpdateACMEOrder is a compare-and-swap on it,
// so of two nodes validating or finalizing one order at once exactly one
// writes. RecordIssuance takes an order too (Issuance.Order): the order
// becomes valid, with the certificate it names, in the transaction that
// binds the certificate, so an issuance the client was told about can
// always be downloaded and one order never binds two certificates.
//
// Orders are short-lived: every backend drops one after ExpiresAt.
type ACMEOrder struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Account string `json:"account"`
	Profile string `json:"profile"`
	// Named: the request URL named the profile (/profile/NAME/new-order).
	Named           bool   `json:"named,omitempty"`
	IdentifierType  string `json:"identifier_type"`
	IdentifierValue string `json:"identifier_value"`
	DeviceID        string `json:"device_id"`
	Token           string `json:"token"`

	Status      string `json:"status"`       // of the order (RFC 8555 §7.1.6)
	AuthzStatus string `json:"authz_status"` // of its authorization
	ChallStatus string `json:"chall_status"` // of its challenge
	// Error is the problem document (RFC 7807) that made the order
	// invalid, opaque to the store.
	Error       json.RawMessage `json:"error,omitempty"`
	ValidatedAt time.Time       `json:"validated_at,omitzero"`
	// Evidence is the verified attestation as enroll/acme encodes it
	// (public key, identities, facts; never a private key), opaque to the
	// store.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	// CertSHA256 and CertSerial name the issued certificate once the order
	// is valid; its DER is the binding's (GetCert).
	CertSHA256 Hash   `json:"cert_sha256,omitzero"`
	CertSerial string `json:"cert_serial,omitempty"`

	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CheckACMEOrder checks an order before it is stored.
func CheckACMEOrder(o *ACMEOrder) error {
	if o == nil {
		return errors.New("acme order is nil")
	}
	if err := errors.Join(CheckID("acme order id", o.ID), CheckID("acme order account", o.Account),
		CheckID("acme order profile", o.Profile), CheckID("acme order device id", o.DeviceID),
		CheckID("acme order identifier type", o.IdentifierType), CheckID("acme order identifier value", o.IdentifierValue),
		CheckID("acme order token", o.Token), CheckID("acme order status", o.Status),
		CheckID("acme authorization status", o.AuthzStatus), CheckID("acme challenge status", o.ChallStatus)); err != nil {
		return err
	}
	switch {
	case o.CreatedAt.IsZero() || !o.ExpiresAt.After(o.CreatedAt):
		return errors.New("acme order must expire after it was created")
	case len(o.Error) > MaxACMEOrderBlob || len(o.Evidence) > MaxACMEOrderBlob:
		return fmt.Errorf("acme order error or evidence longer than %d bytes", MaxACMEOrderBlob)
	case len(o.Error) > 0 && !json.Valid(o.Error):
		return errors.New("acme order error is not JSON")
	case len(o.Evidence) > 0 && !json.Valid(o.Evidence):
		return errors.New("acme order evidence is not JSON")
	case o.CertSerial != "":
		if err := CheckSerial(o.CertSerial); err != nil {
			return err
		}
	}
	return nil
}

// CloneACMEOrder returns a deep copy of o.
func CloneACMEOrder(o *ACMEOrder) *ACMEOrder {
	c := *o
	c.Error = append(json.RawMessage(nil), o.Error...)
	c.Evidence = append(json.RawMessage(nil), o.Evidence...)
	if len(o.Error) == 0 {
		c.Error = nil
	}
	if len(o.Evidence) == 0 {
		c.Evidence = nil
	}
	return &c
}

// NormACMEOrderTimes puts o's times in UTC without a monotonic reading,
// as every backend stores them, so what a caller gets back compares equal
// to what it reads later.
func NormACMEOrderTimes(o *ACMEOrder) {
	o.CreatedAt = o.CreatedAt.UTC().Round(0)
	o.UpdatedAt = o.UpdatedAt.UTC().Round(0)
	o.ExpiresAt = o.ExpiresAt.UTC().Round(0)
	o.ValidatedAt = o.ValidatedAt.UTC().Round(0)
}
