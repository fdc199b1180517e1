package posture

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
)

// The caches hold a million entries or more. Every pointer in them (a
// string's data, a string map key) makes each GC cycle walk the whole
// population, which costs CPU on every authentication; so cached entries
// hold no pointers: device ids are stored inline in a fixed-size key, and
// profile names and attestation formats are small indexes into the tables
// below.

// inlineID is the size of a devKey's id bytes: 40 bytes in all, so a
// binding is 64 bytes. Ids up to 39 bytes (serials, UDIDs, UUIDs) are kept
// as they are; lower-case hex ids up to 78 characters (the hex SHA-256 of
// a TPM's EK) are kept decoded.
const inlineID = 39

const (
	hexID    = 0x80 // n&^hexID bytes hold a lower-case hex id, decoded
	hashedID = 0xff // the bytes hold the SHA-256 of a longer id
)

// devKey identifies a device without a pointer: the id itself when it fits,
// else its SHA-256 (the id is then kept in Service.longIDs). Each id has
// exactly one form, so equal keys mean equal ids.
type devKey struct {
	b [inlineID]byte
	n uint8 // id length, hexID|decoded length, or hashedID
}

func keyOf(id string) devKey {
	var k devKey
	switch {
	case len(id) <= inlineID:
		k.n = uint8(len(id))
		copy(k.b[:], id)
		return k
	case len(id)%2 == 0 && len(id)/2 <= inlineID && lowerHex(id):
		n, err := hex.Decode(k.b[:], []byte(id))
		if err == nil {
			k.n = hexID | uint8(n)
			return k
		}
	}
	k = devKey{n: hashedID}
	h := sha256.Sum256([]byte(id))
	copy(k.b[:], h[:])
	return k
}

// inline returns the id of a key that holds it inline.
func (k *devKey) inline() (string, bool) {
	switch {
	case k.n == hashedID:
		return "", false
	case k.n&hexID != 0:
		return hex.EncodeToString(k.b[:k.n&^hexID]), true
	}
	return string(k.b[:k.n]), true
}

// lowerHex reports whether s is lower-case hex, the form that decodes and
// encodes back to itself.
func lowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// longIDs keeps the device ids too long for a devKey. It only grows, up to
// max entries (beyond that such bindings are not cached), and is emptied
// with the caches by invalidateAll; a binding whose id is missing is
// reloaded from the store, so forgetting an id is always safe.
type longIDs struct {
	mu  sync.RWMutex
	m   map[devKey]string
	max int
}

func newLongIDs(max int) *longIDs { return &longIDs{m: map[devKey]string{}, max: max} }

func (l *longIDs) get(k devKey) (string, bool) {
	l.mu.RLock()
	id, ok := l.m[k]
	l.mu.RUnlock()
	return id, ok
}

// add reports false when the table is full and id is not in it.
func (l *longIDs) add(k devKey, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.m[k]; ok {
		return true
	}
	if len(l.m) >= l.max {
		return false
	}
	l.m[k] = id
	return true
}

func (l *longIDs) clear() {
	l.mu.Lock()
	clear(l.m)
	l.mu.Unlock()
}

// interner maps the few distinct profile names or attestation formats to
// small indexes. It only grows, up to maxInterned names: a binding whose
// name does not fit is not cached (it is read from the store each time).
// Reads take no lock: names is replaced, never modified, on growth.
type interner struct {
	mu    sync.Mutex
	idx   map[string]uint16
	names atomic.Pointer[[]string]
}

// maxInterned bounds each interner: profiles and formats come from
// configuration and attestation verifiers, so a real deployment has tens.
const maxInterned = 1024

func newInterner(seed ...string) *interner {
	in := &interner{idx: map[string]uint16{}}
	names := []string{}
	in.names.Store(&names)
	for _, s := range seed {
		in.intern(s)
	}
	return in
}

// intern returns s's index, adding it if there is room.
func (in *interner) intern(s string) (uint16, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if i, ok := in.idx[s]; ok {
		return i, true
	}
	old := *in.names.Load()
	if len(old) >= maxInterned {
		return 0, false
	}
	names := append(old[:len(old):len(old)], s)
	i := uint16(len(old))
	in.idx[s] = i
	in.names.Store(&names)
	return i, true
}

// name returns the string at index i, which intern returned.
func (in *interner) name(i uint16) string { return (*in.names.Load())[i] }
