package scep_test

import (
	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/limit"
	"hardbound/enroll/scep"
	"hardbound/store"
	"hardbound/store/badger"
)

// The wiring passes the real types; keep them assignable.
var (
	_ scep.CA          = (*ca.CA)(nil)
	_ scep.RASigner    = (*ca.CA)(nil)
	_ scep.Store       = (*badger.Store)(nil)
	_ scep.Store       = store.Store(nil)
	_ scep.MinterStore = store.Store(nil)
	_ scep.Limiter     = (*limit.Limiter)(nil)
	_ scep.TPMVerifier = (*attest.Verifier)(nil)
)
