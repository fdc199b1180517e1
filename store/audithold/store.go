package audithold

import (
	"context"

	"hardbound/store"
)

// Store is a store.Store whose AppendAudit and AppendAudits go through a
// Holder, for the components that take a whole store and also append
// events of their own outside a transaction: the admin API's and the
// console's refusals, and ACME's, SCEP's, EST's and the SCEP challenge
// minter's refusals and outcomes. Their requests are refused with 503
// while the database is away, but what they refused is a fact the chain
// must keep, after the events held before it.
//
// Every other method is the store's, unchanged: an event written in the
// same transaction as a change (an issuance, a revocation) still fails
// with its change. Only store.Store's methods are carried: code that
// looks for another interface on the store (posture.Availability, an
// Exporter) must be given the store itself.
type Store struct {
	store.Store
	h *Holder
}

// NewStore returns st with its audit appends through h (whose Appender is
// normally st itself).
func NewStore(st store.Store, h *Holder) *Store { return &Store{Store: st, h: h} }

// AppendAudit appends ev through the Holder (Holder.AppendAudits).
func (s *Store) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	return s.h.AppendAudit(ctx, ev)
}

// AppendAudits appends evs through the Holder (Holder.AppendAudits).
func (s *Store) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	return s.h.AppendAudits(ctx, evs)
}
