package badger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// RecordIssuance writes everything one issuance produces in one
// transaction: the device (created, or merged: platform, profile and new
// aliases), the cert with its serial and device indexes, the attestation
// with its key index, the consumed challenge and the audit event. Any
// failure (challenge consumed, expired or bound elsewhere, duplicate cert or
// serial, alias owned by another device) writes nothing.
//
// Without is.Device the device must already exist. is.Device.ID, if given,
// must equal is.Cert.DeviceID.
func (s *Store) RecordIssuance(ctx context.Context, is store.Issuance) error {
	if err := store.CheckIssuance(is); err != nil {
		return fmt.Errorf("store/badger: record issuance: %w", err)
	}
	var (
		devDone store.Device
		crtDone store.Cert
		attDone store.Attestation
		ordDone *store.ACMEOrder
		prev    *store.Device
		at      time.Time
	)
	err := s.announcing(func() ([]store.Change, error) {
		err := s.updateAudited(ctx, "record issuance", is.Audit, func(txn *bdb.Txn) error {
			prev = nil
			at = s.now()
			if is.Order != nil {
				// The order first: one that moved on since the caller
				// read it (another node's finalize) aborts the issuance.
				var err error
				if ordDone, err = s.updateOrderTxn(txn, is.Order, is.OrderPrev); err != nil {
					return err
				}
			}
			return s.issueTxn(txn, is, at, &devDone, &crtDone, &attDone, &prev)
		})
		if err != nil {
			return nil, err
		}
		ch := store.Change{Kind: store.ChangeIssued, DeviceID: crtDone.DeviceID, CertSHA256: crtDone.SHA256,
			Device: deviceCopy(&devDone), Prev: prev, Cert: bindingCopy(&crtDone), Actor: actorOf(is.Audit), At: at}
		if is.Attestation != nil {
			ch.Attestation = attestationCopy(&attDone)
		}
		return []store.Change{ch}, nil
	})
	if err != nil {
		return err
	}
	// Hand back what was stored, as PutDevice and AppendAudit do.
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

// issueTxn writes one issuance in txn (see RecordIssuance), filling what it
// stored and, when the device existed, *prev with it as it was.
func (s *Store) issueTxn(txn *bdb.Txn, is store.Issuance, now time.Time, devDone *store.Device, crtDone *store.Cert, attDone *store.Attestation, prev **store.Device) error {
	c := *is.Cert
	c.V = store.RecordVersion

	if is.Challenge != nil {
		if _, err := consumeTxn(txn, *is.Challenge, now, c.DeviceID, c.KeySHA256, true); err != nil {
			return err
		}
	}

	var old store.Device
	switch err := getJSON(txn, keyDevice(c.DeviceID), &old); {
	case err == nil:
		d := mergeDevice(&old, is.Device)
		s.stampDevice(&d, &old)
		if err := putDeviceTxn(txn, &d, &old); err != nil {
			return err
		}
		*devDone = d
		*prev = &old
	case errors.Is(err, store.ErrNotFound) && is.Device != nil:
		d := cloneDevice(is.Device)
		s.stampDevice(&d, nil)
		if err := putDeviceTxn(txn, &d, nil); err != nil {
			return err
		}
		*devDone = d
	default:
		return fmt.Errorf("device %q: %w", c.DeviceID, err)
	}

	if is.Attestation != nil {
		a := *is.Attestation
		a.V = store.RecordVersion
		if err := putAttestationTxn(txn, &a); err != nil {
			return err
		}
		*attDone = a
	}

	if ok, err := exists(txn, keyCert(c.SHA256)); err != nil || ok {
		return errors.Join(err, fmt.Errorf("%w: cert %s", store.ErrExists, c.SHA256))
	}
	if ok, err := exists(txn, keyCertSerial(c.Serial)); err != nil || ok {
		return errors.Join(err, fmt.Errorf("%w: serial %s", store.ErrExists, c.Serial))
	}
	if err := putCertTxn(txn, &c, true); err != nil {
		return err
	}
	if err := setRef(txn, keyCertSerial(c.Serial), c.SHA256.String()); err != nil {
		return err
	}
	if err := txn.Set(keyDeviceCert(c.DeviceID, c.SHA256), nil); err != nil {
		return err
	}
	*crtDone = c
	return nil
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

// GetCert returns the binding for a cert hash. It is on the RADIUS hot path
// (behind posture's cache): one point read and one JSON decode.
func (s *Store) GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	c := new(store.Cert)
	err := s.view(ctx, "get cert", func(txn *bdb.Txn) error {
		return getCertTxn(txn, sha, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertBinding implements store.Store: GetCert without the DER, which
// is a second key (and, on a cold read, other table blocks).
func (s *Store) GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	c := new(store.Cert)
	err := s.view(ctx, "get cert binding", func(txn *bdb.Txn) error {
		return getCertNoDERTxn(txn, sha, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertBySerial looks a cert up by serial (hex; case, colons and leading
// zeros are ignored).
func (s *Store) GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error) {
	c := new(store.Cert)
	err := s.view(ctx, "get cert by serial", func(txn *bdb.Txn) error {
		ref, err := getRef(txn, keyCertSerial(store.NormSerial(serial)))
		if err != nil {
			return err
		}
		h, err := store.ParseHash(ref)
		if err != nil {
			return err
		}
		return getCertTxn(txn, h, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListCerts lists certs in hash order, through the device index when
// f.DeviceID is set. The cursor is the last cert's hex hash.
func (s *Store) ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error) {
	var (
		out  []*store.Cert
		next string
	)
	match := func(c *store.Cert) bool { return !f.RevokedOnly || c.Revoked != nil }
	err := s.view(ctx, "list certs", func(txn *bdb.Txn) error {
		var err error
		if f.DeviceID == "" {
			out, next, err = scanPage(txn, []byte(pfxCert), p.After, limit(p), func(item *bdb.Item) (*store.Cert, bool, error) {
				c := new(store.Cert)
				if err := item.Value(func(b []byte) error { return decode(item.Key(), b, c) }); err != nil {
					return nil, false, err
				}
				if !f.NoDER {
					if err := getDERTxn(txn, c); err != nil {
						return nil, false, err
					}
				}
				return c, match(c), nil
			})
			return err
		}
		prefix := keyDeviceCertPrefix(f.DeviceID)
		out, next, err = scanPage(txn, prefix, p.After, limit(p), func(item *bdb.Item) (*store.Cert, bool, error) {
			h, err := store.ParseHash(string(item.Key()[len(prefix):]))
			if err != nil {
				return nil, false, err
			}
			c := new(store.Cert)
			get := getCertTxn
			if f.NoDER {
				get = getCertNoDERTxn
			}
			if err := get(txn, h, c); err != nil {
				return nil, false, fmt.Errorf("device index -> cert %s: %w", h, err)
			}
			return c, match(c), nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// RevokeCert marks the cert revoked. An already revoked cert keeps its first
// revocation; ev (optional) is appended either way, since the attempt is an
// administrative action worth recording.
func (s *Store) RevokeCert(ctx context.Context, sha store.Hash, r store.Revocation, ev *store.AuditEvent) (*store.Cert, error) {
	var (
		out     store.Cert
		revoked bool
		at      time.Time
	)
	err := s.announcing(func() ([]store.Change, error) {
		err := s.updateAudited(ctx, "revoke cert", ev, func(txn *bdb.Txn) error {
			out, revoked, at = store.Cert{}, false, s.now()
			if err := getCertTxn(txn, sha, &out); err != nil {
				return err
			}
			if out.Revoked == nil {
				out.Revoked = s.revocation(r, at)
				revoked = true
				return putCertTxn(txn, &out, false)
			}
			return nil
		})
		if err != nil || !revoked {
			return nil, err
		}
		return []store.Change{{Kind: store.ChangeCertRevoked, DeviceID: out.DeviceID, CertSHA256: out.SHA256,
			Cert: bindingCopy(&out), Actor: revocationActor(ev, r), At: at}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// revocationActor is the actor a Change reports for a revocation.
func revocationActor(ev *store.AuditEvent, r store.Revocation) string {
	if ev != nil {
		return ev.Actor
	}
	return r.Actor
}

// RevokeDevice marks the device revoked and revokes every cert of it that is
// not revoked yet, in one transaction. It returns all the device's certs.
func (s *Store) RevokeDevice(ctx context.Context, id string, r store.Revocation, ev *store.AuditEvent) (*store.Device, []*store.Cert, error) {
	var (
		dev, prev store.Device
		certs     []*store.Cert
		newly     []*store.Cert // revoked by this write
		at        time.Time
	)
	err := s.announcing(func() ([]store.Change, error) {
		err := s.updateAudited(ctx, "revoke device", ev, func(txn *bdb.Txn) error {
			certs, newly, dev, at = certs[:0], newly[:0], store.Device{}, s.now()
			if err := getJSON(txn, keyDevice(id), &dev); err != nil {
				return err
			}
			prev = cloneDevice(&dev)
			rev := s.revocation(r, at)
			if dev.Status != store.DeviceRevoked {
				dev.Status = store.DeviceRevoked
				s.stampDevice(&dev, &prev)
				if err := setJSON(txn, keyDevice(id), &dev); err != nil {
					return err
				}
			}
			hashes, err := deviceCertHashes(txn, id)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				c := new(store.Cert)
				if err := getCertTxn(txn, h, c); err != nil {
					return fmt.Errorf("device index -> cert %s: %w", h, err)
				}
				if c.Revoked == nil {
					c.Revoked = rev
					if err := putCertTxn(txn, c, false); err != nil {
						return err
					}
					newly = append(newly, c)
				}
				certs = append(certs, c)
			}
			return nil
		})
		if err != nil || (prev.Status == store.DeviceRevoked && len(newly) == 0) {
			return nil, err
		}
		ch := store.Change{Kind: store.ChangeDeviceRevoked, DeviceID: id, Device: deviceCopy(&dev), Prev: &prev,
			Certs: make([]*store.Cert, len(newly)), Actor: revocationActor(ev, r), At: at}
		for i, c := range newly {
			ch.Certs[i] = bindingCopy(c)
		}
		return []store.Change{ch}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return &dev, certs, nil
}

// revocation is r with its time filled in (now) if unset.
func (s *Store) revocation(r store.Revocation, now time.Time) *store.Revocation {
	if r.At.IsZero() {
		r.At = now
	}
	return &r
}

// deviceCertHashes lists a device's cert hashes from the index. The
// iterator is closed before the caller writes: a read-write transaction
// allows one iterator and writes are not meant to race with it.
func deviceCertHashes(txn *bdb.Txn, id string) ([]store.Hash, error) {
	prefix := keyDeviceCertPrefix(id)
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []store.Hash
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		h, err := store.ParseHash(string(it.Item().Key()[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("device index key: %w", err)
		}
		out = append(out, h)
	}
	return out, nil
}

// Certs are stored as two values: the binding as JSON without the DER, and
// the DER as raw bytes under keyCertDER. Base64 inside JSON made decoding
// the DER ~80% of GetCert's time; the binding is what the auth path reads,
// the DER is a plain copy.

// putCertTxn writes the binding and, with withDER, the DER (which never
// changes after issuance, so revocations rewrite only the binding).
func putCertTxn(txn *bdb.Txn, c *store.Cert, withDER bool) error {
	rec := *c
	rec.DER = nil
	if err := setJSON(txn, keyCert(c.SHA256), &rec); err != nil {
		return err
	}
	if withDER && len(c.DER) > 0 {
		return txn.Set(keyCertDER(c.SHA256), c.DER)
	}
	return nil
}

// getCertTxn reads the binding and its DER into c.
func getCertTxn(txn *bdb.Txn, h store.Hash, c *store.Cert) error {
	if err := getJSON(txn, keyCert(h), c); err != nil {
		return err
	}
	return getDERTxn(txn, c)
}

// getCertNoDERTxn reads the binding alone, leaving c.DER nil.
func getCertNoDERTxn(txn *bdb.Txn, h store.Hash, c *store.Cert) error {
	return getJSON(txn, keyCert(h), c)
}

func getDERTxn(txn *bdb.Txn, c *store.Cert) error {
	item, err := txn.Get(keyCertDER(c.SHA256))
	if errors.Is(err, bdb.ErrKeyNotFound) {
		c.DER = nil
		return nil
	}
	if err != nil {
		return err
	}
	c.DER, err = item.ValueCopy(nil)
	return err
}
