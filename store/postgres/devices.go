package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// PutDevice creates or replaces d, keeping CreatedAt of an existing record
// and maintaining the alias index. An alias owned by another device fails
// with store.ErrExists: the store never moves an MDM identity silently.
func (s *Store) PutDevice(ctx context.Context, d *store.Device) error {
	if d == nil {
		return errors.New("store/postgres: put device: nil device")
	}
	if err := store.CheckDevice(d); err != nil {
		return fmt.Errorf("store/postgres: put device: %w", err)
	}
	var out store.Device
	err := s.changing(ctx, "put device", nil, func(tx pgx.Tx) (*store.Change, error) {
		prev, err := getDeviceTx(ctx, tx, d.ID, true)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		out = cloneDevice(d)
		s.stampDevice(&out, prev)
		if err := putDeviceTx(ctx, tx, &out, prev); err != nil {
			return nil, err
		}
		return &store.Change{Kind: store.ChangeDevice, DeviceID: out.ID, Device: deviceCopy(&out), Prev: prev, At: out.UpdatedAt}, nil
	})
	if err != nil {
		return err
	}
	*d = out
	return nil
}

// GetDevice returns the device or an error wrapping store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	var d *store.Device
	err := s.read(ctx, "get device", func(q querier) error {
		var err error
		d, err = getDeviceTx(ctx, q, id, false)
		return err
	})
	return d, err
}

// getDeviceTx reads one device, locking its row when forUpdate.
func getDeviceTx(ctx context.Context, q querier, id string, forUpdate bool) (*store.Device, error) {
	sql := "SELECT rec FROM devices WHERE id = $1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	var b []byte
	if err := q.QueryRow(ctx, sql, id).Scan(&b); err != nil {
		return nil, notFound(err)
	}
	d := new(store.Device)
	return d, decodeInto(b, d)
}

// UpdateDevice reads the device, applies fn to a copy and writes it back in
// one transaction together with ev. fn runs again if the transaction is
// retried, so it must only modify the device it is given; it must not
// change the ID, and must not call back into the store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, ev *store.AuditEvent) (*store.Device, error) {
	if fn == nil {
		return nil, errors.New("store/postgres: update device: nil fn")
	}
	var out store.Device
	err := s.changing(ctx, "update device", ev, func(tx pgx.Tx) (*store.Change, error) {
		old, err := getDeviceTx(ctx, tx, id, true)
		if err != nil {
			return nil, err
		}
		out = cloneDevice(old)
		if err := fn(&out); err != nil {
			return nil, err
		}
		if out.ID != old.ID {
			return nil, fmt.Errorf("%w: fn changed device id", store.ErrInvalidID)
		}
		if err := store.CheckDevice(&out); err != nil {
			return nil, err
		}
		s.stampDevice(&out, old)
		if err := putDeviceTx(ctx, tx, &out, old); err != nil {
			return nil, err
		}
		return &store.Change{Kind: store.ChangeDevice, DeviceID: out.ID, Device: deviceCopy(&out), Prev: old,
			Actor: actorOf(ev), At: out.UpdatedAt}, nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDevices lists devices in id order. The cursor is the last device id.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error) {
	n := limit(p)
	var out []*store.Device
	err := s.read(ctx, "list devices", func(q querier) error {
		rows, err := q.Query(ctx, `SELECT rec FROM devices
			WHERE id > $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR compliance = $3) AND ($4 = '' OR profile = $4)
			ORDER BY id LIMIT $5`, p.After, string(f.Status), string(f.Compliance), f.Profile, n+1)
		if err != nil {
			return err
		}
		out, err = collectJSON[store.Device](rows)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = out[n-1].ID
	}
	return out, next, nil
}

// FindDeviceByAlias maps an MDM identity to its device.
func (s *Store) FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error) {
	var d *store.Device
	err := s.read(ctx, "find device by alias", func(q querier) error {
		var b []byte
		if err := q.QueryRow(ctx, `SELECT d.rec FROM aliases a JOIN devices d ON d.id = a.device_id
			WHERE a.kind = $1 AND a.value = $2`, kind, value).Scan(&b); err != nil {
			return notFound(err)
		}
		d = new(store.Device)
		return decodeInto(b, d)
	})
	return d, err
}

// stampDevice fills the fields the store owns: version, defaults and times.
func (s *Store) stampDevice(d, old *store.Device) {
	now := s.now()
	d.V = store.RecordVersion
	if d.Status == "" {
		d.Status = store.DeviceActive
	}
	if d.Posture.State == "" {
		d.Posture.State = store.ComplianceUnknown
	}
	if old != nil && !old.CreatedAt.IsZero() {
		d.CreatedAt = old.CreatedAt
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now
	}
	d.UpdatedAt = now
}

// putDeviceTx writes d and brings the alias index from old's aliases to d's.
func putDeviceTx(ctx context.Context, tx pgx.Tx, d, old *store.Device) error {
	if old != nil {
		for kind, value := range old.Aliases {
			if d.Aliases[kind] == value {
				continue
			}
			if _, err := tx.Exec(ctx, "DELETE FROM aliases WHERE kind = $1 AND value = $2 AND device_id = $3", kind, value, d.ID); err != nil {
				return err
			}
		}
	}
	for kind, value := range d.Aliases {
		if old != nil && old.Aliases[kind] == value {
			continue
		}
		var owner string
		err := tx.QueryRow(ctx, `INSERT INTO aliases (kind, value, device_id) VALUES ($1, $2, $3)
			ON CONFLICT (kind, value) DO UPDATE SET device_id = aliases.device_id
			RETURNING device_id`, kind, value, d.ID).Scan(&owner)
		if err != nil {
			return err
		}
		if owner != d.ID {
			return fmt.Errorf("%w: alias %s=%q belongs to device %q", store.ErrExists, kind, value, owner)
		}
	}
	return writeDeviceTx(ctx, tx, d)
}

// writeDeviceTx upserts the device row.
func writeDeviceTx(ctx context.Context, tx pgx.Tx, d *store.Device) error {
	b, err := encode(d)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO devices (id, status, compliance, profile, rec) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, compliance = excluded.compliance,
			profile = excluded.profile, rec = excluded.rec`,
		d.ID, string(d.Status), string(d.Posture.State), d.Profile, b)
	return err
}
