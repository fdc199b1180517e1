// Package badgertest opens throwaway Badger stores for tests.
package badgertest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
	"hardbound/store/badger"
)

// Memory opens an in-memory store that is closed when the test ends.
func Memory(t testing.TB, opts ...badger.Option) *badger.Store {
	t.Helper()
	st, err := badger.Open(context.Background(), "", append([]badger.Option{badger.WithInMemory()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The tamper helpers below edit a closed store's directory with Badger
// directly, as someone who can write the data directory (and holds no
// key) would. They mirror the key layout of store/badger/keys.go.
const (
	pfxAudit   = "audit/"
	pfxAuditCP = "auditcp/"
	keyHead    = "meta/audit-head"
)

func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pfxAudit), seq)
}

type auditHead struct {
	V    int        `json:"v"`
	Seq  uint64     `json:"seq"`
	Hash store.Hash `json:"hash"`
}

func openRaw(t testing.TB, dir string) *bdb.DB {
	t.Helper()
	db, err := bdb.Open(bdb.DefaultOptions(dir).WithLogger(nil).WithNumVersionsToKeep(1).WithSyncWrites(true))
	if err != nil {
		t.Fatalf("badgertest: open %s: %v", dir, err)
	}
	return db
}

// TruncateAudit deletes every audit event after seq keep and points the
// head at event keep, so the shortened chain is consistent on its own.
func TruncateAudit(t testing.TB, dir string, keep uint64) {
	t.Helper()
	db := openRaw(t, dir)
	defer db.Close()
	err := db.Update(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(pfxAudit)})
		var dels [][]byte
		var last []byte
		for it.Seek(auditKey(keep)); it.ValidForPrefix([]byte(pfxAudit)); it.Next() {
			k := it.Item().KeyCopy(nil)
			if binary.BigEndian.Uint64(k[len(pfxAudit):]) == keep {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				last = v
				continue
			}
			dels = append(dels, k)
		}
		it.Close()
		for _, k := range dels {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		var ev store.AuditEvent
		if err := json.Unmarshal(last, &ev); err != nil {
			return fmt.Errorf("event %d: %w", keep, err)
		}
		h, _ := json.Marshal(auditHead{V: store.RecordVersion, Seq: ev.Seq, Hash: ev.Hash})
		return txn.Set([]byte(keyHead), h)
	})
	if err != nil {
		t.Fatalf("badgertest: truncate audit: %v", err)
	}
}

// RewriteAudit rewrites the whole chain consistently: edit changes each
// event, then every hash and link is recomputed from seq 1 and the head
// set, so the store's own verification finds nothing. With
// dropCheckpoints the stored checkpoints, which would no longer match,
// are deleted too.
func RewriteAudit(t testing.TB, dir string, edit func(*store.AuditEvent), dropCheckpoints bool) {
	t.Helper()
	db := openRaw(t, dir)
	defer db.Close()
	var evs []store.AuditEvent
	err := db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(pfxAudit)})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix([]byte(pfxAudit)); it.Next() {
			var ev store.AuditEvent
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &ev) }); err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("badgertest: rewrite audit: %v", err)
	}
	wb := db.NewWriteBatch()
	var prev store.Hash
	for i := range evs {
		edit(&evs[i])
		evs[i].PrevHash = prev
		evs[i].Hash = evs[i].ComputeHash()
		prev = evs[i].Hash
		b, _ := json.Marshal(&evs[i])
		if err := wb.Set(auditKey(evs[i].Seq), b); err != nil {
			t.Fatal(err)
		}
	}
	if len(evs) > 0 {
		h, _ := json.Marshal(auditHead{V: store.RecordVersion, Seq: evs[len(evs)-1].Seq, Hash: prev})
		if err := wb.Set([]byte(keyHead), h); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatalf("badgertest: rewrite audit: %v", err)
	}
	if dropCheckpoints {
		if err := db.DropPrefix([]byte(pfxAuditCP)); err != nil {
			t.Fatalf("badgertest: drop checkpoints: %v", err)
		}
	}
}
