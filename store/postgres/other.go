package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// PutAttestation creates or replaces a and points its key hash at it.
func (s *Store) PutAttestation(ctx context.Context, a *store.Attestation) error {
	if a == nil {
		return errors.New("store/postgres: put attestation: nil attestation")
	}
	if err := store.CheckAttestation(a); err != nil {
		return fmt.Errorf("store/postgres: put attestation: %w", err)
	}
	c := *a
	c.V = store.RecordVersion
	if err := s.changing(ctx, "put attestation", nil, func(tx pgx.Tx) (*store.Change, error) {
		if err := putAttestationTx(ctx, tx, &c); err != nil {
			return nil, err
		}
		return &store.Change{Kind: store.ChangeAttestation, DeviceID: c.DeviceID, Attestation: attestationCopy(&c), At: s.now()}, nil
	}); err != nil {
		return err
	}
	*a = c
	return nil
}

func putAttestationTx(ctx context.Context, tx pgx.Tx, a *store.Attestation) error {
	b, err := encode(a)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO attestations (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = excluded.rec", a.ID, b); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO attestation_keys (key_sha256, attestation_id) VALUES ($1, $2)
		ON CONFLICT (key_sha256) DO UPDATE SET attestation_id = excluded.attestation_id`, a.KeySHA256.String(), a.ID)
	return err
}

// GetAttestation returns the attestation or an error wrapping store.ErrNotFound.
func (s *Store) GetAttestation(ctx context.Context, id string) (*store.Attestation, error) {
	return getOne[store.Attestation](ctx, s, "get attestation", "SELECT rec FROM attestations WHERE id = $1", id)
}

// FindAttestationByKey returns the latest attestation recorded for a key.
func (s *Store) FindAttestationByKey(ctx context.Context, key store.Hash) (*store.Attestation, error) {
	return getOne[store.Attestation](ctx, s, "find attestation by key",
		"SELECT a.rec FROM attestation_keys k JOIN attestations a ON a.id = k.attestation_id WHERE k.key_sha256 = $1", key.String())
}

// getOne reads the single JSON column of one row into a new T.
func getOne[T any](ctx context.Context, s *Store, op, sql string, args ...any) (*T, error) {
	var v *T
	err := s.read(ctx, op, func(q querier) error {
		var b []byte
		if err := q.QueryRow(ctx, sql, args...).Scan(&b); err != nil {
			return notFound(err)
		}
		v = new(T)
		return decodeInto(b, v)
	})
	return v, err
}

// PutChallenge stores a new challenge. It never overwrites
// (store.ErrExists): re-putting a consumed challenge would make it
// redeemable again. Expired challenges are deleted an hour after expiry
// (prune); until then redemption fails with store.ErrExpired.
func (s *Store) PutChallenge(ctx context.Context, c *store.Challenge) error {
	if c == nil {
		return errors.New("store/postgres: put challenge: nil challenge")
	}
	if c.SHA256.IsZero() || c.ExpiresAt.IsZero() {
		return errors.New("store/postgres: put challenge: sha256 and expires_at are required")
	}
	if !c.ConsumedAt.IsZero() {
		return errors.New("store/postgres: put challenge: already consumed")
	}
	v := *c
	v.V = store.RecordVersion
	if v.CreatedAt.IsZero() {
		v.CreatedAt = s.now()
	}
	b, err := encode(&v)
	if err != nil {
		return fmt.Errorf("store/postgres: put challenge: %w", err)
	}
	if err := s.tx(ctx, "put challenge", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO challenges (sha256, expires_at, rec) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			v.SHA256.String(), v.ExpiresAt, b)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: challenge", store.ErrExists)
		}
		return nil
	}); err != nil {
		return err
	}
	*c = v
	return nil
}

// GetChallenge returns the challenge as stored (consumed or not).
func (s *Store) GetChallenge(ctx context.Context, sha store.Hash) (*store.Challenge, error) {
	return getOne[store.Challenge](ctx, s, "get challenge", "SELECT rec FROM challenges WHERE sha256 = $1", sha.String())
}

// ConsumeChallenge marks the challenge consumed at now, exactly once: the
// row lock makes concurrent redemptions (on any node) wait for the first,
// which they then see consumed.
func (s *Store) ConsumeChallenge(ctx context.Context, sha store.Hash, now time.Time) (*store.Challenge, error) {
	var out *store.Challenge
	if err := s.tx(ctx, "consume challenge", func(tx pgx.Tx) error {
		var err error
		out, err = consumeTx(ctx, tx, sha, now, "", store.Hash{}, false)
		return err
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// consumeTx checks and consumes a challenge inside tx. With bind, a
// challenge bound to a device or key must match deviceID / key.
func consumeTx(ctx context.Context, tx pgx.Tx, sha store.Hash, now time.Time, deviceID string, key store.Hash, bind bool) (*store.Challenge, error) {
	var b []byte
	if err := tx.QueryRow(ctx, "SELECT rec FROM challenges WHERE sha256 = $1 FOR UPDATE", sha.String()).Scan(&b); err != nil {
		return nil, fmt.Errorf("challenge: %w", notFound(err))
	}
	c := new(store.Challenge)
	if err := decodeInto(b, c); err != nil {
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
	nb, err := encode(c)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "UPDATE challenges SET rec = $2 WHERE sha256 = $1", sha.String(), nb); err != nil {
		return nil, err
	}
	return c, nil
}

// PutSession creates or replaces a session.
func (s *Store) PutSession(ctx context.Context, sess *store.Session) error {
	if sess == nil {
		return errors.New("store/postgres: put session: nil session")
	}
	if err := errors.Join(store.CheckID("nas", sess.NAS), store.CheckID("acct session id", sess.AcctSessionID)); err != nil {
		return fmt.Errorf("store/postgres: put session: %w", err)
	}
	if sess.DeviceID != "" {
		if err := store.CheckID("device id", sess.DeviceID); err != nil {
			return fmt.Errorf("store/postgres: put session: %w", err)
		}
	}
	v := *sess
	v.V = store.RecordVersion
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = s.now()
	}
	b, err := encode(&v)
	if err != nil {
		return fmt.Errorf("store/postgres: put session: %w", err)
	}
	if err := s.tx(ctx, "put session", func(tx pgx.Tx) error {
		return writeSessionTx(ctx, tx, &v, b)
	}); err != nil {
		return err
	}
	*sess = v
	return nil
}

func writeSessionTx(ctx context.Context, tx pgx.Tx, v *store.Session, rec []byte) error {
	var dev *string
	if v.DeviceID != "" {
		dev = &v.DeviceID
	}
	_, err := tx.Exec(ctx, `INSERT INTO sessions (nas, acct_session_id, device_id, live, rec) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (nas, acct_session_id) DO UPDATE SET device_id = excluded.device_id, live = excluded.live, rec = excluded.rec`,
		v.NAS, v.AcctSessionID, dev, v.Live(), rec)
	return err
}

// GetSession returns one session or an error wrapping store.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, nas, acctSessionID string) (*store.Session, error) {
	return getOne[store.Session](ctx, s, "get session", "SELECT rec FROM sessions WHERE nas = $1 AND acct_session_id = $2", nas, acctSessionID)
}

// sessionCursor is the opaque page cursor of ListSessions: base64url of
// the NAS name and session id joined by NUL, as the Badger backend's.
func sessionCursor(nas, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(nas + "\x00" + id))
}

// ListSessions lists sessions in (NAS, Acct-Session-Id) order, all of them
// or one device's.
func (s *Store) ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error) {
	after, err := base64.RawURLEncoding.DecodeString(p.After)
	if err != nil {
		return nil, "", fmt.Errorf("store/postgres: list sessions: bad cursor: %w", err)
	}
	afterNAS, afterID, _ := strings.Cut(string(after), "\x00")
	n := limit(p)
	var out []*store.Session
	err = s.read(ctx, "list sessions", func(q querier) error {
		// As in ListCerts: one statement per shape, so each has its index.
		sql := `SELECT rec FROM sessions WHERE (nas, acct_session_id) > ($1, $2) AND (NOT $3 OR live)
			ORDER BY nas, acct_session_id LIMIT $4`
		args := []any{afterNAS, afterID, liveOnly, n + 1}
		if deviceID != "" {
			sql = `SELECT rec FROM sessions WHERE device_id = $5 AND (nas, acct_session_id) > ($1, $2) AND (NOT $3 OR live)
				ORDER BY nas, acct_session_id LIMIT $4`
			args = append(args, deviceID)
		}
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = collectJSON[store.Session](rows)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = sessionCursor(out[n-1].NAS, out[n-1].AcctSessionID)
	}
	return out, next, nil
}

// closeBatch bounds the sessions closed per transaction.
const closeBatch = 256

// CloseNASSessions marks the live sessions in scope that started at or
// before at as stopped, a batch per transaction, in session id order. The
// scope's other fields are matched here with store.NASScope.Matches, the
// rule every backend shares.
func (s *Store) CloseNASSessions(ctx context.Context, scope store.NASScope, at time.Time, cause uint32) (int, error) {
	nas := scope.NAS
	if err := store.CheckID("nas", nas); err != nil {
		return 0, fmt.Errorf("store/postgres: close nas sessions: %w", err)
	}
	if at.IsZero() {
		return 0, errors.New("store/postgres: close nas sessions: zero stop time")
	}
	at = at.UTC()
	total := 0
	after := ""
	for {
		var (
			n, seen int
			last    string
		)
		err := s.tx(ctx, "close nas sessions", func(tx pgx.Tx) error {
			n, seen, last = 0, 0, after
			rows, err := tx.Query(ctx, `SELECT rec FROM sessions WHERE nas = $1 AND live AND acct_session_id > $2
				ORDER BY acct_session_id LIMIT $3 FOR UPDATE`, nas, after, closeBatch)
			if err != nil {
				return err
			}
			batch, err := collectJSON[store.Session](rows)
			if err != nil {
				return err
			}
			seen = len(batch)
			for _, sess := range batch {
				last = sess.AcctSessionID
				// Compared here, not in SQL: timestamptz keeps
				// microseconds, the record nanoseconds.
				if sess.StartedAt.After(at) || !scope.Matches(sess) {
					continue
				}
				sess.V = store.RecordVersion
				sess.StoppedAt, sess.UpdatedAt, sess.TerminateCause, sess.ClosedByOnOff = at, at, cause, true
				b, err := encode(sess)
				if err != nil {
					return err
				}
				if err := writeSessionTx(ctx, tx, sess, b); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if seen < closeBatch {
			return total, nil
		}
		after = last
	}
}

// PutACMEAccount creates or replaces an account by ID and points its
// thumbprint at it. A thumbprint held by another account fails with
// store.ErrExists (the unique index decides between concurrent creations,
// on any node).
func (s *Store) PutACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	if a == nil {
		return errors.New("store/postgres: put acme account: nil account")
	}
	if err := store.CheckACMEAccount(a); err != nil {
		return fmt.Errorf("store/postgres: put acme account: %w", err)
	}
	var out store.ACMEAccount
	err := s.tx(ctx, "put acme account", func(tx pgx.Tx) error {
		out = cloneACMEAccount(a)
		out.V = store.RecordVersion
		now := s.now()
		out.UpdatedAt = now
		var b []byte
		switch err := tx.QueryRow(ctx, "SELECT rec FROM acme_accounts WHERE id = $1 FOR UPDATE", a.ID).Scan(&b); {
		case err == nil:
			var old store.ACMEAccount
			if err := decodeInto(b, &old); err != nil {
				return err
			}
			if !old.CreatedAt.IsZero() {
				out.CreatedAt = old.CreatedAt
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if out.CreatedAt.IsZero() {
			out.CreatedAt = now
		}
		rec, err := encode(&out)
		if err != nil {
			return err
		}
		var owner string
		switch err := tx.QueryRow(ctx, "SELECT id FROM acme_accounts WHERE thumbprint = $1", out.Thumbprint).Scan(&owner); {
		case err == nil && owner != out.ID:
			return fmt.Errorf("%w: thumbprint belongs to acme account %q", store.ErrExists, owner)
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO acme_accounts (id, thumbprint, rec) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET thumbprint = excluded.thumbprint, rec = excluded.rec`, out.ID, out.Thumbprint, rec)
		if uniqueViolation(err) {
			return fmt.Errorf("%w: thumbprint held by another acme account", store.ErrExists)
		}
		return err
	})
	if err != nil {
		return err
	}
	*a = out
	return nil
}

// GetACMEAccount returns the account or an error wrapping store.ErrNotFound.
func (s *Store) GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error) {
	if err := store.CheckID("acme account id", id); err != nil {
		return nil, fmt.Errorf("store/postgres: get acme account: %w: %w", store.ErrNotFound, err)
	}
	return getOne[store.ACMEAccount](ctx, s, "get acme account", "SELECT rec FROM acme_accounts WHERE id = $1", id)
}

// FindACMEAccountByThumbprint returns the account holding the key with this
// RFC 7638 thumbprint.
func (s *Store) FindACMEAccountByThumbprint(ctx context.Context, tp string) (*store.ACMEAccount, error) {
	if err := store.CheckID("acme thumbprint", tp); err != nil {
		return nil, fmt.Errorf("store/postgres: find acme account: %w: %w", store.ErrNotFound, err)
	}
	return getOne[store.ACMEAccount](ctx, s, "find acme account by thumbprint", "SELECT rec FROM acme_accounts WHERE thumbprint = $1", tp)
}
