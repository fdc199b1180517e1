package radius

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"hardbound/store"
	"hardbound/store/atomicfile"
)

// The Class (25) the Access-Accept carries comes back in accounting (RFC
// 2865 §5.25) and maps the session to its device and certificate. The NAS
// can put anything there, so the token is authenticated: an HMAC-SHA-256
// under a server-side key over the device, the certificate, the time the
// Accept was built, the NAS client and the source address the
// Access-Request came from. Accounting that presents it from another
// client or address, or altered, is refused as a session of that device;
// so a NAS cannot make itself the target of another NAS's devices'
// Disconnect/CoA, nor invent sessions.
//
// Layout (octets; binary, Class is opaque to the NAS):
//
//	"hb2" | flags (1) | issued unix ns (8) | cert SHA-256 (32) | MAC (16) | device id (0..193)
//
// flags bit 0: the device id follows. A longer device id (ids may have 256
// octets, an attribute 253) is left out and the MAC still covers it: the
// accounting side resolves it through the certificate's binding and checks
// the MAC against it, so no id is ever truncated.
const (
	classMagic     = "hb2"
	classHeader    = len(classMagic) + 1 + 8 + 32 + classMACLen
	classMACLen    = 16 // HMAC-SHA-256 truncated to 128 bits (RFC 2104 §5)
	classRoom      = maxAttr - classHeader
	classHasDevice = 0x01
	// ClassKeyLen is the size of the Class key.
	ClassKeyLen = 32
)

// ErrBadClass reports a Class attribute that is not an authentic hardbound
// token for this NAS.
var ErrBadClass = errors.New("radius: class is not an authentic hardbound token")

// classToken is a Class's content.
type classToken struct {
	issued   time.Time
	cert     store.Hash
	deviceID string // "" when left out (too long): resolve by cert
}

// classKey computes and checks Class MACs.
type classKey struct{ key []byte }

func (k classKey) mac(nas string, from netip.Addr, flags byte, issued int64, cert store.Hash, deviceID string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("hardbound class v2\x00"))
	var b [8]byte
	binary.BigEndian.PutUint16(b[:2], uint16(len(nas)))
	m.Write(b[:2])
	m.Write([]byte(nas))
	a := from.Unmap().As16()
	m.Write(a[:])
	m.Write([]byte{flags})
	binary.BigEndian.PutUint64(b[:], uint64(issued))
	m.Write(b[:])
	m.Write(cert[:])
	binary.BigEndian.PutUint16(b[:2], uint16(len(deviceID)))
	m.Write(b[:2])
	m.Write([]byte(deviceID))
	return m.Sum(nil)[:classMACLen]
}

// encode builds the Class for an Accept to NAS client nas, whose request
// came from from.
func (k classKey) encode(nas string, from netip.Addr, issued time.Time, cert store.Hash, deviceID string) []byte {
	var flags byte
	if len(deviceID) <= classRoom {
		flags |= classHasDevice
	}
	ns := issued.UnixNano()
	b := make([]byte, 0, classHeader+len(deviceID))
	b = append(b, classMagic...)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	b = append(b, cert[:]...)
	b = append(b, k.mac(nas, from, flags, ns, cert, deviceID)...)
	if flags&classHasDevice != 0 {
		b = append(b, deviceID...)
	}
	return b
}

// decode checks v's shape and, when the device id is inside, its MAC;
// resolve supplies the device id of a token that left it out (the
// certificate's binding) and is called only for those.
func (k classKey) decode(v []byte, nas string, from netip.Addr, resolve func(store.Hash) (string, error)) (classToken, error) {
	if len(v) < classHeader || string(v[:len(classMagic)]) != classMagic {
		return classToken{}, ErrBadClass
	}
	flags := v[len(classMagic)]
	rest := v[len(classMagic)+1:]
	ns := int64(binary.BigEndian.Uint64(rest[:8]))
	var cert store.Hash
	copy(cert[:], rest[8:40])
	mac := rest[40 : 40+classMACLen]
	dev := rest[40+classMACLen:]
	t := classToken{issued: time.Unix(0, ns).UTC(), cert: cert}
	switch {
	case flags&^classHasDevice != 0:
		return classToken{}, ErrBadClass
	case flags&classHasDevice != 0:
		t.deviceID = string(dev)
	case len(dev) != 0:
		return classToken{}, ErrBadClass
	default:
		if resolve == nil {
			return classToken{}, fmt.Errorf("%w: device id left out and no binding to resolve it", ErrBadClass)
		}
		id, err := resolve(cert)
		if err != nil {
			return classToken{}, fmt.Errorf("%w: resolve device: %w", ErrBadClass, err)
		}
		t.deviceID = id
	}
	if !hmac.Equal(mac, k.mac(nas, from, flags, ns, cert, t.deviceID)) {
		return classToken{}, ErrBadClass
	}
	if t.deviceID == "" || !utf8.ValidString(t.deviceID) {
		return classToken{}, ErrBadClass
	}
	return t, nil
}

// LoadClassKey reads the Class key at path, creating it (random, 0600,
// crash-safe) when absent. The key must outlive restarts: a session's
// Class is checked in every accounting packet for as long as it lasts.
func LoadClassKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != ClassKeyLen {
			return nil, fmt.Errorf("radius: class key %s: %d bytes, want %d", path, len(b), ClassKeyLen)
		}
		return b, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("radius: class key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("radius: class key: %w", err)
	}
	key := make([]byte, ClassKeyLen)
	_, _ = rand.Read(key) // never fails (Go 1.24+)
	if err := atomicfile.Write(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("radius: class key: %w", err)
	}
	return key, nil
}
