package store

import "time"

// ChangeKind says which kind of write a Change reports.
type ChangeKind uint8

const (
	// ChangeDevice: a device was created or rewritten (PutDevice,
	// UpdateDevice). Device is the record after, Prev before (nil when
	// created). Status, posture, aliases or only UpdatedAt may differ.
	ChangeDevice ChangeKind = iota + 1
	// ChangeIssued: a binding was created (RecordIssuance). Cert is the
	// new binding; Device is its device after the write (created or
	// merged), Prev before (nil when created); Attestation is set when
	// the issuance recorded one.
	ChangeIssued
	// ChangeCertRevoked: one binding was revoked that was not revoked
	// before (RevokeCert). Cert is the binding after.
	ChangeCertRevoked
	// ChangeDeviceRevoked: a device was revoked, or bindings of an already
	// revoked device were (RevokeDevice). Device is the record after, Prev
	// before: Prev.Status says whether the device itself changed. Certs
	// are the bindings this write revoked, and only those.
	ChangeDeviceRevoked
	// ChangeAttestation: an attestation was written (PutAttestation).
	ChangeAttestation
	// ChangeReset: changes may have been missed (Restore replaced the
	// contents, or a networked backend lost track of other nodes' writes).
	// Every cache of the store's records must be dropped. Only Seq and At
	// are set.
	ChangeReset
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeDevice:
		return "device"
	case ChangeIssued:
		return "issued"
	case ChangeCertRevoked:
		return "cert_revoked"
	case ChangeDeviceRevoked:
		return "device_revoked"
	case ChangeAttestation:
		return "attestation"
	case ChangeReset:
		return "reset"
	}
	return "unknown"
}

// Change is one committed write that changed a device, a binding or an
// attestation, as announced to Watch. The records are the store's own
// copies, shared by every watcher: read them, never modify them. Cert and
// Certs carry no DER.
type Change struct {
	// Seq increases from each change to the next that one Store
	// delivers. It orders changes; a gap means nothing (ChangeReset is
	// what says changes were missed).
	Seq         uint64
	Kind        ChangeKind
	DeviceID    string
	CertSHA256  Hash // ChangeIssued, ChangeCertRevoked
	Device      *Device
	Prev        *Device
	Cert        *Cert
	Certs       []*Cert // ChangeDeviceRevoked
	Attestation *Attestation
	// Actor is the audit event's actor when the write carried one, else a
	// revocation's actor; empty otherwise.
	Actor string
	// At is when the store made the change, by its clock.
	At time.Time
}

// Watcher is the change feed every Store implements.
type Watcher interface {
	// Watch calls fn with every change committed from now on, until stop
	// is called; stop returns once fn is no longer running and will not be
	// called again.
	//
	// fn is called after the change is committed and before the write
	// that made it returns to its caller, so a reader that invalidates a
	// cache in fn never serves the old value to anyone who saw the write
	// return. Changes reach fn one at a time, in commit order, with Seq
	// increasing. A failed or aborted write announces nothing, nor does a
	// write that leaves every device, binding and attestation as it was
	// (an already revoked cert revoked again) or touches none of them
	// (challenges, sessions, ACME accounts, audit events).
	//
	// fn runs while the store holds up its writers: it must be quick, may
	// read the store, and must not write to it, call Watch or call a stop
	// func. A networked backend calls fn the same way, from its own
	// goroutine, for changes committed by other processes, and announces
	// ChangeReset when it may have missed some.
	Watch(fn func(Change)) (stop func())
}
