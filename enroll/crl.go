package enroll

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/store"
)

// crlCache holds the last CRL built. It is rebuilt on the first request
// after a revocation (or a reset) reaches it from the store's change feed,
// or once it is older than CRLMaxAge.
type crlCache struct {
	mu     sync.Mutex
	der    []byte
	pem    []byte
	built  time.Time
	number *big.Int
	// listed is the value of changes when the CRL in der was listed.
	listed uint64
	// changes counts invalidations. It is not guarded by mu, which a
	// rebuild holds for a whole listing and signature: the store's change
	// feed calls invalidateCRL while it holds its writers up. A revocation
	// committed during a rebuild leaves changes ahead of listed, so the
	// next request rebuilds again.
	changes atomic.Uint64
}

// maxCRLPages bounds the revoked-cert listing (with the store's default
// page size this is far beyond any realistic fleet).
const maxCRLPages = 10000

// onChange marks the CRL stale when a change can alter it: a revocation,
// by whichever writer, or a reset of the store.
func (s *Service) onChange(c store.Change) {
	switch c.Kind {
	case store.ChangeCertRevoked, store.ChangeDeviceRevoked, store.ChangeReset:
		s.invalidateCRL()
	case store.ChangeDevice:
		if s.holds != nil && standingChanged(c.Prev, c.Device) {
			s.invalidateCRL()
		}
	}
}

// standingChanged reports a change that can put a hold on, or lift one.
func standingChanged(prev, cur *store.Device) bool {
	if prev == nil || cur == nil {
		return true
	}
	return prev.Status != cur.Status || prev.Posture.State != cur.Posture.State
}

// invalidateCRL marks the CRL stale; the next request rebuilds it.
func (s *Service) invalidateCRL() { s.crl.changes.Add(1) }

// Close ends the Service's subscription to its store's changes. Call it
// when the Service is dropped while the store lives on.
func (s *Service) Close() { s.stopWatch() }

// CRL returns the current CRL (DER), rebuilding it if stale.
func (s *Service) CRL(ctx context.Context) ([]byte, error) {
	der, _, _, err := s.currentCRL(ctx)
	return der, err
}

func (s *Service) currentCRL(ctx context.Context) (der, pemBytes []byte, built time.Time, err error) {
	c := &s.crl
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	changes := c.changes.Load()
	if c.der != nil && c.listed == changes && now.Sub(c.built) < s.cfg.CRLMaxAge {
		return c.der, c.pem, c.built, nil
	}
	der, number, err := s.buildCRL(ctx, now, c.number)
	if err != nil {
		if c.der != nil && now.Before(c.built.Add(s.cfg.CRLValidity)) {
			// Serving the previous, still valid CRL beats serving none.
			s.log.Error("crl rebuild failed; serving the previous CRL", "err", err)
			return c.der, c.pem, c.built, nil
		}
		return nil, nil, time.Time{}, err
	}
	c.der, c.number, c.built, c.listed = der, number, now, changes
	c.pem = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	s.log.Info("crl built", "number", number.String(), "bytes", len(der))
	return c.der, c.pem, c.built, nil
}

// buildCRL lists revoked, unexpired certificates and signs a CRL. The CRL
// number is the Unix time in seconds, or last+1 if that is not larger: it is
// monotonic within a process and across restarts as long as the clock does
// not go back, without persisting a counter.
func (s *Service) buildCRL(ctx context.Context, now time.Time, last *big.Int) ([]byte, *big.Int, error) {
	var entries []x509.RevocationListEntry
	page := store.Page{}
	for i := 0; ; i++ {
		if i == maxCRLPages {
			return nil, nil, fmt.Errorf("enroll: crl: more than %d pages of revoked certificates", maxCRLPages)
		}
		certs, next, err := s.store.ListCerts(ctx, store.CertFilter{RevokedOnly: true}, page)
		if err != nil {
			return nil, nil, fmt.Errorf("enroll: crl: list revoked certs: %w", err)
		}
		for _, c := range certs {
			if c.Revoked == nil || !c.NotAfter.After(now) {
				continue // expired certificates may leave the CRL (RFC 5280 §3.3)
			}
			serial, ok := new(big.Int).SetString(c.Serial, 16)
			if !ok {
				s.log.Error("crl: skipping cert with unparsable serial", "serial", c.Serial)
				continue
			}
			entries = append(entries, x509.RevocationListEntry{
				SerialNumber:   serial,
				RevocationTime: c.Revoked.At.UTC(),
				ReasonCode:     c.Revoked.Reason,
			})
		}
		if next == "" || next == page.After {
			break
		}
		page.After = next
	}
	if s.holds != nil {
		held, err := s.holds(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("enroll: crl: holds: %w", err)
		}
		entries = append(entries, held...)
	}
	number := big.NewInt(now.Unix())
	if last != nil && number.Cmp(last) <= 0 {
		number = new(big.Int).Add(last, big.NewInt(1))
	}
	der, err := s.ca.CRL(ctx, entries, number, now.Add(s.cfg.CRLValidity))
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: crl: %w", err)
	}
	return der, number, nil
}

func (s *Service) handleCRL(w http.ResponseWriter, r *http.Request) {
	der, pemBytes, built, err := s.currentCRL(r.Context())
	if err != nil {
		s.log.Error("crl unavailable", "err", err)
		http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
		return
	}
	body, ctype := der, "application/pkix-crl"
	if r.URL.Path == "/crl.pem" {
		body, ctype = pemBytes, "application/x-pem-file"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Last-Modified", built.UTC().Format(http.TimeFormat))
	// Short: revocations should reach relying parties quickly.
	w.Header().Set("Cache-Control", "public, max-age=60")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
