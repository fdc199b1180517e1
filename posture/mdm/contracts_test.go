package mdm

import (
	"hardbound/posture"
	"hardbound/store"
)

// The production types satisfy the interfaces the connectors ask for.
var (
	_ Updater = (*posture.Service)(nil)
	_ Auditor = store.Store(nil)
)
