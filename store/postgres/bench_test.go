package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"hardbound/store"
	"hardbound/store/badger"
)

// BenchmarkStoreOps compares the operations on the authentication and
// administration paths with the Badger backend in the same run (on disk,
// synced writes; the test server runs with fsync off, so PostgreSQL's
// numbers are round trips and locking, not disk flushes).
//
//	go test -run '^$' -bench StoreOps -benchtime 2000x ./store/postgres/
func BenchmarkStoreOps(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"badger", func(b *testing.B) store.Store {
			s, err := badger.Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) store.Store { return openDSN(b, newDB(b)) }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			is := issuance("bench-dev", 1)
			if err := s.RecordIssuance(ctx, is); err != nil {
				b.Fatal(err)
			}
			b.Run("GetCertBinding", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.GetCertBinding(ctx, is.Cert.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("UpdateDevice_audited", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					_, err := s.UpdateDevice(ctx, "bench-dev", func(d *store.Device) error { d.Profile = fmt.Sprint(i); return nil },
						&store.AuditEvent{Actor: "admin:bench", Action: "device.update", Subject: "bench-dev", Result: "ok"})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("RecordIssuance", func(b *testing.B) {
				i := 1
				for b.Loop() {
					i++
					if err := s.RecordIssuance(ctx, issuance(fmt.Sprintf("bench-%d", i), i)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("AppendAudits_64", func(b *testing.B) {
				evs := make([]*store.AuditEvent, 64)
				for b.Loop() {
					for i := range evs {
						evs[i] = &store.AuditEvent{Actor: "nas:bench", Action: "radius.auth", Subject: "bench-dev", Result: "ok"}
					}
					if err := s.AppendAudits(ctx, evs); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
