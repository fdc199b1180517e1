package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The record rules every backend enforces before it writes, defined once so
// that Badger and PostgreSQL refuse exactly the same input.

// MaxIDLen bounds every identifier (device ids, alias kinds and values,
// NAS names, sink names...).
const MaxIDLen = 512

// MaxJWKLen bounds a stored ACME account key: an RSA-4096 public JWK is
// under 1 KiB, so anything near this is not a key.
const MaxJWKLen = 16 << 10

// ErrInvalidID reports an empty, oversize or NUL-carrying identifier, or a
// serial not in the stored form.
var ErrInvalidID = errors.New("store: invalid identifier")

// CheckID rejects empty, oversize and NUL-carrying identifiers: Badger uses
// NUL as its key separator and PostgreSQL text cannot hold it. what names
// the field in the error.
func CheckID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, what)
	case len(s) > MaxIDLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidID, what, MaxIDLen)
	case strings.Contains(s, "\x00"):
		return fmt.Errorf("%w: %s contains NUL", ErrInvalidID, what)
	}
	return nil
}

// CheckDevice checks a device's id and aliases.
func CheckDevice(d *Device) error {
	if err := CheckID("device id", d.ID); err != nil {
		return err
	}
	for k, v := range d.Aliases {
		if err := errors.Join(CheckID("alias kind", k), CheckID("alias value", v)); err != nil {
			return err
		}
	}
	return nil
}

// CheckSerial enforces the Cert.Serial contract: lower-case hex, no leading
// zeros, so one serial has exactly one spelling.
func CheckSerial(s string) error {
	if s == "" || len(s) > 42 || s[0] == '0' || strings.Trim(s, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: serial %q must be lower-case hex without leading zeros", ErrInvalidID, s)
	}
	return nil
}

// NormSerial maps common spellings (upper case, colons, leading zeros)
// onto the stored form, for lookups typed by an operator.
func NormSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return s
}

// CheckAttestation checks an attestation's id and key hash.
func CheckAttestation(a *Attestation) error {
	if err := CheckID("attestation id", a.ID); err != nil {
		return err
	}
	if a.KeySHA256.IsZero() {
		return errors.New("attestation key sha256 is zero")
	}
	return nil
}

// CheckIssuance checks what RecordIssuance writes: a cert with its audit
// event, the device it names, and the attestation if any.
func CheckIssuance(is Issuance) error {
	switch {
	case is.Cert == nil:
		return errors.New("cert is required")
	case is.Audit == nil:
		return errors.New("audit event is required")
	case is.Cert.SHA256.IsZero():
		return errors.New("cert sha256 is zero")
	case is.Device != nil && is.Device.ID != is.Cert.DeviceID:
		return fmt.Errorf("device id %q differs from cert device id %q", is.Device.ID, is.Cert.DeviceID)
	}
	if err := CheckSerial(is.Cert.Serial); err != nil {
		return err
	}
	if is.Device != nil {
		if err := CheckDevice(is.Device); err != nil {
			return err
		}
	} else if err := CheckID("device id", is.Cert.DeviceID); err != nil {
		return err
	}
	if is.Attestation != nil {
		if err := CheckAttestation(is.Attestation); err != nil {
			return err
		}
	}
	if is.Order != nil {
		if err := CheckACMEOrder(is.Order); err != nil {
			return err
		}
		if is.OrderPrev == 0 {
			return errors.New("an issuance's acme order needs the version it expects")
		}
	}
	return nil
}

// CheckACMEAccount checks an ACME account before it is stored.
func CheckACMEAccount(a *ACMEAccount) error {
	if err := errors.Join(CheckID("acme account id", a.ID), CheckID("acme thumbprint", a.Thumbprint)); err != nil {
		return err
	}
	switch {
	case len(a.JWK) == 0:
		return errors.New("acme account jwk is empty")
	case len(a.JWK) > MaxJWKLen:
		return fmt.Errorf("acme account jwk longer than %d bytes", MaxJWKLen)
	case !json.Valid(a.JWK):
		return errors.New("acme account jwk is not JSON")
	case a.Status == "":
		return errors.New("acme account status is empty")
	}
	return nil
}
