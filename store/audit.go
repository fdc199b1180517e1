package store

import (
	"crypto/sha256"
	"encoding/json"
)

// ComputeHash returns the chain hash of e: SHA-256 over the canonical JSON
// of every field except Hash. PrevHash is included, which is what links the
// chain: changing any earlier event changes every later hash.
func (e *AuditEvent) ComputeHash() Hash {
	c := *e
	c.Hash = Hash{}
	b, err := json.Marshal(&c)
	if err != nil {
		// json.Marshal cannot fail for this struct (no maps, funcs or channels).
		panic("store: marshal audit event: " + err.Error())
	}
	return sha256.Sum256(b)
}
