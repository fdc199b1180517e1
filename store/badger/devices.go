package badger

import (
	"context"
	"errors"
	"fmt"
	"maps"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// PutDevice creates or replaces d, keeping CreatedAt of an existing record
// and maintaining the alias index. An alias owned by another device fails
// with store.ErrExists: the store never moves an MDM identity silently.
func (s *Store) PutDevice(ctx context.Context, d *store.Device) error {
	if d == nil {
		return errors.New("store/badger: put device: nil device")
	}
	if err := store.CheckDevice(d); err != nil {
		return fmt.Errorf("store/badger: put device: %w", err)
	}
	var (
		out  store.Device
		prev *store.Device
	)
	err := s.announcing(func() ([]store.Change, error) {
		err := s.update(ctx, "put device", func(txn *bdb.Txn) error {
			var stored store.Device
			prev = nil
			switch err := getJSON(txn, keyDevice(d.ID), &stored); {
			case err == nil:
				prev = &stored
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			out = cloneDevice(d)
			s.stampDevice(&out, prev)
			return putDeviceTxn(txn, &out, prev)
		})
		if err != nil {
			return nil, err
		}
		return []store.Change{{Kind: store.ChangeDevice, DeviceID: out.ID, Device: deviceCopy(&out), Prev: prev, At: out.UpdatedAt}}, nil
	})
	if err != nil {
		return err
	}
	*d = out
	return nil
}

// GetDevice returns the device or an error wrapping store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	d := new(store.Device)
	err := s.view(ctx, "get device", func(txn *bdb.Txn) error {
		return getJSON(txn, keyDevice(id), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// UpdateDevice reads the device, applies fn to a copy and writes it back in
// one transaction together with ev. fn runs again if the transaction is
// retried after a conflict, so it must only modify the device it is given;
// it must not change the ID, and must not call back into the store (with ev
// set it runs while audit appends are held).
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, ev *store.AuditEvent) (*store.Device, error) {
	if fn == nil {
		return nil, errors.New("store/badger: update device: nil fn")
	}
	var out, old store.Device
	err := s.announcing(func() ([]store.Change, error) {
		err := s.updateAudited(ctx, "update device", ev, func(txn *bdb.Txn) error {
			old = store.Device{}
			if err := getJSON(txn, keyDevice(id), &old); err != nil {
				return err
			}
			out = cloneDevice(&old)
			if err := fn(&out); err != nil {
				return err
			}
			if out.ID != old.ID {
				return fmt.Errorf("%w: fn changed device id", store.ErrInvalidID)
			}
			if err := store.CheckDevice(&out); err != nil {
				return err
			}
			s.stampDevice(&out, &old)
			return putDeviceTxn(txn, &out, &old)
		})
		if err != nil {
			return nil, err
		}
		return []store.Change{{Kind: store.ChangeDevice, DeviceID: out.ID, Device: deviceCopy(&out), Prev: &old,
			Actor: actorOf(ev), At: out.UpdatedAt}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDevices lists devices in id order. The cursor is the last device id.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error) {
	var (
		out  []*store.Device
		next string
	)
	err := s.view(ctx, "list devices", func(txn *bdb.Txn) error {
		var err error
		out, next, err = scanPage(txn, []byte(pfxDevice), p.After, limit(p), func(item *bdb.Item) (*store.Device, bool, error) {
			d := new(store.Device)
			if err := item.Value(func(b []byte) error { return decode(item.Key(), b, d) }); err != nil {
				return nil, false, err
			}
			return d, deviceMatches(d, f), nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

func deviceMatches(d *store.Device, f store.DeviceFilter) bool {
	return (f.Status == "" || d.Status == f.Status) &&
		(f.Compliance == "" || d.Posture.State == f.Compliance) &&
		(f.Profile == "" || d.Profile == f.Profile)
}

// FindDeviceByAlias maps an MDM identity to its device.
func (s *Store) FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error) {
	d := new(store.Device)
	err := s.view(ctx, "find device by alias", func(txn *bdb.Txn) error {
		id, err := getRef(txn, keyAlias(kind, value))
		if err != nil {
			return err
		}
		return getJSON(txn, keyDevice(id), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
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

// putDeviceTxn writes d and brings the alias index from old's aliases to d's.
func putDeviceTxn(txn *bdb.Txn, d, old *store.Device) error {
	if old != nil {
		for kind, value := range old.Aliases {
			if d.Aliases[kind] == value {
				continue
			}
			if err := txn.Delete(keyAlias(kind, value)); err != nil {
				return err
			}
		}
	}
	for kind, value := range d.Aliases {
		if old != nil && old.Aliases[kind] == value {
			continue
		}
		owner, err := getRef(txn, keyAlias(kind, value))
		switch {
		case err == nil && owner != d.ID:
			return fmt.Errorf("%w: alias %s=%q belongs to device %q", store.ErrExists, kind, value, owner)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := setRef(txn, keyAlias(kind, value), d.ID); err != nil {
			return err
		}
	}
	return setJSON(txn, keyDevice(d.ID), d)
}

// cloneDevice deep-copies the slices and maps so fn and callers can't alias
// the record being written.
func cloneDevice(d *store.Device) store.Device {
	c := *d
	c.Groups = append([]string(nil), d.Groups...)
	if d.Groups == nil {
		c.Groups = nil
	}
	c.Aliases = maps.Clone(d.Aliases)
	return c
}
