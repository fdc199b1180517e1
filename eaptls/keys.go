package eaptls

import (
	"crypto/tls"
	"fmt"
)

// RFC 5216 §2.3 and RFC 9190 §2.3 exporter labels.
const (
	labelTLS12     = "client EAP encryption"
	labelTLS13Key  = "EXPORTER_EAP_TLS_Key_Material"
	labelTLS13Mid  = "EXPORTER_EAP_TLS_Method-Id"
	keyMaterialLen = 128
	methodIDLen    = 64
	keyLen         = 64
	sessionIDLen   = 1 + methodIDLen
)

// keyMaterial holds MSK || EMSK and the Session-Id of one finished handshake.
type keyMaterial struct {
	km        [keyMaterialLen]byte
	sessionID [sessionIDLen]byte
	ok        bool
}

// derive computes the keys from a finished handshake. cr and sr are the
// hello randoms (TLS 1.2 only).
//
// TLS 1.2: the RFC 5705 exporter with a nil context is byte-identical to
// RFC 5216's PRF(master_secret, label, client.random || server.random); a
// non-nil (even empty) context would add a length prefix and change it.
// TLS 1.3: context is the single byte 0x0D and the full 128 / 64 bytes are
// requested, since the length is an HKDF input.
func (k *keyMaterial) derive(cs *tls.ConnectionState, cr, sr []byte) error {
	switch cs.Version {
	case tls.VersionTLS12:
		if len(cr) != 32 || len(sr) != 32 {
			return fmt.Errorf("%w: hello randoms not captured", ErrKeys)
		}
		b, err := cs.ExportKeyingMaterial(labelTLS12, nil, keyMaterialLen)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		copy(k.km[:], b)
		k.sessionID[0] = TypeTLS
		copy(k.sessionID[1:33], cr)
		copy(k.sessionID[33:], sr)
	case tls.VersionTLS13:
		ctx := []byte{TypeTLS}
		b, err := cs.ExportKeyingMaterial(labelTLS13Key, ctx, keyMaterialLen)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		mid, err := cs.ExportKeyingMaterial(labelTLS13Mid, ctx, methodIDLen)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		copy(k.km[:], b)
		k.sessionID[0] = TypeTLS
		copy(k.sessionID[1:], mid)
	default:
		return fmt.Errorf("%w: unsupported TLS version %#04x", ErrKeys, cs.Version)
	}
	k.ok = true
	return nil
}

// keys returns copies so callers cannot alias session state.
func (k *keyMaterial) keys() (msk, emsk []byte) {
	if !k.ok {
		return nil, nil
	}
	b := make([]byte, keyMaterialLen)
	copy(b, k.km[:])
	return b[:keyLen:keyLen], b[keyLen:]
}

func (k *keyMaterial) id() []byte {
	if !k.ok {
		return nil
	}
	b := make([]byte, sessionIDLen)
	copy(b, k.sessionID[:])
	return b
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return "unknown"
}
