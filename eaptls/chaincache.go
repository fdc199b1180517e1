package eaptls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// DefaultChainCache is the default number of verified client chains kept.
const DefaultChainCache = 65536

const (
	chainShards = 16
	// maxChainTails bounds the distinct CA certificates entries may point
	// at: chains end in our few CAs, so anything beyond is not cached
	// rather than letting peer-sent intermediates pin memory.
	maxChainTails = 64
)

// chainCache remembers client certificate chains that verified, keyed by
// the SHA-256 of the exact certificates the peer sent. A device
// re-authenticates many times a day with the same certificate (roaming,
// Session-Timeout, a controller coming back after an outage); checking the
// CA's signature on it again each time costs as much as the rest of the
// server's work per authentication. A hit still checks the chain's
// validity window against the current time, and nothing else can change
// the outcome of x509.Verify for the same bytes, roots and key usage: the
// handshake still proves possession of the key (CertificateVerify), and
// revocation and posture are the Authorizer's, run every time.
type chainCache struct {
	perShard int
	shards   [chainShards]chainShard

	tailMu sync.Mutex
	tails  map[[32]byte]*x509.Certificate // interned chain[1:] certificates
}

type chainShard struct {
	mu sync.Mutex
	m  map[[32]byte]chainEntry
}

type chainEntry struct {
	notBefore, notAfter time.Time // every certificate of the chain is valid in between
	tail                []*x509.Certificate
}

func newChainCache(size int) *chainCache {
	c := &chainCache{perShard: max(size/chainShards, 1), tails: make(map[[32]byte]*x509.Certificate)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]chainEntry)
	}
	return c
}

// chainKey hashes the peer's certificates, each with its length, so two
// different lists never share a key.
func chainKey(certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range certs {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// get returns the verified chain for certs if one is cached and valid now.
func (c *chainCache) get(key [32]byte, certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, bool) {
	sh := &c.shards[key[0]%chainShards]
	sh.mu.Lock()
	e, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok || now.Before(e.notBefore) || now.After(e.notAfter) {
		return nil, false
	}
	chain := make([]*x509.Certificate, 0, 1+len(e.tail))
	chain = append(chain, certs[0])
	return [][]*x509.Certificate{append(chain, e.tail...)}, true
}

// put remembers the first of chains, which x509.Verify returned for certs.
func (c *chainCache) put(key [32]byte, chains [][]*x509.Certificate) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return
	}
	chain := chains[0]
	e := chainEntry{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, cert := range chain[1:] {
		if cert.NotBefore.After(e.notBefore) {
			e.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(e.notAfter) {
			e.notAfter = cert.NotAfter
		}
	}
	tail, ok := c.intern(chain[1:])
	if !ok {
		return
	}
	e.tail = tail
	sh := &c.shards[key[0]%chainShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= c.perShard {
		// Full: drop an eighth, expired or not; map order is random enough
		// that hot entries come back at the cost of one verification.
		drop := max(c.perShard/8, 1)
		for k := range sh.m {
			delete(sh.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	sh.m[key] = e
}

// intern maps the CA part of a chain to shared certificates, so entries
// hold no per-handshake objects.
func (c *chainCache) intern(certs []*x509.Certificate) ([]*x509.Certificate, bool) {
	out := make([]*x509.Certificate, len(certs))
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	for i, cert := range certs {
		k := sha256.Sum256(cert.Raw)
		shared, ok := c.tails[k]
		if !ok {
			if len(c.tails) >= maxChainTails {
				return nil, false
			}
			shared = cert
			c.tails[k] = cert
		}
		out[i] = shared
	}
	return out, true
}
