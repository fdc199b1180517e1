package radius

import (
	"errors"
	"strings"
	"unicode/utf8"

	"hardbound/store"
)

// classPrefix versions the Class (25) token we put in Access-Accept so that
// accounting (which echoes Class, RFC 2865 §5.25) maps a session back to the
// device and certificate without server-side state.
const classPrefix = "hb1:"

// ErrBadClass reports a Class attribute that is not one of ours.
var ErrBadClass = errors.New("radius: class is not a hardbound token")

// encodeClass builds "hb1:<cert sha256 hex>:<device id>", truncating the
// device id so the value fits one attribute (253 bytes) on a rune boundary.
func encodeClass(cert store.Hash, deviceID string) []byte {
	b := make([]byte, 0, maxAttr)
	b = append(b, classPrefix...)
	b = append(b, cert.String()...)
	b = append(b, ':')
	room := maxAttr - len(b)
	if len(deviceID) > room {
		deviceID = deviceID[:room]
		for len(deviceID) > 0 && !utf8.ValidString(deviceID) {
			deviceID = deviceID[:len(deviceID)-1]
		}
	}
	return append(b, deviceID...)
}

// parseClass is the defensive inverse of encodeClass: Class comes back from
// the NAS and may be anything (another server's token, garbage).
func parseClass(v []byte) (store.Hash, string, error) {
	s := string(v)
	rest, ok := strings.CutPrefix(s, classPrefix)
	if !ok || len(rest) < 65 || rest[64] != ':' {
		return store.Hash{}, "", ErrBadClass
	}
	h, err := store.ParseHash(rest[:64])
	if err != nil {
		return store.Hash{}, "", ErrBadClass
	}
	dev := rest[65:]
	if !utf8.ValidString(dev) {
		return store.Hash{}, "", ErrBadClass
	}
	for _, r := range dev {
		if r < 0x20 || r == 0x7f {
			return store.Hash{}, "", ErrBadClass
		}
	}
	return h, dev, nil
}
