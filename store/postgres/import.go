package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

var _ store.Importer = (*Store)(nil)

// importBatch is how many records Import sends to the server in one round
// trip.
const importBatch = 500

// Import implements store.Importer in one transaction: all of src is in,
// or nothing is. Rows are written as they are (devices, bindings with
// their DER, audit events with their sequence numbers and hashes), not
// through the write paths that stamp times, link the chain or announce
// changes; every node is told with one store.ChangeReset, as after
// Restore. The audit head is moved to the last imported event, so the
// next append links after it.
func (s *Store) Import(ctx context.Context, src store.Exporter, progress func(n int)) error {
	ran := false
	return s.changing(ctx, "import", nil, func(tx pgx.Tx) (*store.Change, error) {
		if ran {
			return nil, errors.New("import interrupted by a conflicting transaction; retry it on an idle store")
		}
		ran = true
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT (EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM certs)
			OR EXISTS (SELECT 1 FROM attestations) OR EXISTS (SELECT 1 FROM challenges) OR EXISTS (SELECT 1 FROM sessions)
			OR EXISTS (SELECT 1 FROM acme_accounts) OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM audit_checkpoints))`).Scan(&empty); err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: store is not empty", store.ErrExists)
		}
		im := importer{ctx: ctx, tx: tx, progress: progress}
		if err := src.Export(ctx, im.add); err != nil {
			return nil, err
		}
		if err := im.flush(); err != nil {
			return nil, err
		}
		if im.lastSeq > 0 {
			if _, err := tx.Exec(ctx, "UPDATE audit_head SET seq = $1, hash = $2", int64(im.lastSeq), im.lastHash.String()); err != nil {
				return nil, fmt.Errorf("move audit head: %w", err)
			}
		}
		return &store.Change{Kind: store.ChangeReset, At: s.now()}, nil
	})
}

// importer queues a transaction's statements and sends them in batches.
type importer struct {
	ctx      context.Context
	tx       pgx.Tx
	batch    pgx.Batch
	n        int
	progress func(int)
	lastSeq  uint64
	lastHash store.Hash
}

func (im *importer) add(r store.Record) error {
	q := func(sql string, args ...any) { im.batch.Queue(sql, args...) }
	switch {
	case r.Device != nil:
		d := r.Device
		b, err := encode(d)
		if err != nil {
			return err
		}
		q(`INSERT INTO devices (id, status, compliance, profile, rec) VALUES ($1, $2, $3, $4, $5)`,
			d.ID, string(d.Status), string(d.Posture.State), d.Profile, b)
		for kind, value := range d.Aliases {
			q(`INSERT INTO aliases (kind, value, device_id) VALUES ($1, $2, $3)`, kind, value, d.ID)
		}
	case r.Attestation != nil:
		a := r.Attestation
		b, err := encode(a)
		if err != nil {
			return err
		}
		q("INSERT INTO attestations (id, rec) VALUES ($1, $2)", a.ID, b)
		q(`INSERT INTO attestation_keys (key_sha256, attestation_id) VALUES ($1, $2)
			ON CONFLICT (key_sha256) DO UPDATE SET attestation_id = excluded.attestation_id`, a.KeySHA256.String(), a.ID)
	case r.Cert != nil:
		c := *r.Cert
		der := c.DER
		c.DER = nil
		b, err := encode(&c)
		if err != nil {
			return err
		}
		if len(der) == 0 {
			der = nil
		}
		q(`INSERT INTO certs (sha256, serial, device_id, revoked, rec, der) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.SHA256.String(), c.Serial, c.DeviceID, c.Revoked != nil, b, der)
	case r.Session != nil:
		v := r.Session
		b, err := encode(v)
		if err != nil {
			return err
		}
		var dev *string
		if v.DeviceID != "" {
			dev = &v.DeviceID
		}
		q(`INSERT INTO sessions (nas, acct_session_id, device_id, live, rec) VALUES ($1, $2, $3, $4, $5)`,
			v.NAS, v.AcctSessionID, dev, v.Live(), b)
	case r.ACMEAccount != nil:
		a := r.ACMEAccount
		b, err := encode(a)
		if err != nil {
			return err
		}
		q(`INSERT INTO acme_accounts (id, thumbprint, rec) VALUES ($1, $2, $3)`, a.ID, a.Thumbprint, b)
	case r.Audit != nil:
		e := r.Audit
		if e.Seq != im.lastSeq+1 || e.PrevHash != im.lastHash {
			return fmt.Errorf("import: audit event %d does not link after event %d", e.Seq, im.lastSeq)
		}
		b, err := encode(e)
		if err != nil {
			return err
		}
		q("INSERT INTO audit (seq, rec) VALUES ($1, $2::json)", int64(e.Seq), string(b))
		im.lastSeq, im.lastHash = e.Seq, e.Hash
	case r.Checkpoint != nil:
		b, err := encode(r.Checkpoint)
		if err != nil {
			return err
		}
		q("INSERT INTO audit_checkpoints (seq, rec) VALUES ($1, $2)", int64(r.Checkpoint.Seq), b)
	case r.Cursor != nil:
		b, err := encode(r.Cursor)
		if err != nil {
			return err
		}
		q("INSERT INTO audit_cursors (sink, rec) VALUES ($1, $2)", r.Cursor.Sink, b)
	default:
		return errors.New("empty record")
	}
	im.n++
	if im.batch.Len() >= importBatch {
		return im.flush()
	}
	return nil
}

func (im *importer) flush() error {
	if im.batch.Len() == 0 {
		return nil
	}
	err := im.tx.SendBatch(im.ctx, &im.batch).Close()
	im.batch = pgx.Batch{}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if im.progress != nil {
		im.progress(im.n)
	}
	return nil
}
