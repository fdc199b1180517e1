package acme

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"hardbound/store"
)

// Replay-Nonces (RFC 8555 §6.5) that every node of a store accepts without
// a write per issued nonce (docs/acme.md, "Nonces"). A nonce is
//
//	version (1) | issued, Unix seconds (8, big-endian) | random (16) | MAC (16)
//
// in base64url without padding, the MAC being HMAC-SHA256 under the nonce
// key, truncated to 128 bits, over everything before it. Every node holds
// the same key (Deps.NonceKey), so a nonce issued by one verifies on all;
// single use is enforced when a nonce is consumed, by claiming it in the
// store (ClaimNonce, scope "acme") until it expires on every node.

const (
	nonceVersion = 1
	nonceMACLen  = 16
	nonceRawLen  = 1 + 8 + 16 + nonceMACLen
	// nonceLen is the encoded length; anything else is refused unread.
	nonceLen = (nonceRawLen*8 + 5) / 6
	// NonceKeyLen is the size of Deps.NonceKey.
	NonceKeyLen = 32
	// maxNonceSkew is how far ahead of this node's clock a nonce's issue
	// time may be: another node's clock may run ahead of this one's.
	maxNonceSkew = time.Minute
	nonceScope   = "acme"
)

// errBadNonce is wrapped by parseNonce's and consume's refusals.
var errBadNonce = errors.New("acme: bad nonce")

// NonceClaimer records a consumed nonce once; store.Store satisfies it.
type NonceClaimer interface {
	ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error
}

type nonces struct {
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	claims NonceClaimer
}

func newNonces(key []byte, ttl time.Duration, now func() time.Time, claims NonceClaimer) *nonces {
	return &nonces{key: key, ttl: ttl, now: now, claims: claims}
}

// issue returns a fresh nonce. It writes nothing.
func (n *nonces) issue() string {
	var raw [nonceRawLen]byte
	raw[0] = nonceVersion
	binary.BigEndian.PutUint64(raw[1:9], uint64(n.now().Unix()))
	_, _ = rand.Read(raw[9:25]) // crypto/rand.Read never fails (Go 1.24+)
	copy(raw[25:], nonceMAC(n.key, raw[:25]))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func nonceMAC(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil)[:nonceMACLen]
}

// parseNonce checks v's form and MAC under key and returns its issue time
// and its raw octets. It reads nothing but v and is a fuzz target.
func parseNonce(key []byte, v string) (time.Time, []byte, error) {
	if len(v) != nonceLen {
		return time.Time{}, nil, fmt.Errorf("%w: %d characters, want %d", errBadNonce, len(v), nonceLen)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(raw) != nonceRawLen {
		return time.Time{}, nil, fmt.Errorf("%w: not base64url", errBadNonce)
	}
	if raw[0] != nonceVersion {
		return time.Time{}, nil, fmt.Errorf("%w: version %d", errBadNonce, raw[0])
	}
	if !hmac.Equal(raw[25:], nonceMAC(key, raw[:25])) {
		return time.Time{}, nil, fmt.Errorf("%w: not issued by this server", errBadNonce)
	}
	secs := binary.BigEndian.Uint64(raw[1:9])
	if secs > 1<<40 { // far beyond any clock; keeps time.Unix in range
		return time.Time{}, nil, fmt.Errorf("%w: issue time out of range", errBadNonce)
	}
	return time.Unix(int64(secs), 0), raw, nil
}

// consume accepts v once: it must verify, be unexpired on this node's
// clock, and its claim in the store must be the first. A nonce refused
// for what it is wraps errBadNonce; a store failure does not (the
// request then fails as a server error, not as a replay).
func (n *nonces) consume(ctx context.Context, v string) error {
	issued, raw, err := parseNonce(n.key, v)
	if err != nil {
		return err
	}
	now := n.now()
	switch {
	case issued.After(now.Add(maxNonceSkew)):
		return fmt.Errorf("%w: issued in the future", errBadNonce)
	case !now.Before(issued.Add(n.ttl)):
		return fmt.Errorf("%w: expired", errBadNonce)
	}
	// The claim outlives the nonce on every node whose clock is within
	// maxNonceSkew of this one's.
	expires := issued.Add(n.ttl + maxNonceSkew)
	err = n.claims.ClaimNonce(context.WithoutCancel(ctx), nonceScope, sha256.Sum256(raw), expires)
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: already used", errBadNonce)
	}
	if err != nil {
		return fmt.Errorf("acme: claim nonce: %w", err)
	}
	return nil
}
