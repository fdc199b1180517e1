package store

import "context"

// Record is one record of a store, as Exporter streams it: exactly one
// field is set.
type Record struct {
	Device      *Device
	Attestation *Attestation
	Cert        *Cert // with its DER
	Session     *Session
	ACMEAccount *ACMEAccount
	Audit       *AuditEvent // Seq, PrevHash and Hash as stored
	Checkpoint  *AuditCheckpoint
	Cursor      *AuditCursor
}

// Exporter streams every durable record of a store, for moving a store to
// another backend (`hardbound store copy`). Records come in an order an
// Importer can write as they arrive: devices, attestations, certificates,
// sessions, ACME accounts, then the audit chain in sequence order, its
// checkpoints and the export cursors. One-time challenges and nonces are
// short-lived and not exported, nor are cached documents (Document), which
// their owners fetch again. A store implements it optionally.
type Exporter interface {
	Export(ctx context.Context, fn func(Record) error) error
}

// Importer loads an Exporter's records into an empty store (any record
// already there fails with ErrExists), keeping the audit chain's sequence
// numbers and hashes, so its checkpoints still verify. progress, if set,
// is called now and then with the records written so far. A store
// implements it optionally.
type Importer interface {
	Import(ctx context.Context, src Exporter, progress func(n int)) error
}
