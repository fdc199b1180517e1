package postgres

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"hardbound/store"
)

// The record rules are store's (store/validate.go), shared with Badger: a
// record one backend accepts, the other accepts too, so `store copy` and a
// change of backend lose nothing.

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
