package radius

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"hardbound/eaptls"
	"hardbound/store"
)

// ticketKeyStore is where the nodes of one store share their ticket keys
// (store.Store satisfies it). The Server finds it on its Sessions store
// when Resumption.SharedKey is set.
type ticketKeyStore interface {
	GetTicketKeys(ctx context.Context) (*store.TicketKeys, error)
	PutTicketKeys(ctx context.Context, k *store.TicketKeys, prev uint64) error
}

// SharedKeyLen is the size of Resumption.SharedKey (AES-256).
const SharedKeyLen = 32

// sealAAD binds a sealed record to its purpose and format.
var sealAAD = []byte("hardbound/ticket-keys/v1")

// sealTicketKeys encrypts keys (newest first) with AES-256-GCM under kek,
// a random nonce first. The store never holds a usable ticket key.
func sealTicketKeys(kek []byte, keys [][32]byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, 0, 32*len(keys))
	for _, k := range keys {
		plain = append(plain, k[:]...)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, sealAAD), nil
}

// errSealed is wrapped by openTicketKeys' errors: another key-encryption
// key, or a damaged record.
var errSealed = errors.New("radius: shared ticket keys do not open")

func openTicketKeys(kek, sealed []byte) ([][32]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("%w: %d bytes", errSealed, len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], sealAAD)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSealed, err)
	}
	if len(plain) == 0 || len(plain)%32 != 0 {
		return nil, fmt.Errorf("%w: %d key bytes", errSealed, len(plain))
	}
	keys := make([][32]byte, len(plain)/32)
	for i := range keys {
		copy(keys[i][:], plain[32*i:])
	}
	return keys, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != SharedKeyLen {
		return nil, fmt.Errorf("radius: shared ticket key-encryption key of %d bytes, want %d", len(kek), SharedKeyLen)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sharedPoll is how often a node reads the shared keys: the window in
// which another node's rotation is not yet known here (its new tickets
// then get a full handshake on this node).
func sharedPoll(rotation time.Duration) time.Duration {
	if rotation <= 0 {
		return time.Minute
	}
	return min(max(rotation/16, 10*time.Second), time.Minute)
}

// syncTicketKeys keeps this node's ticket keys equal to the store's until
// ctx ends: it creates them if none exist, rotates them when they are
// older than KeyRotation (a compare-and-swap, so when several nodes try at
// once one wins and the others adopt its keys), and applies what it read.
func (s *Server) syncTicketKeys(ctx context.Context, st ticketKeyStore) {
	round := func() {
		s.tk.mu.Lock()
		defer s.tk.mu.Unlock()
		v, err := s.refreshSharedKeys(ctx, st, s.tk.applied)
		if err != nil {
			s.log.Error("shared ticket keys: keeping the current ones", "err", err)
			return
		}
		s.tk.applied = v
	}
	round()
	t := time.NewTicker(sharedPoll(s.cfg.Resumption.KeyRotation))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			round()
		}
	}
}

// refreshSharedKeys does one round of syncTicketKeys and returns the
// version now applied.
func (s *Server) refreshSharedKeys(ctx context.Context, st ticketKeyStore, applied uint64) (uint64, error) {
	kek := s.cfg.Resumption.SharedKey
	for range 3 {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		rec, err := st.GetTicketKeys(sctx)
		cancel()
		var keys [][32]byte
		var prev uint64
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return applied, err
		default:
			if keys, err = openTicketKeys(kek, rec.Sealed); err != nil {
				return applied, err
			}
			prev = rec.Version
		}
		now := s.now()
		due := rec == nil || (s.cfg.Resumption.KeyRotation > 0 && now.Sub(rec.Rotated) >= s.cfg.Resumption.KeyRotation)
		if !due {
			if rec.Version != applied {
				if err := s.eap.SetTicketKeys(keys); err != nil {
					return applied, err
				}
			}
			return rec.Version, nil
		}
		k, err := eaptls.NewTicketKey()
		if err != nil {
			return applied, err
		}
		next := [][32]byte{k}
		if len(keys) > 0 {
			next = append(next, keys[0]) // the previous key decrypts until the next rotation
		}
		sealed, err := sealTicketKeys(kek, next)
		if err != nil {
			return applied, err
		}
		out := &store.TicketKeys{Sealed: sealed, Rotated: now}
		sctx, cancel = context.WithTimeout(ctx, storeTimeout)
		err = st.PutTicketKeys(sctx, out, prev)
		cancel()
		if errors.Is(err, store.ErrConflict) {
			continue // another node rotated first: adopt its keys
		}
		if err != nil {
			return applied, err
		}
		if err := s.eap.SetTicketKeys(next); err != nil {
			return applied, err
		}
		s.log.Info("shared ticket keys rotated", "version", out.Version)
		return out.Version, nil
	}
	return applied, errors.New("radius: shared ticket keys: still conflicting after 3 attempts")
}

// replaceSharedKeys writes one fresh key as the store's whole set (no
// previous key: tickets under the old ones stop resuming on every node)
// and applies it here; the caller holds s.tk.mu. A concurrent rotation by
// another node loses to it or is retried over.
func (s *Server) replaceSharedKeys(ctx context.Context, st ticketKeyStore) (uint64, error) {
	kek := s.cfg.Resumption.SharedKey
	for range 3 {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		rec, err := st.GetTicketKeys(sctx)
		cancel()
		var prev uint64
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return 0, err
		default:
			prev = rec.Version
		}
		k, err := eaptls.NewTicketKey()
		if err != nil {
			return 0, err
		}
		sealed, err := sealTicketKeys(kek, [][32]byte{k})
		if err != nil {
			return 0, err
		}
		out := &store.TicketKeys{Sealed: sealed, Rotated: s.now()}
		sctx, cancel = context.WithTimeout(ctx, storeTimeout)
		err = st.PutTicketKeys(sctx, out, prev)
		cancel()
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if err := s.eap.SetTicketKeys([][32]byte{k}); err != nil {
			return 0, err
		}
		return out.Version, nil
	}
	return 0, errors.New("radius: shared ticket keys: still conflicting after 3 attempts")
}
