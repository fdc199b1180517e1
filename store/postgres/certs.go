package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// RecordIssuance writes everything one issuance produces in one
// transaction: the device (created, or merged: platform, profile and new
// aliases), the cert, the attestation, the consumed challenge and the
// audit event. Any failure (challenge consumed, expired or bound
// elsewhere, duplicate cert or serial, alias owned by another device)
// writes nothing.
func (s *Store) RecordIssuance(ctx context.Context, is store.Issuance) error {
	if err := store.CheckIssuance(is); err != nil {
		return fmt.Errorf("store/postgres: record issuance: %w", err)
	}
	var (
		devDone store.Device
		crtDone store.Cert
		attDone store.Attestation
		ordDone *store.ACMEOrder
	)
	err := s.changing(ctx, "record issuance", is.Audit, func(tx pgx.Tx) (*store.Change, error) {
		at := s.now()
		if is.Order != nil {
			// The order first: one that moved on since the caller read
			// it (another node's finalize) aborts the issuance.
			var err error
			if ordDone, err = s.updateOrderTx(ctx, tx, is.Order, is.OrderPrev); err != nil {
				return nil, err
			}
		}
		prev, err := s.issueTx(ctx, tx, is, at, &devDone, &crtDone, &attDone)
		if err != nil {
			return nil, err
		}
		ch := &store.Change{Kind: store.ChangeIssued, DeviceID: crtDone.DeviceID, CertSHA256: crtDone.SHA256,
			Device: deviceCopy(&devDone), Prev: prev, Cert: bindingCopy(&crtDone), Actor: actorOf(is.Audit), At: at}
		if is.Attestation != nil {
			ch.Attestation = attestationCopy(&attDone)
		}
		return ch, nil
	})
	if err != nil {
		return err
	}
	*is.Cert = crtDone
	if is.Device != nil {
		*is.Device = devDone
	}
	if is.Attestation != nil {
		*is.Attestation = attDone
	}
	if is.Order != nil {
		*is.Order = *ordDone
	}
	return nil
}

// issueTx writes one issuance in tx, filling what it stored, and returns
// the device as it was (nil when created).
func (s *Store) issueTx(ctx context.Context, tx pgx.Tx, is store.Issuance, now time.Time, devDone *store.Device, crtDone *store.Cert, attDone *store.Attestation) (*store.Device, error) {
	c := *is.Cert
	c.V = store.RecordVersion

	if is.Challenge != nil {
		if _, err := consumeTx(ctx, tx, *is.Challenge, now, c.DeviceID, c.KeySHA256, true); err != nil {
			return nil, err
		}
	}

	old, err := getDeviceTx(ctx, tx, c.DeviceID, true)
	var prev *store.Device
	switch {
	case err == nil:
		d := mergeDevice(old, is.Device)
		s.stampDevice(&d, old)
		if err := putDeviceTx(ctx, tx, &d, old); err != nil {
			return nil, err
		}
		*devDone = d
		prev = old
	case errors.Is(err, store.ErrNotFound) && is.Device != nil:
		d := cloneDevice(is.Device)
		s.stampDevice(&d, nil)
		if err := putDeviceTx(ctx, tx, &d, nil); err != nil {
			return nil, err
		}
		*devDone = d
	default:
		return nil, fmt.Errorf("device %q: %w", c.DeviceID, err)
	}

	if is.Attestation != nil {
		a := *is.Attestation
		a.V = store.RecordVersion
		if err := putAttestationTx(ctx, tx, &a); err != nil {
			return nil, err
		}
		*attDone = a
	}

	rec := c
	rec.DER = nil
	b, err := encode(&rec)
	if err != nil {
		return nil, err
	}
	var der []byte
	if len(c.DER) > 0 {
		der = c.DER
	}
	tag, err := tx.Exec(ctx, `INSERT INTO certs (sha256, serial, device_id, revoked, rec, der) VALUES ($1, $2, $3, false, $4, $5)
		ON CONFLICT DO NOTHING`, c.SHA256.String(), c.Serial, c.DeviceID, b, der)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		return nil, fmt.Errorf("%w: cert %s or serial %s", store.ErrExists, c.SHA256, c.Serial)
	}
	*crtDone = c
	return prev, nil
}

// mergeDevice applies an issuance's device facts to the stored device:
// platform and profile when given, aliases added or replaced. Status,
// posture and groups are the administrator's and MDM's, not enrollment's.
func mergeDevice(old, in *store.Device) store.Device {
	d := cloneDevice(old)
	if in == nil {
		return d
	}
	if in.Platform != "" {
		d.Platform = in.Platform
	}
	if in.Profile != "" {
		d.Profile = in.Profile
	}
	if len(in.Aliases) > 0 {
		if d.Aliases == nil {
			d.Aliases = make(map[string]string, len(in.Aliases))
		}
		maps.Copy(d.Aliases, in.Aliases)
	}
	return d
}

// GetCert returns the binding for a cert hash, with its DER.
func (s *Store) GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	return s.getCert(ctx, "get cert", "sha256 = $1", sha.String(), true)
}

// GetCertBinding is GetCert without the DER, which is not even read.
func (s *Store) GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	return s.getCert(ctx, "get cert binding", "sha256 = $1", sha.String(), false)
}

// GetCertBySerial looks a cert up by serial (hex; case, colons and leading
// zeros are ignored).
func (s *Store) GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error) {
	return s.getCert(ctx, "get cert by serial", "serial = $1", store.NormSerial(serial), true)
}

func (s *Store) getCert(ctx context.Context, op, where, arg string, withDER bool) (*store.Cert, error) {
	var c *store.Cert
	err := s.read(ctx, op, func(q querier) error {
		var err error
		c, err = getCertTx(ctx, q, where, arg, withDER, false)
		return err
	})
	return c, err
}

func getCertTx(ctx context.Context, q querier, where string, arg any, withDER, forUpdate bool) (*store.Cert, error) {
	cols := "rec, NULL::bytea"
	if withDER {
		cols = "rec, der"
	}
	sql := "SELECT " + cols + " FROM certs WHERE " + where
	if forUpdate {
		sql += " FOR UPDATE"
	}
	var b, der []byte
	if err := q.QueryRow(ctx, sql, arg).Scan(&b, &der); err != nil {
		return nil, notFound(err)
	}
	c := new(store.Cert)
	if err := decodeInto(b, c); err != nil {
		return nil, err
	}
	c.DER = der
	return c, nil
}

// ListCerts lists certs in hash order, all or one device's. The cursor is
// the last cert's hex hash.
func (s *Store) ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error) {
	n := limit(p)
	cols := "rec, der"
	if f.NoDER {
		cols = "rec, NULL::bytea"
	}
	var out []*store.Cert
	err := s.read(ctx, "list certs", func(q querier) error {
		// Two statements rather than one with "$2 = '' OR": a cached
		// generic plan of the latter may walk every cert for one device.
		sql := "SELECT " + cols + " FROM certs WHERE sha256 > $1 AND (NOT $2 OR revoked) ORDER BY sha256 LIMIT $3"
		args := []any{p.After, f.RevokedOnly, n + 1}
		if f.DeviceID != "" {
			sql = "SELECT " + cols + " FROM certs WHERE device_id = $4 AND sha256 > $1 AND (NOT $2 OR revoked) ORDER BY sha256 LIMIT $3"
			args = append(args, f.DeviceID)
		}
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = out[:0]
		for rows.Next() {
			var b, der []byte
			if err := rows.Scan(&b, &der); err != nil {
				return err
			}
			c := new(store.Cert)
			if err := decodeInto(b, c); err != nil {
				return err
			}
			c.DER = der
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = out[n-1].SHA256.String()
	}
	return out, next, nil
}

// writeCertTx rewrites a binding (not its DER, which never changes).
func writeCertTx(ctx context.Context, tx pgx.Tx, c *store.Cert) error {
	rec := *c
	rec.DER = nil
	b, err := encode(&rec)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "UPDATE certs SET rec = $2, revoked = $3 WHERE sha256 = $1", c.SHA256.String(), b, c.Revoked != nil)
	return err
}

// RevokeCert marks the cert revoked. An already revoked cert keeps its first
// revocation; ev (optional) is appended either way, since the attempt is an
// administrative action worth recording.
func (s *Store) RevokeCert(ctx context.Context, sha store.Hash, r store.Revocation, ev *store.AuditEvent) (*store.Cert, error) {
	var out *store.Cert
	err := s.changing(ctx, "revoke cert", ev, func(tx pgx.Tx) (*store.Change, error) {
		at := s.now()
		var err error
		if out, err = getCertTx(ctx, tx, "sha256 = $1", sha.String(), true, true); err != nil {
			return nil, err
		}
		if out.Revoked != nil {
			return nil, nil
		}
		out.Revoked = revocation(r, at)
		if err := writeCertTx(ctx, tx, out); err != nil {
			return nil, err
		}
		return &store.Change{Kind: store.ChangeCertRevoked, DeviceID: out.DeviceID, CertSHA256: out.SHA256,
			Cert: bindingCopy(out), Actor: revocationActor(ev, r), At: at}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeDevice marks the device revoked and revokes every cert of it that is
// not revoked yet, in one transaction. It returns all the device's certs.
func (s *Store) RevokeDevice(ctx context.Context, id string, r store.Revocation, ev *store.AuditEvent) (*store.Device, []*store.Cert, error) {
	var (
		dev   *store.Device
		certs []*store.Cert
	)
	err := s.changing(ctx, "revoke device", ev, func(tx pgx.Tx) (*store.Change, error) {
		at := s.now()
		certs = nil
		prev, err := getDeviceTx(ctx, tx, id, true)
		if err != nil {
			return nil, err
		}
		dev = deviceCopy(prev)
		rev := revocation(r, at)
		if dev.Status != store.DeviceRevoked {
			dev.Status = store.DeviceRevoked
			s.stampDevice(dev, prev)
			if err := writeDeviceTx(ctx, tx, dev); err != nil {
				return nil, err
			}
		}
		rows, err := tx.Query(ctx, "SELECT rec, der FROM certs WHERE device_id = $1 ORDER BY sha256 FOR UPDATE", id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var b, der []byte
			if err := rows.Scan(&b, &der); err != nil {
				rows.Close()
				return nil, err
			}
			c := new(store.Cert)
			if err := decodeInto(b, c); err != nil {
				rows.Close()
				return nil, err
			}
			c.DER = der
			certs = append(certs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		var newly []*store.Cert
		for _, c := range certs {
			if c.Revoked != nil {
				continue
			}
			c.Revoked = rev
			if err := writeCertTx(ctx, tx, c); err != nil {
				return nil, err
			}
			newly = append(newly, c)
		}
		if prev.Status == store.DeviceRevoked && len(newly) == 0 {
			return nil, nil
		}
		ch := &store.Change{Kind: store.ChangeDeviceRevoked, DeviceID: id, Device: deviceCopy(dev), Prev: prev,
			Certs: make([]*store.Cert, len(newly)), Actor: revocationActor(ev, r), At: at}
		for i, c := range newly {
			ch.Certs[i] = bindingCopy(c)
		}
		return ch, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return dev, certs, nil
}

// revocation is r with its time filled in (now) if unset.
func revocation(r store.Revocation, now time.Time) *store.Revocation {
	if r.At.IsZero() {
		r.At = now
	}
	return &r
}
