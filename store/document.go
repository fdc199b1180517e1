package store

import (
	"fmt"
	"time"
)

// Document is a named document a component fetched from outside and keeps
// in the store, so that every node sharing the store has the same last good
// copy and a node that starts while the source is unreachable still has it
// (the Android attestation status list, enroll/attest/statuslist). The
// store does not read Body; Fetched is when the component read it from
// Source, which is how the component judges its age.
type Document struct {
	V       int       `json:"v"`
	Name    string    `json:"name"`
	Source  string    `json:"source,omitempty"`
	Body    []byte    `json:"body"`
	Fetched time.Time `json:"fetched"`
}

// MaxDocumentSize bounds Document.Body: the largest document a component
// caches (the Android status list parser's own limit) fits.
const MaxDocumentSize = 16 << 20

// MaxDocumentNameLen bounds Document.Name, a constant of the component
// that owns it.
const MaxDocumentNameLen = 64

// CheckDocument is the rule every backend applies before PutDocument
// writes.
func CheckDocument(d *Document) error {
	switch {
	case d == nil:
		return fmt.Errorf("%w: nil document", ErrInvalidID)
	case len(d.Name) > MaxDocumentNameLen:
		return fmt.Errorf("%w: document name longer than %d bytes", ErrInvalidID, MaxDocumentNameLen)
	case len(d.Body) == 0:
		return fmt.Errorf("store: document %q has an empty body", d.Name)
	case len(d.Body) > MaxDocumentSize:
		return fmt.Errorf("store: document %q is %d bytes, limit %d", d.Name, len(d.Body), MaxDocumentSize)
	case d.Fetched.IsZero():
		return fmt.Errorf("store: document %q has no fetch time", d.Name)
	case len(d.Source) > MaxIDLen:
		return fmt.Errorf("%w: document source longer than %d bytes", ErrInvalidID, MaxIDLen)
	}
	return CheckID("document name", d.Name)
}
