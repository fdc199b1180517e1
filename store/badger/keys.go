package badger

import (
	"encoding/binary"

	"hardbound/store"
)

// Key layout. Every key starts with a record-kind prefix so one prefix scan
// lists one kind. Variable parts are joined with sep (NUL), which validID
// forbids inside identifiers, so "a"+sep+"bc" can never collide with
// "ab"+sep+"c" and a prefix scan over "<kind>/<id>"+sep never reaches
// another id. Hashes are lower-case hex so keys stay readable in dumps.
const (
	sep = "\x00"

	pfxDevice         = "dev/"
	pfxCert           = "cert/"
	pfxCertDER        = "certder/"
	pfxCertSerial     = "serial/"
	pfxDeviceCert     = "devcert/"
	pfxAttestation    = "att/"
	pfxAttestKey      = "attkey/"
	pfxChallenge      = "chal/"
	pfxSession        = "sess/"
	pfxDeviceSession  = "devsess/"
	pfxAlias          = "alias/"
	pfxACMEAccount    = "acmeacct/"
	pfxACMEThumb      = "acmetp/"
	pfxACMEOrder      = "acmeord/"
	pfxACMEAcctOrders = "acmeacctord/"
	pfxAudit          = "audit/"
	pfxAuditCP        = "auditcp/"
	pfxAuditCursor    = "auditcur/"
	pfxNonce          = "nonce/"
	pfxDocument       = "doc/"
	keyAuditHeadStr   = "meta/audit-head"
	keyTicketKeysStr  = "meta/ticket-keys"
	keyAuditPrunedStr = "meta/audit-pruned"
)

func keyDevice(id string) []byte { return []byte(pfxDevice + id) }

func keyCert(h store.Hash) []byte { return []byte(pfxCert + h.String()) }

func keyCertDER(h store.Hash) []byte { return []byte(pfxCertDER + h.String()) }

func keyCertSerial(serial string) []byte { return []byte(pfxCertSerial + serial) }

// keyDeviceCertPrefix is the scan prefix for all certs of one device.
func keyDeviceCertPrefix(id string) []byte { return []byte(pfxDeviceCert + id + sep) }

func keyDeviceCert(id string, h store.Hash) []byte {
	return []byte(pfxDeviceCert + id + sep + h.String())
}

func keyAttestation(id string) []byte { return []byte(pfxAttestation + id) }

func keyAttestationKey(h store.Hash) []byte { return []byte(pfxAttestKey + h.String()) }

func keyChallenge(h store.Hash) []byte { return []byte(pfxChallenge + h.String()) }

func keySession(nas, id string) []byte { return []byte(pfxSession + nas + sep + id) }

func keyDeviceSessionPrefix(id string) []byte { return []byte(pfxDeviceSession + id + sep) }

func keyDeviceSession(id, nas, sid string) []byte {
	return []byte(pfxDeviceSession + id + sep + nas + sep + sid)
}

func keyAlias(kind, value string) []byte { return []byte(pfxAlias + kind + sep + value) }

func keyNonce(scope string, h store.Hash) []byte {
	return []byte(pfxNonce + scope + sep + h.String())
}

func keyDocument(name string) []byte { return []byte(pfxDocument + name) }

func keyACMEAccount(id string) []byte { return []byte(pfxACMEAccount + id) }

func keyACMEThumbprint(tp string) []byte { return []byte(pfxACMEThumb + tp) }

func keyACMEOrder(id string) []byte { return []byte(pfxACMEOrder + id) }

func keyACMEAccountOrders(account string) []byte { return []byte(pfxACMEAcctOrders + account) }

// keyAudit uses a big-endian sequence so byte order is numeric order and
// ScanAudit/TailAudit are plain forward/reverse iterations.
func keyAudit(seq uint64) []byte {
	k := make([]byte, len(pfxAudit)+8)
	copy(k, pfxAudit)
	binary.BigEndian.PutUint64(k[len(pfxAudit):], seq)
	return k
}

// seqFromAuditKey is the inverse of keyAudit; ok is false for foreign keys.
func seqFromAuditKey(k []byte) (uint64, bool) {
	if len(k) != len(pfxAudit)+8 || string(k[:len(pfxAudit)]) != pfxAudit {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(pfxAudit):]), true
}

func keyAuditHead() []byte { return []byte(keyAuditHeadStr) }

// keyAuditCheckpoint orders checkpoints by seq like keyAudit.
func keyAuditCheckpoint(seq uint64) []byte {
	k := make([]byte, len(pfxAuditCP)+8)
	copy(k, pfxAuditCP)
	binary.BigEndian.PutUint64(k[len(pfxAuditCP):], seq)
	return k
}

func keyAuditCursor(sink string) []byte { return []byte(pfxAuditCursor + sink) }

func keyAuditPruned() []byte { return []byte(keyAuditPrunedStr) }
