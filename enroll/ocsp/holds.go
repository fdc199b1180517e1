package ocsp

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"hardbound/store"
)

// Lister is what Holds lists; store.Store satisfies it.
type Lister interface {
	ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
}

// maxHoldPages bounds each listing Holds makes.
const maxHoldPages = 10000

// Holds lists, for a CRL, the certificates this responder answers with
// certificateHold because their device is quarantined or noncompliant:
// the same decision as the OCSP answers, for the posture profiles. Stale
// or unknown posture is left to OCSP (listing it would scan the fleet).
// Revoked certificates are not listed here: the CRL has them already.
func (r *Responder) Holds(ctx context.Context, l Lister) ([]x509.RevocationListEntry, error) {
	if !r.cfg.Posture {
		return nil, nil
	}
	now := r.now()
	var out []x509.RevocationListEntry
	seen := map[string]bool{}
	for _, f := range []store.DeviceFilter{{Status: store.DeviceQuarantined}, {Compliance: store.ComplianceNoncompliant}} {
		err := pages(func(p store.Page) (string, error) {
			devs, next, err := l.ListDevices(ctx, f, p)
			if err != nil {
				return "", fmt.Errorf("ocsp: holds: list devices: %w", err)
			}
			for _, d := range devs {
				if seen[d.ID] || d.Status == store.DeviceRevoked {
					continue
				}
				seen[d.ID] = true
				entries, err := r.deviceHolds(ctx, l, d.ID, now)
				if err != nil {
					return "", err
				}
				out = append(out, entries...)
			}
			return next, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Responder) deviceHolds(ctx context.Context, l Lister, id string, now time.Time) ([]x509.RevocationListEntry, error) {
	var out []x509.RevocationListEntry
	err := pages(func(p store.Page) (string, error) {
		certs, next, err := l.ListCerts(ctx, store.CertFilter{DeviceID: id}, p)
		if err != nil {
			return "", fmt.Errorf("ocsp: holds: list certs: %w", err)
		}
		for _, c := range certs {
			if c.Revoked != nil || !c.NotAfter.After(now) {
				continue
			}
			a, _, err := r.decide(ctx, c.Serial)
			if err != nil {
				return "", err
			}
			if a.Status != xocsp.Revoked || a.Reason != xocsp.CertificateHold {
				continue
			}
			serial, ok := new(big.Int).SetString(c.Serial, 16)
			if !ok {
				continue
			}
			out = append(out, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: a.RevokedAt.UTC(), ReasonCode: xocsp.CertificateHold})
		}
		return next, nil
	})
	return out, err
}

// pages calls one page at a time until the cursor ends.
func pages(page func(store.Page) (string, error)) error {
	p := store.Page{}
	for i := 0; i < maxHoldPages; i++ {
		next, err := page(p)
		if err != nil {
			return err
		}
		if next == "" || next == p.After {
			return nil
		}
		p.After = next
	}
	return fmt.Errorf("ocsp: holds: more than %d pages", maxHoldPages)
}
