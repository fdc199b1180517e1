package postgres_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/badger"
)

func hashOf(s string) store.Hash { return sha256.Sum256([]byte(s)) }

// TestImportFromBadger fills a Badger store through its API with every
// record kind, imports it into an empty PostgreSQL store and reads every
// record back; the audit chain keeps its sequence and hashes (VerifyAudit
// passes, the next append links after the last), and a second import
// into the now non-empty store is refused with ErrExists.
func TestImportFromBadger(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src, err := badger.Open(ctx, "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	const devices = 2000
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range devices {
		id := fmt.Sprintf("dev-%05d", i)
		c := &store.Cert{SHA256: hashOf("cert-" + id), Serial: fmt.Sprintf("1%015x", i), DeviceID: id, KeySHA256: hashOf("key-" + id),
			NotBefore: base, NotAfter: base.Add(time.Hour), Profile: "corp", Protocol: "acme", DER: []byte("der-" + id),
			Attested: true, AttestationID: "att-" + id}
		is := store.Issuance{
			Device:      &store.Device{ID: id, Platform: "linux", Profile: "corp", Status: store.DeviceActive, Aliases: map[string]string{"serial": "SN" + id}},
			Cert:        c,
			Attestation: &store.Attestation{ID: "att-" + id, DeviceID: id, Format: "tpm", KeySHA256: c.KeySHA256, VerifiedAt: base},
			Audit:       &store.AuditEvent{Actor: "system", Action: "enroll.issue", Subject: id, Result: "ok"},
		}
		if err := src.RecordIssuance(ctx, is); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.RevokeCert(ctx, hashOf("cert-dev-00007"), store.Revocation{At: base, Reason: 1, Actor: "admin"},
		&store.AuditEvent{Actor: "admin", Action: "cert.revoke", Subject: "dev-00007", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutSession(ctx, &store.Session{NAS: "nas1", NASAddr: "192.0.2.1", AcctSessionID: "S1", DeviceID: "dev-00001", StartedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutACMEAccount(ctx, &store.ACMEAccount{ID: "acct1", Thumbprint: "tp1", JWK: []byte(`{"kty":"EC"}`), Status: "valid"}); err != nil {
		t.Fatal(err)
	}
	last, err := src.TailAudit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.PutAuditCheckpoint(ctx, &store.AuditCheckpoint{Seq: last[0].Seq, Hash: last[0].Hash, Time: base, KeyID: "k1", Alg: "Ed25519", Sig: []byte("sig")}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutAuditCursor(ctx, &store.AuditCursor{Sink: "syslog", Seq: 5, UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}

	dst := openDSN(t, newDB(t))
	var reported int
	if err := dst.Import(ctx, src, func(n int) { reported = n }); err != nil {
		t.Fatalf("Import: %v", err)
	}
	// devices + attestations + certs + session + account + audit events + checkpoint + cursor
	if want := 3*devices + 1 + 1 + int(last[0].Seq) + 1 + 1; reported != want {
		t.Fatalf("progress reported %d records, want %d", reported, want)
	}

	var n int
	for p := (store.Page{}); ; {
		page, next, err := dst.ListDevices(ctx, store.DeviceFilter{}, p)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if next == "" {
			break
		}
		p.After = next
	}
	if n != devices {
		t.Fatalf("%d devices after import, want %d", n, devices)
	}
	for _, id := range []string{"dev-00000", "dev-00007", fmt.Sprintf("dev-%05d", devices-1)} {
		want, err := src.GetCert(ctx, hashOf("cert-"+id))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.GetCert(ctx, hashOf("cert-"+id))
		if err != nil {
			t.Fatalf("GetCert %s: %v", id, err)
		}
		if !bytes.Equal(got.DER, want.DER) || got.Serial != want.Serial || (got.Revoked == nil) != (want.Revoked == nil) {
			t.Fatalf("cert %s = %+v, want %+v", id, got, want)
		}
		if d, err := dst.FindDeviceByAlias(ctx, "serial", "SN"+id); err != nil || d.ID != id {
			t.Fatalf("alias of %s: %v %v", id, d, err)
		}
		if a, err := dst.FindAttestationByKey(ctx, want.KeySHA256); err != nil || a.ID != "att-"+id {
			t.Fatalf("attestation of %s: %v %v", id, a, err)
		}
	}
	revoked, _, err := dst.ListCerts(ctx, store.CertFilter{RevokedOnly: true}, store.Page{})
	if err != nil || len(revoked) != 1 || revoked[0].DeviceID != "dev-00007" {
		t.Fatalf("revoked certs after import = %v, %v", revoked, err)
	}
	if s, err := dst.GetSession(ctx, "nas1", "S1"); err != nil || !s.Live() || s.DeviceID != "dev-00001" {
		t.Fatalf("session = %+v, %v", s, err)
	}
	if a, err := dst.FindACMEAccountByThumbprint(ctx, "tp1"); err != nil || a.ID != "acct1" {
		t.Fatalf("acme account = %+v, %v", a, err)
	}
	if cp, err := dst.LastAuditCheckpoint(ctx); err != nil || cp.Seq != last[0].Seq || cp.Hash != last[0].Hash {
		t.Fatalf("checkpoint = %+v, %v", cp, err)
	}
	if c, err := dst.GetAuditCursor(ctx, "syslog"); err != nil || c.Seq != 5 {
		t.Fatalf("cursor = %+v, %v", c, err)
	}
	var srcHashes, dstHashes []store.Hash
	src.ScanAudit(ctx, 1, func(e *store.AuditEvent) error { srcHashes = append(srcHashes, e.Hash); return nil })
	dst.ScanAudit(ctx, 1, func(e *store.AuditEvent) error { dstHashes = append(dstHashes, e.Hash); return nil })
	if len(dstHashes) != len(srcHashes) || dstHashes[len(dstHashes)-1] != srcHashes[len(srcHashes)-1] {
		t.Fatalf("audit chain: %d events imported of %d, last hash differs", len(dstHashes), len(srcHashes))
	}
	next := &store.AuditEvent{Actor: "system", Action: "store.copied", Result: "ok"}
	if err := dst.AppendAudit(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Seq != last[0].Seq+1 || next.PrevHash != last[0].Hash {
		t.Fatalf("append after import: seq %d prev %s, want %d after %s", next.Seq, next.PrevHash, last[0].Seq+1, last[0].Hash)
	}
	if vr, err := dst.VerifyAudit(ctx); err != nil || !vr.OK || vr.Events != last[0].Seq+1 {
		t.Fatalf("VerifyAudit after import = %+v, %v", vr, err)
	}

	if err := dst.Import(ctx, src, nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Import = %v, want ErrExists", err)
	}
}

// BenchmarkImportFromBadger measures Import of a Badger store of
// b.N-independent size (HB_IMPORT_DEVICES, default 10,000 devices, each
// with a binding, an attestation and its issuance's audit event) into an
// empty database; it reports records/s and the seconds per whole copy.
func BenchmarkImportFromBadger(b *testing.B) {
	devices := 10_000
	if v := os.Getenv("HB_IMPORT_DEVICES"); v != "" {
		fmt.Sscan(v, &devices)
	}
	ctx := b.Context()
	src, err := badger.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const group = 1000
	for i := 0; i < devices; i += group {
		var wg sync.WaitGroup
		for j := i; j < min(i+group, devices); j++ {
			wg.Go(func() {
				id := fmt.Sprintf("dev-%07d", j)
				c := &store.Cert{SHA256: hashOf("cert-" + id), Serial: fmt.Sprintf("1%015x", j), DeviceID: id, KeySHA256: hashOf("key-" + id),
					NotBefore: base, NotAfter: base.Add(time.Hour), Profile: "corp", Protocol: "acme", DER: bytes.Repeat([]byte{0x30}, 600),
					AttestationID: "att-" + id}
				if err := src.RecordIssuance(ctx, store.Issuance{
					Device:      &store.Device{ID: id, Platform: "linux", Profile: "corp", Status: store.DeviceActive, Aliases: map[string]string{"serial": "SN" + id}},
					Cert:        c,
					Attestation: &store.Attestation{ID: "att-" + id, DeviceID: id, Format: "tpm", KeySHA256: c.KeySHA256, VerifiedAt: base},
					Audit:       &store.AuditEvent{Actor: "system", Action: "enroll.issue", Subject: id, Result: "ok"},
				}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ResetTimer()
	var records int
	for range b.N {
		b.StopTimer()
		dst := openDSN(b, newDB(b))
		b.StartTimer()
		if err := dst.Import(ctx, src, func(n int) { records = n }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/copy")
	b.ReportMetric(float64(devices), "devices")
}
