package scep_test

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
	"hardbound/store/storetest"
)

// A PKCSReq while the store's database is away is answered HTTP 503 (a
// CertRep FAILURE would read as final), and the same request issues once
// the store answers again: the challenge was not consumed.
func TestPKCSReqWhileStoreUnavailable(t *testing.T) {
	t.Parallel()
	var faulty *storetest.Faulty
	e := newEnv(t, func(c *scep.Config) {
		faulty = &storetest.Faulty{Store: c.Store.(store.Store)}
		c.Store = faulty
	})
	ctx := t.Context()
	value := e.mint(scep.MintRequest{DeviceID: "C02AWAY", Profile: "corp"})
	req := sceptest.Request{Key: newKey(t), Challenge: value, Subject: pkix.Name{CommonName: "C02AWAY"}}
	faulty.Fail = func(m string) error { return fmt.Errorf("test: %s: %w", m, store.ErrUnavailable) }
	_, err := e.client("").Enroll(ctx, req)
	var he *sceptest.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Fatalf("PKCSReq with the database away = %v, want HTTP 503", err)
	}
	faulty.Fail = nil
	if _, err := e.client("").Enroll(ctx, req); err != nil {
		t.Fatalf("the same PKCSReq once the store answers: %v", err)
	}
}
