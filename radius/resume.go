package radius

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"hardbound/eaptls"
	"hardbound/posture"
)

// Resumption is how the server lets EAP-TLS sessions resume from tickets
// (docs/radius.md, "Resumption"). The ticket lifetime itself is the eaptls
// server's (eaptls.Resumption.MaxLifetime); with that at 0 nothing here
// has any effect.
type Resumption struct {
	// KeyRotation is how often a new ticket key is drawn. The previous key
	// still decrypts until the next rotation, so with KeyRotation at least
	// the ticket lifetime no ticket dies early, and no key protects
	// tickets for longer than twice KeyRotation. 0 never rotates.
	KeyRotation time.Duration
	// FullAfterChange refuses every ticket issued before the device's
	// standing last changed (posture.Service.StandingChangedSince): the
	// device presents its certificate again. Without it such a ticket
	// still resumes, and the full decision runs on it as on every
	// resumption.
	FullAfterChange bool
	// DisabledProfiles lists the profiles whose devices get no usable
	// ticket: every authentication of theirs is a full handshake.
	DisabledProfiles []string
	// SharedKey, when set (SharedKeyLen octets, the same on every node),
	// makes the nodes of one store share their ticket keys through it
	// (store.TicketKeys, sealed with this key), so a device resumes on any
	// node; KeyRotation then applies to the shared keys. The Sessions
	// store given to New must hold them (store.Store does).
	SharedKey []byte
}

// profileSource is a Decider that can name a profile's policy
// (posture.Service): the ticket of a device is capped by its profile's
// posture max age.
type profileSource interface {
	Profile(name string) *posture.Profile
}

// standingClock is a Decider that knows when a device's standing last
// changed (posture.Service), for Resumption.FullAfterChange.
type standingClock interface {
	StandingChangedSince(deviceID string, t time.Time) bool
}

// ticketPolicy is the TicketPolicy every session of the server gets. A
// ticket names the device; its lifetime is capped by the profile's
// posture max age (eaptls caps it by the configured maximum and the
// certificate's remaining life).
func (s *Server) ticketPolicy() eaptls.TicketPolicy[posture.Verdict] {
	profiles, _ := s.dec.(profileSource)
	disabled := slices.Clone(s.cfg.Resumption.DisabledProfiles)
	p := eaptls.TicketPolicy[posture.Verdict]{
		Issue: func(v posture.Verdict) (time.Duration, string) {
			if slices.Contains(disabled, v.Profile) {
				return 0, ""
			}
			life := time.Duration(1<<63 - 1)
			if profiles != nil {
				if pr := profiles.Profile(v.Profile); pr != nil && pr.MaxAge > 0 {
					life = pr.MaxAge
				}
			}
			return life, v.DeviceID
		},
	}
	if clock, ok := s.dec.(standingClock); ok && s.cfg.Resumption.FullAfterChange {
		p.Accept = func(t eaptls.Ticket) bool {
			return t.Subject != "" && !clock.StandingChangedSince(t.Subject, t.Authenticated)
		}
	}
	return p
}

// ticketKeys is this node's view of its ticket keys, shared by the
// rotation loop and RotateTicketKeys: mu orders their changes, so a drop
// is never undone by a rotation that read the keys before it.
type ticketKeys struct {
	mu sync.Mutex
	// cur encrypts new tickets (when have): the previous key a scheduled
	// local rotation keeps for decryption.
	cur  [32]byte
	have bool
	// applied is the version of the shared record in use (SharedKey).
	applied uint64
}

// KeyRotation is what RotateTicketKeys did: Shared when the keys are the
// store's (every node adopts Version within sharedPoll), else this node's
// alone.
type KeyRotation struct {
	Shared  bool
	Version uint64
}

// ErrNoResumption is returned by RotateTicketKeys when this server issues
// no tickets (resumption off).
var ErrNoResumption = errors.New("radius: EAP-TLS resumption is off: there are no ticket keys")

// rotateTicketKeys draws a new ticket key every KeyRotation, keeping the
// previous one for decryption, until ctx ends. The keys never leave
// memory and are never logged.
func (s *Server) rotateTicketKeys(ctx context.Context) {
	if s.eap == nil {
		return
	}
	if len(s.cfg.Resumption.SharedKey) > 0 {
		st, _ := s.sessions.(ticketKeyStore) // checked by New
		s.syncTicketKeys(ctx, st)
		return
	}
	every := s.cfg.Resumption.KeyRotation
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.newLocalKey(true); err != nil {
			s.log.Error("ticket key rotation failed; the current key stays", "err", err)
			continue
		}
		s.log.Debug("ticket key rotated")
	}
}

// newLocalKey makes a fresh key the one that encrypts, keeping the current
// one for decryption if keepPrev.
func (s *Server) newLocalKey(keepPrev bool) error {
	s.tk.mu.Lock()
	defer s.tk.mu.Unlock()
	k, err := eaptls.NewTicketKey()
	if err != nil {
		return err
	}
	keys := [][32]byte{k}
	if keepPrev && s.tk.have {
		keys = append(keys, s.tk.cur)
	}
	if err := s.eap.SetTicketKeys(keys); err != nil {
		return err
	}
	s.tk.cur, s.tk.have = k, true
	return nil
}

// RotateTicketKeys replaces the ticket keys now with a fresh one and keeps
// none of the old: every ticket out there stops resuming and each device's
// next authentication is a full handshake (after a suspected key
// exposure, or to make a policy change reach every device at once). With
// Resumption.SharedKey the new key goes through the store, so every node
// follows at its next read (sharedPoll); this node uses it at once.
func (s *Server) RotateTicketKeys(ctx context.Context) (KeyRotation, error) {
	if s.eap == nil || !s.eap.ResumptionEnabled() {
		return KeyRotation{}, ErrNoResumption
	}
	if len(s.cfg.Resumption.SharedKey) == 0 {
		if err := s.newLocalKey(false); err != nil {
			return KeyRotation{}, err
		}
		s.log.Info("ticket keys replaced; every device's next authentication is a full handshake")
		return KeyRotation{}, nil
	}
	st, _ := s.sessions.(ticketKeyStore) // checked by New
	s.tk.mu.Lock()
	defer s.tk.mu.Unlock()
	v, err := s.replaceSharedKeys(ctx, st)
	if err != nil {
		return KeyRotation{}, err
	}
	s.tk.applied = v
	s.log.Info("shared ticket keys replaced; every device's next authentication is a full handshake", "version", v)
	return KeyRotation{Shared: true, Version: v}, nil
}

// DropTickets is RotateTicketKeys on this node's keys alone.
func (s *Server) DropTickets() error {
	if s.eap == nil {
		return nil
	}
	return s.newLocalKey(false)
}
