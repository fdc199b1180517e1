package store

import "time"

// TicketKeys is the one record of the EAP-TLS session ticket keys that the
// hardbound nodes sharing a store use, so that a device resumes on any of
// them (docs/radius.md, "Resumption"). Sealed is opaque to the store: the
// keys encrypted by radius with a key-encryption key every node reads
// from its own file, so the store (and its backups) never hold a usable
// ticket key. Version orders the writes (PutTicketKeys is a
// compare-and-swap on it), so two nodes rotating at once cannot both win.
type TicketKeys struct {
	V       int       `json:"v"`
	Version uint64    `json:"version"`
	Sealed  []byte    `json:"sealed"`
	Rotated time.Time `json:"rotated"` // when the newest key was drawn
}
