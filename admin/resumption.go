package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"hardbound/radius"
	"hardbound/store"
)

// TicketKeys replaces the EAP-TLS resumption ticket keys (*radius.Server):
// on a shared-key setup through the store, so every node follows.
type TicketKeys interface {
	RotateTicketKeys(ctx context.Context) (radius.KeyRotation, error)
}

// errNoTicketKeys marks a rotation asked of a server without RADIUS or
// without resumption: a 409, not a 500.
var errNoTicketKeys = errors.New("admin: no resumption ticket keys")

// TicketKeysResponse is POST /api/v1/resumption/rotate-keys: the old keys
// are gone, so every device's next authentication is a full handshake.
// Shared says the new key went through the store (Version is its record's
// version; the other nodes adopt it at their next read, within a minute).
type TicketKeysResponse struct {
	Rotated bool   `json:"rotated"`
	Shared  bool   `json:"shared"`
	Version uint64 `json:"version,omitempty"`
}

func (s *Server) rotateTicketKeys(w http.ResponseWriter, r *http.Request) {
	const action, subject = "resumption.rotate_keys", "ticket_keys"
	err := errNoTicketKeys
	var rot radius.KeyRotation
	if s.deps.TicketKeys != nil {
		rot, err = s.deps.TicketKeys.RotateTicketKeys(r.Context())
	}
	if errors.Is(err, radius.ErrNoResumption) || errors.Is(err, errNoTicketKeys) {
		s.refuse(w, r, action, subject, fmt.Errorf("%w: %w", errNoTicketKeys, err))
		return
	}
	if err != nil {
		s.refuse(w, r, action, subject, err)
		return
	}
	// The keys are never in the event: only that they were replaced.
	reason := "local"
	if rot.Shared {
		reason = fmt.Sprintf("shared version %d", rot.Version)
	}
	s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Subject: subject,
		Result: "ok", Reason: reason, Source: r.RemoteAddr})
	writeJSON(w, http.StatusOK, TicketKeysResponse{Rotated: true, Shared: rot.Shared, Version: rot.Version})
}
