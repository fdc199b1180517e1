package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"hardbound/store"
)

// The rules below are the ones the Badger backend enforces (store/badger
// keys.go, certs.go, acme.go): a record one backend accepts, the other
// accepts too, so `store copy` and a change of backend lose nothing.

// maxIDLen bounds every identifier.
const maxIDLen = 512

// maxJWKLen bounds a stored ACME account key: an RSA-4096 public JWK is
// under 1 KiB, so anything near this is not a key.
const maxJWKLen = 16 << 10

var errBadID = errors.New("store/postgres: invalid identifier")

// validID rejects empty, oversize and NUL-carrying identifiers (PostgreSQL
// text cannot hold NUL, and the Badger backend uses it as a separator).
func validID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", errBadID, what)
	case len(s) > maxIDLen:
		return fmt.Errorf("%w: %s longer than %d bytes", errBadID, what, maxIDLen)
	case strings.Contains(s, "\x00"):
		return fmt.Errorf("%w: %s contains NUL", errBadID, what)
	}
	return nil
}

func validDevice(d *store.Device) error {
	if err := validID("device id", d.ID); err != nil {
		return err
	}
	for k, v := range d.Aliases {
		if err := errors.Join(validID("alias kind", k), validID("alias value", v)); err != nil {
			return err
		}
	}
	return nil
}

// validSerial enforces the store.Cert contract: lower-case hex, no leading
// zeros, so one serial has exactly one spelling.
func validSerial(s string) error {
	if s == "" || len(s) > 42 || s[0] == '0' || strings.Trim(s, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: serial %q must be lower-case hex without leading zeros", errBadID, s)
	}
	return nil
}

// normSerial maps common spellings (upper case, colons, leading zeros) onto
// the stored form, for lookups typed by an operator.
func normSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return s
}

func validAttestation(a *store.Attestation) error {
	if err := validID("attestation id", a.ID); err != nil {
		return err
	}
	if a.KeySHA256.IsZero() {
		return errors.New("attestation key sha256 is zero")
	}
	return nil
}

func validIssuance(is store.Issuance) error {
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
	if err := validSerial(is.Cert.Serial); err != nil {
		return err
	}
	if is.Device != nil {
		if err := validDevice(is.Device); err != nil {
			return err
		}
	} else if err := validID("device id", is.Cert.DeviceID); err != nil {
		return err
	}
	if is.Attestation != nil {
		if err := validAttestation(is.Attestation); err != nil {
			return err
		}
	}
	return nil
}

func validACMEAccount(a *store.ACMEAccount) error {
	if err := errors.Join(validID("acme account id", a.ID), validID("acme thumbprint", a.Thumbprint)); err != nil {
		return err
	}
	switch {
	case len(a.JWK) == 0:
		return errors.New("acme account jwk is empty")
	case len(a.JWK) > maxJWKLen:
		return fmt.Errorf("acme account jwk longer than %d bytes", maxJWKLen)
	case !json.Valid(a.JWK):
		return errors.New("acme account jwk is not JSON")
	case a.Status == "":
		return errors.New("acme account status is empty")
	}
	return nil
}

// cloneDevice deep-copies the slices and maps so fn and callers can't alias
// the record being written.
func cloneDevice(d *store.Device) store.Device {
	c := *d
	c.Groups = slices.Clone(d.Groups)
	c.Aliases = maps.Clone(d.Aliases)
	return c
}

func deviceCopy(d *store.Device) *store.Device {
	c := cloneDevice(d)
	return &c
}

// bindingCopy is c without its DER.
func bindingCopy(c *store.Cert) *store.Cert {
	b := *c
	b.DER = nil
	if c.Revoked != nil {
		r := *c.Revoked
		b.Revoked = &r
	}
	return &b
}

func attestationCopy(a *store.Attestation) *store.Attestation {
	c := *a
	c.Facts = maps.Clone(a.Facts)
	return &c
}

func cloneACMEAccount(a *store.ACMEAccount) store.ACMEAccount {
	c := *a
	c.JWK = slices.Clone(a.JWK)
	c.Contact = slices.Clone(a.Contact)
	return c
}

// actorOf is the actor a Change reports for a write carrying ev.
func actorOf(ev *store.AuditEvent) string {
	if ev == nil {
		return ""
	}
	return ev.Actor
}

// revocationActor is the actor a Change reports for a revocation.
func revocationActor(ev *store.AuditEvent, r store.Revocation) string {
	if ev != nil {
		return ev.Actor
	}
	return r.Actor
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

func decodeInto(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
