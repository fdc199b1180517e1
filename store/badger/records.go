package badger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// PutAttestation creates or replaces a and points its key hash at it.
func (s *Store) PutAttestation(ctx context.Context, a *store.Attestation) error {
	if a == nil {
		return errors.New("store/badger: put attestation: nil attestation")
	}
	if err := store.CheckAttestation(a); err != nil {
		return fmt.Errorf("store/badger: put attestation: %w", err)
	}
	c := *a
	c.V = store.RecordVersion
	if err := s.announcing(func() ([]store.Change, error) {
		if err := s.update(ctx, "put attestation", func(txn *bdb.Txn) error {
			return putAttestationTxn(txn, &c)
		}); err != nil {
			return nil, err
		}
		return []store.Change{{Kind: store.ChangeAttestation, DeviceID: c.DeviceID, Attestation: attestationCopy(&c), At: s.now()}}, nil
	}); err != nil {
		return err
	}
	*a = c
	return nil
}

func putAttestationTxn(txn *bdb.Txn, a *store.Attestation) error {
	if err := setJSON(txn, keyAttestation(a.ID), a); err != nil {
		return err
	}
	return setRef(txn, keyAttestationKey(a.KeySHA256), a.ID)
}

// GetAttestation returns the attestation or an error wrapping store.ErrNotFound.
func (s *Store) GetAttestation(ctx context.Context, id string) (*store.Attestation, error) {
	a := new(store.Attestation)
	if err := s.view(ctx, "get attestation", func(txn *bdb.Txn) error {
		return getJSON(txn, keyAttestation(id), a)
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// FindAttestationByKey returns the latest attestation recorded for a key.
func (s *Store) FindAttestationByKey(ctx context.Context, key store.Hash) (*store.Attestation, error) {
	a := new(store.Attestation)
	if err := s.view(ctx, "find attestation by key", func(txn *bdb.Txn) error {
		id, err := getRef(txn, keyAttestationKey(key))
		if err != nil {
			return err
		}
		return getJSON(txn, keyAttestation(id), a)
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// PutChallenge stores a new challenge with a Badger TTL until c.ExpiresAt.
// It never overwrites (store.ErrExists): re-putting a consumed challenge
// would make it redeemable again.
//
// The TTL is computed against the store clock and converted to wall time,
// rounded up to Badger's one-second resolution, so Badger never drops a
// challenge before the in-code ExpiresAt check would reject it. A challenge
// already past ExpiresAt is kept for a second and then disappears; until
// then redemption fails with store.ErrExpired.
func (s *Store) PutChallenge(ctx context.Context, c *store.Challenge) error {
	if c == nil {
		return errors.New("store/badger: put challenge: nil challenge")
	}
	if c.SHA256.IsZero() || c.ExpiresAt.IsZero() {
		return errors.New("store/badger: put challenge: sha256 and expires_at are required")
	}
	if !c.ConsumedAt.IsZero() {
		return errors.New("store/badger: put challenge: already consumed")
	}
	v := *c
	v.V = store.RecordVersion
	if v.CreatedAt.IsZero() {
		v.CreatedAt = s.now()
	}
	if err := s.update(ctx, "put challenge", func(txn *bdb.Txn) error {
		k := keyChallenge(v.SHA256)
		if ok, err := exists(txn, k); err != nil || ok {
			return errors.Join(err, fmt.Errorf("%w: challenge", store.ErrExists))
		}
		return setJSONExpiring(txn, k, &v, s.wallExpiry(v.ExpiresAt))
	}); err != nil {
		return err
	}
	*c = v
	return nil
}

// wallExpiry converts an expiry on the store clock into Badger's unix-second
// wall-clock ExpiresAt, rounded up, at least one second from now.
func (s *Store) wallExpiry(at time.Time) uint64 {
	ttl := max(at.Sub(s.clock()), 0)
	return uint64(time.Now().Add(ttl).Add(time.Second-1).Unix()) + 1
}

func setJSONExpiring(txn *bdb.Txn, k []byte, v any, expiresAt uint64) error {
	b, err := jsonMarshal(k, v)
	if err != nil {
		return err
	}
	e := bdb.NewEntry(k, b)
	e.ExpiresAt = expiresAt
	return txn.SetEntry(e)
}

// GetChallenge returns the challenge as stored (consumed or not); one past
// its Badger TTL is store.ErrNotFound.
func (s *Store) GetChallenge(ctx context.Context, sha store.Hash) (*store.Challenge, error) {
	c := new(store.Challenge)
	if err := s.view(ctx, "get challenge", func(txn *bdb.Txn) error {
		return getJSON(txn, keyChallenge(sha), c)
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// ConsumeChallenge marks the challenge consumed at now, exactly once: two
// concurrent redemptions both read it unconsumed, but Badger's conflict
// detection aborts the second commit, whose retry then sees ErrConsumed.
func (s *Store) ConsumeChallenge(ctx context.Context, sha store.Hash, now time.Time) (*store.Challenge, error) {
	var out *store.Challenge
	if err := s.update(ctx, "consume challenge", func(txn *bdb.Txn) error {
		var err error
		out, err = consumeTxn(txn, sha, now, "", store.Hash{}, false)
		return err
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// consumeTxn checks and consumes a challenge inside txn. With bind, a
// challenge bound to a device or key must match deviceID / key.
func consumeTxn(txn *bdb.Txn, sha store.Hash, now time.Time, deviceID string, key store.Hash, bind bool) (*store.Challenge, error) {
	k := keyChallenge(sha)
	item, err := txn.Get(k)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return nil, fmt.Errorf("challenge: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c := new(store.Challenge)
	if err := item.Value(func(b []byte) error { return decode(k, b, c) }); err != nil {
		return nil, err
	}
	switch {
	case !c.ConsumedAt.IsZero():
		return nil, store.ErrConsumed
	case !now.Before(c.ExpiresAt):
		return nil, store.ErrExpired
	case bind && c.DeviceID != "" && c.DeviceID != deviceID:
		return nil, fmt.Errorf("%w: device", store.ErrMismatch)
	case bind && !c.KeySHA256.IsZero() && c.KeySHA256 != key:
		return nil, fmt.Errorf("%w: key", store.ErrMismatch)
	}
	c.ConsumedAt = now.UTC()
	// Keep the original expiry: the consumed record must outlive any
	// redemption attempt so replays see ErrConsumed, then it may vanish.
	if err := setJSONExpiring(txn, k, c, item.ExpiresAt()); err != nil {
		return nil, err
	}
	return c, nil
}

// PutSession creates or replaces a session and keeps the device index in
// step when the session's device changes.
func (s *Store) PutSession(ctx context.Context, sess *store.Session) error {
	if sess == nil {
		return errors.New("store/badger: put session: nil session")
	}
	if err := errors.Join(store.CheckID("nas", sess.NAS), store.CheckID("acct session id", sess.AcctSessionID)); err != nil {
		return fmt.Errorf("store/badger: put session: %w", err)
	}
	if sess.DeviceID != "" {
		if err := store.CheckID("device id", sess.DeviceID); err != nil {
			return fmt.Errorf("store/badger: put session: %w", err)
		}
	}
	v := *sess
	v.V = store.RecordVersion
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = s.now()
	}
	if err := s.update(ctx, "put session", func(txn *bdb.Txn) error {
		k := keySession(v.NAS, v.AcctSessionID)
		var old store.Session
		switch err := getJSON(txn, k, &old); {
		case err == nil:
			if old.DeviceID != "" && old.DeviceID != v.DeviceID {
				if err := txn.Delete(keyDeviceSession(old.DeviceID, v.NAS, v.AcctSessionID)); err != nil {
					return err
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if v.DeviceID != "" {
			if err := txn.Set(keyDeviceSession(v.DeviceID, v.NAS, v.AcctSessionID), nil); err != nil {
				return err
			}
		}
		return setJSON(txn, k, &v)
	}); err != nil {
		return err
	}
	*sess = v
	return nil
}

// GetSession returns one session or an error wrapping store.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, nas, acctSessionID string) (*store.Session, error) {
	sess := new(store.Session)
	if err := s.view(ctx, "get session", func(txn *bdb.Txn) error {
		return getJSON(txn, keySession(nas, acctSessionID), sess)
	}); err != nil {
		return nil, err
	}
	return sess, nil
}

// ListSessions lists sessions in (NAS, Acct-Session-Id) order, all of them
// or one device's through the index. The cursor is opaque (base64url of the
// NAS and session id).
func (s *Store) ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error) {
	after, err := base64.RawURLEncoding.DecodeString(p.After)
	if err != nil {
		return nil, "", fmt.Errorf("store/badger: list sessions: bad cursor: %w", err)
	}
	var (
		out  []*store.Session
		next string
	)
	err = s.view(ctx, "list sessions", func(txn *bdb.Txn) error {
		var err error
		if deviceID == "" {
			out, next, err = scanPage(txn, []byte(pfxSession), string(after), limit(p), func(item *bdb.Item) (*store.Session, bool, error) {
				sess := new(store.Session)
				if err := item.Value(func(b []byte) error { return decode(item.Key(), b, sess) }); err != nil {
					return nil, false, err
				}
				return sess, !liveOnly || sess.Live(), nil
			})
			return err
		}
		prefix := keyDeviceSessionPrefix(deviceID)
		out, next, err = scanPage(txn, prefix, string(after), limit(p), func(item *bdb.Item) (*store.Session, bool, error) {
			sess := new(store.Session)
			// The index suffix is exactly the session key's suffix.
			k := append([]byte(pfxSession), item.Key()[len(prefix):]...)
			if err := getJSON(txn, k, sess); err != nil {
				return nil, false, fmt.Errorf("device index -> session: %w", err)
			}
			return sess, !liveOnly || sess.Live(), nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if next != "" {
		next = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return out, next, nil
}
