package dynauth

import (
	"hardbound/posture"
	"hardbound/store"
)

// The production types satisfy the interfaces the Enforcer asks for.
var (
	_ Events    = (*posture.Service)(nil)
	_ Profiles  = (*posture.Service)(nil)
	_ Sessions  = store.Store(nil)
	_ Auditor   = store.Store(nil)
	_ Exchanger = (*Sender)(nil)
)
